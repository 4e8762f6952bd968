"""The engine: claims pending tasks, provisions them, follows them, and acts on requests.

It is level-triggered: every pass compares the store with what the backend reports and
converges (a pending task gets provisioned, an active one gets a follower, a container
whose task is gone gets removed). Status changes are compare-and-set in the store, so a
second engine on the same database can never move a task this one is moving.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provisioner.backends.base import Backend
from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.engine.follower import Follower
from provisioner.engine.workspace import BridgeBundler, spec_for
from provisioner.errors import (
    BackendError,
    BridgeFailure,
    DockyardError,
    ParameterError,
    TaskConflict,
    TaskNotFound,
)
from provisioner.lifecycle import TERMINAL, ErrorClass, Phase, State, Status
from provisioner.model import NAME_RE, Task, slug_from_prompt, utcnow
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT_S = 60.0
LAST_LINES = 8
PROGRESS_EVERY_S = 1.0
ORPHAN_SWEEP_EVERY_S = 30.0


class Engine:
    """Drives every task of one store on one backend."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        catalog: Catalog,
        bundler: BridgeBundler,
        *,
        owner: str = "me",
        tick_s: float = 1.0,
    ) -> None:
        self.store = store
        self.backend = backend
        self.catalog = catalog
        self.bundler = bundler
        self.owner = owner
        self.tick_s = tick_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._provisioning: set[str] = set()
        self._followers: dict[str, Follower] = {}
        self._task_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="provision")
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # lifecycle of the engine itself ---------------------------------------
    def start(self) -> None:
        """Start the reconcile loop in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and followers; workspaces keep running (they own the agents)."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            followers = list(self._followers.values())
        for follower in followers:
            follower.stop()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Reconcile now rather than at the next tick."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile pass failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def _task_lock(self, task_id: str) -> threading.Lock:
        with self._lock:
            return self._task_locks.setdefault(task_id, threading.Lock())

    # reconcile -------------------------------------------------------------
    def reconcile(self) -> None:
        """One level-triggered pass over every live task."""
        live = [t for t in self.store.list_tasks() if t.status not in TERMINAL]
        running: set[str] | None = None
        if any(t.status == Status.ACTIVE for t in live):
            try:
                running = self.backend.running_task_ids()
            except BackendError as exc:
                log.warning("cannot list workspaces: %s", exc)
        for task in live:
            if task.status == Status.ACTIVE and running is not None and task.id not in running:
                # Observed truth beats the follower's view: the workspace is gone.
                self._stop_follower(task.id, wait=False)
                self.workspace_died(task.id)
                continue
            if task.status == Status.PENDING:
                self._claim(task)
            elif task.status == Status.INITIALIZING:
                self._submit_provision(task.id)
            elif task.status == Status.ACTIVE:
                self._ensure_follower(task.id)
        if time.monotonic() - self._last_sweep > ORPHAN_SWEEP_EVERY_S:
            self._last_sweep = time.monotonic()
            self._sweep_orphans({t.id for t in self.store.list_tasks()})

    def _claim(self, task: Task) -> None:
        try:
            self.store.transition(
                task.id,
                Status.PENDING,
                Status.INITIALIZING,
                actor="engine",
                reason="claimed",
                phase=Phase.IMAGE.value,
                message="preparing the image",
            )
        except (TaskConflict, TaskNotFound):
            return  # another engine took it, or it was deleted
        self._submit_provision(task.id)

    def _submit_provision(self, task_id: str) -> None:
        with self._lock:
            if task_id in self._provisioning or self._stopping.is_set():
                return
            self._provisioning.add(task_id)
        self._pool.submit(self._provision, task_id)

    def _sweep_orphans(self, known: set[str]) -> None:
        try:
            leftovers = self.backend.task_ids() - known
        except BackendError as exc:
            log.warning("cannot list workspaces: %s", exc)
            return
        for task_id in leftovers:
            log.info("removing workspace of deleted task %s", task_id)
            self.backend.remove(task_id)

    # provisioning ----------------------------------------------------------
    def _phase(self, task_id: str, phase: Phase, message: str) -> None:
        if not self.store.update(
            task_id, Status.INITIALIZING, actor="engine", phase=phase.value, message=message
        ):
            raise TaskConflict("task left initializing")

    def _progress_reporter(self, task_id: str) -> Callable[[str], None]:
        """Build output goes to the task's logs; about once a second also to its message."""
        last = 0.0

        def report(line: str) -> None:
            nonlocal last
            self.store.system_log(task_id, line)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self.store.update(task_id, Status.INITIALIZING, actor="engine", message=line[:200])

        return report

    def _provision(self, task_id: str) -> None:
        try:
            self._provision_steps(task_id)
        except (TaskConflict, TaskNotFound):
            # Deleted or moved on while we worked: don't leave its workspace behind.
            try:
                self.store.get(task_id)
            except TaskNotFound:
                self.backend.remove(task_id)
        except DockyardError as exc:
            klass = ErrorClass.TRANSIENT if "not running" in exc.message else ErrorClass.PERMANENT
            self.fail(task_id, Status.INITIALIZING, str(exc), klass, stop=False)
        except Exception as exc:
            log.exception("provisioning task %s failed", task_id)
            self.fail(task_id, Status.INITIALIZING, f"internal error: {exc}", ErrorClass.UNKNOWN)
        finally:
            with self._lock:
                self._provisioning.discard(task_id)

    def _provision_steps(self, task_id: str) -> None:
        task = self.store.get(task_id)
        if task.status != Status.INITIALIZING:
            return
        spec = spec_for(self.catalog, task)
        observed = self.backend.observe(task_id)
        if not observed.exists:
            self._phase(task_id, Phase.IMAGE, "preparing the image")
            image = self.backend.ensure_image(spec, self._progress_reporter(task_id))
            self._phase(task_id, Phase.CREATE, "creating the workspace")
            self.backend.create(task_id, task.name, spec, image, self.bundler.bundle(task, spec))
        self._phase(task_id, Phase.START, "starting the workspace")
        self.backend.start(task_id, self.bundler.bundle(task, spec))
        self._phase(task_id, Phase.AGENT, "starting the agent")
        self._wait_for_bridge(task)
        self.store.transition(
            task_id,
            Status.INITIALIZING,
            Status.ACTIVE,
            actor="engine",
            reason="agent started",
            state=State.WORKING.value,
            message="agent started",
            error_class=None,
        )
        self._ensure_follower(task_id)

    def _wait_for_bridge(self, task: Task) -> None:
        deadline = time.monotonic() + AGENT_START_TIMEOUT_S
        last_error = "no endpoint yet"
        while time.monotonic() < deadline:
            observed = self.backend.observe(task.id)
            if not observed.running:
                tail = self.backend.tail(task.id, 10)
                raise BridgeFailure(
                    f"workspace stopped while starting: {observed.death_cause()}"
                    + ("; last output: " + " | ".join(tail) if tail else "")
                )
            if observed.endpoint:
                client = BridgeClient(observed.endpoint, task.bridge_token, timeout=2)
                try:
                    client.status()
                    return
                except (BridgeUnreachable, BridgeError) as exc:
                    last_error = str(exc)
                finally:
                    client.close()
            time.sleep(0.05)
        raise BridgeFailure(
            f"the bridge did not answer within {AGENT_START_TIMEOUT_S:.0f}s ({last_error})"
        )

    # following ---------------------------------------------------------------
    def _ensure_follower(self, task_id: str) -> None:
        with self._lock:
            current = self._followers.get(task_id)
            if self._stopping.is_set() or (current and not current.stopping.is_set()):
                return
            # A follower told to stop may still sit in a long poll: replace, don't wait.
            follower = Follower(self, task_id)
            self._followers[task_id] = follower
        follower.start()

    def follower_done(self, follower: Follower) -> None:
        """Called by a follower thread as it ends."""
        with self._lock:
            if self._followers.get(follower.task_id) is follower:
                del self._followers[follower.task_id]

    def _stop_follower(self, task_id: str, wait: bool = True) -> None:
        with self._lock:
            follower = self._followers.get(task_id)
        if follower is not None:
            follower.stop()
            if wait:
                follower.join(timeout=POLL_JOIN_S)

    def fail_active(self, task_id: str, message: str, klass: ErrorClass, *, stop: bool) -> None:
        """Fail an active task unless a pause or delete holds it (their stop is on purpose)."""
        lock = self._task_lock(task_id)
        if not lock.acquire(blocking=False):
            return
        try:
            self.fail(task_id, Status.ACTIVE, message, klass, stop=stop)
        finally:
            lock.release()

    def workspace_died(self, task_id: str) -> None:
        """An active task's workspace stopped by itself: error, with the cause."""
        lock = self._task_lock(task_id)
        if not lock.acquire(blocking=False):
            return  # a pause or delete is stopping it on purpose right now
        try:
            self._workspace_died(task_id)
        finally:
            lock.release()

    def _workspace_died(self, task_id: str) -> None:
        observed = self.backend.observe(task_id)
        if observed.running:
            return
        tail = self.store.tail(task_id, LAST_LINES) or self.backend.tail(task_id, LAST_LINES)
        message = f"workspace stopped: {observed.death_cause()}"
        if tail:
            message += "; last output: " + " | ".join(tail)
        klass = ErrorClass.PERMANENT if observed.oom_killed else ErrorClass.UNKNOWN
        self.fail(task_id, Status.ACTIVE, message, klass, stop=False)

    def sync_logs(self, task: Task) -> None:
        """Fetch whatever the bridge has that the store lacks (before stopping it)."""
        observed = self.backend.observe(task.id)
        if not observed.endpoint:
            return
        client = BridgeClient(observed.endpoint, task.bridge_token, timeout=5)
        try:
            after = self.store.last_seq(task.id)
            while True:
                entries = client.log(after=after, wait=0).get("entries", [])
                if not entries:
                    return
                self.store.append_logs(task.id, entries)
                after = max(int(e["seq"]) for e in entries)
        except (BridgeUnreachable, BridgeError) as exc:
            log.warning("final log sync of %s failed: %s", task.id, exc)
        finally:
            client.close()

    def fail(
        self,
        task_id: str,
        expected: Status,
        message: str,
        klass: ErrorClass,
        *,
        stop: bool = False,
    ) -> None:
        """Move a task to error with its cause; optionally stop its workspace."""
        try:
            self.store.transition(
                task_id,
                expected,
                Status.ERROR,
                actor="engine",
                reason=message,
                message=message,
                error_class=klass.value,
            )
        except (TaskConflict, TaskNotFound):
            return
        if stop:
            try:
                self.backend.stop(task_id)
            except BackendError as exc:
                log.warning("could not stop workspace of %s: %s", task_id, exc)

    # requests from the API -----------------------------------------------------
    def create_task(
        self,
        *,
        template: str,
        preset: str | None,
        prompt: str,
        parameters: dict[str, Any],
        name: str | None,
    ) -> Task:
        """Validate and render everything, then store the task as pending."""
        if not prompt.strip():
            raise ParameterError("The prompt is empty", hint="give the task something to do")
        tpl = self.catalog.get(template)
        chosen = select_preset(tpl, preset)
        spec = render_workspace(tpl, chosen, parameters)  # fails before anything is created
        self.backend.ping()
        if name is not None:
            if not NAME_RE.match(name):
                raise ParameterError(
                    f"Invalid task name {name!r}: use lowercase letters, digits and dashes"
                )
        else:
            stem = slug_from_prompt(prompt)
            name = f"{stem}-{secrets.token_hex(2)}"
            while self.store.name_taken(self.owner, name):
                name = f"{stem}-{secrets.token_hex(2)}"
        now = utcnow()
        task = Task(
            id=str(uuid.uuid4()),
            name=name,
            display_name=prompt.strip().splitlines()[0][:120],
            owner=self.owner,
            template=tpl.name,
            template_version=tpl.version,
            preset=chosen.name if chosen else None,
            parameters=redact(tpl, spec.parameters),
            resolved=spec.parameters,
            prompt=prompt,
            status=Status.PENDING,
            bridge_token=secrets.token_urlsafe(32),
            created_at=now,
            updated_at=now,
            message="waiting to be provisioned",
        )
        self.store.create_task(task, actor="user")
        self.wake()
        return task

    def pause(self, ref: str) -> Task:
        """Stop the workspace, keep its disk and logs."""
        task = self.store.get(ref)
        with self._task_lock(task.id):
            task = self.store.get(task.id)
            if task.status != Status.ACTIVE:
                hint = "wait until it is active" if task.status == Status.INITIALIZING else None
                raise TaskConflict(
                    f"Cannot pause {task.name}: it is {task.status.value}", hint=hint
                )
            self._stop_follower(task.id, wait=False)
            self.sync_logs(task)
            self.backend.stop(task.id)
            return self.store.transition(
                task.id,
                Status.ACTIVE,
                Status.PAUSED,
                actor="user",
                action="pause",
                reason="paused by user",
                message="paused",
            )

    def resume(self, ref: str) -> Task:
        """Start a paused or errored task's workspace again."""
        task = self.store.get(ref)
        with self._task_lock(task.id):
            task = self.store.get(task.id)
            if task.status not in (Status.PAUSED, Status.ERROR):
                raise TaskConflict(
                    f"Cannot resume {task.name}: it is {task.status.value}, not paused or error"
                )
            task = self.store.transition(
                task.id,
                task.status,
                Status.INITIALIZING,
                actor="user",
                action="resume",
                reason="resumed by user",
                phase=Phase.START.value,
                message="resuming",
            )
        self._submit_provision(task.id)
        return task

    def delete(self, ref: str) -> Task:
        """Remove the task's workspace (containers and volumes) and its records."""
        task = self.store.get(ref)
        with self._task_lock(task.id):
            self._stop_follower(task.id, wait=False)
            if task.status not in TERMINAL:
                with contextlib.suppress(TaskConflict, TaskNotFound):
                    self.store.transition(
                        task.id,
                        task.status,
                        Status.CANCELLED,
                        actor="user",
                        reason="deleted by user",
                    )
            self.backend.remove(task.id)
            self.store.delete(task.id)
        return task

    def send(self, ref: str, text: str) -> dict[str, Any]:
        """Hand a follow-up prompt to the task's bridge (it queues while the agent works)."""
        task = self.store.get(ref)
        if not text.strip():
            raise ParameterError("The prompt is empty")
        if task.status != Status.ACTIVE:
            hints = {
                Status.PAUSED: f"resume it first: dockyard task resume {task.name}",
                Status.ERROR: f"resume it first: dockyard task resume {task.name}",
                Status.INITIALIZING: "it is still starting; send again once it is active",
                Status.PENDING: "it is still starting; send again once it is active",
            }
            raise TaskConflict(
                f"Cannot send to {task.name}: it is {task.status.value}",
                hint=hints.get(task.status),
            )
        observed = self.backend.observe(task.id)
        if not observed.endpoint:
            raise BridgeFailure(f"Task {task.name} has no running workspace")
        client = BridgeClient(observed.endpoint, task.bridge_token, timeout=10)
        prompt_id = uuid.uuid4().hex
        try:
            client.send(text, "user", prompt_id)
        except (BridgeUnreachable, BridgeError) as exc:
            raise BridgeFailure(f"Could not deliver the prompt to {task.name}: {exc}") from exc
        finally:
            client.close()
        # The bridge made the agent `working` synchronously; say so at once too.
        self.store.update(task.id, Status.ACTIVE, actor="user", state=State.WORKING.value)
        return {"ok": True, "prompt_id": prompt_id}


POLL_JOIN_S = 15.0
