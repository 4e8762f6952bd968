"""The engine: claims pending tasks, provisions them, follows them, and acts on requests.

It is level-triggered: every pass compares the store with what the backend reports and
converges (a pending task gets provisioned, an active one gets a follower, an idle one
past its template's idle timeout gets paused, a container whose task is gone gets
removed). Status changes are compare-and-set in the store, and provisioning is guarded
by a lease with a heartbeat, so two engines on one database never act on one task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provisioner.backends.base import Backend, Observed
from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.capacity import Usage
from provisioner.engine.admission import Admissions
from provisioner.engine.follower import Follower
from provisioner.engine.pools import WarmPools
from provisioner.engine.provision import Provisioner
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler, initial_prompt_id, task_policy
from provisioner.errors import (
    BackendError,
    BackendUnavailable,
    DockyardError,
    ParameterError,
    PhaseTimeout,
    TaskConflict,
    TaskNotFound,
)
from provisioner.lifecycle import TERMINAL, ErrorClass, State, Status
from provisioner.model import NAME_RE, POOL_OWNER, Task, parse_time, slug_from_prompt, utcnow
from provisioner.prompts import FINISHED, check_size, refusal_reason, shorten
from provisioner.spec import WorkspaceSpec
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

log = logging.getLogger(__name__)

LEASE_TTL_S = 15.0
ORPHAN_SWEEP_EVERY_S = 30.0
LAST_LINES = 8
FOLLOWER_JOIN_S = 15.0
RESTART_GRACE_S = 45.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Engine:
    """Drives every task of one store on one backend."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        catalog: Catalog,
        bundler: BridgeBundler,
        *,
        owner: str = POOL_OWNER,
        tick_s: float = 1.0,
        secrets: SecretStore | None = None,
        max_workspaces: int | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.catalog = catalog
        self.bundler = bundler
        self.owner = owner
        self.tick_s = tick_s
        self.secrets = secrets or SecretStore(None)
        self.pools = WarmPools(self)
        # None: unlimited; otherwise at most this many workspaces initializing or active
        self.admissions = Admissions(self, max_workspaces)
        self.endpoints: dict[str, str] = {}  # task id -> bridge URL, kept by followers
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._provisioning: set[str] = set()
        self._pausing: set[str] = set()
        self._down_since: dict[str, float] = {}
        self._followers: dict[str, Follower] = {}
        self._task_locks: dict[str, threading.Lock] = {}
        self._delivery_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="provision")
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # the engine's own lifecycle -------------------------------------------------
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

    @property
    def max_workspaces(self) -> int | None:
        """The capacity limit (None: unlimited)."""
        return self.admissions.limit

    @max_workspaces.setter
    def max_workspaces(self, limit: int | None) -> None:
        self.admissions.limit = limit

    def capacity(self) -> Usage:
        """Live workspaces against the limit, and the queue of pending tasks."""
        return self.admissions.usage()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._provisioning:
                    self.store.renew_leases(self.worker_id, LEASE_TTL_S)
                self.reconcile()
            except BackendUnavailable as exc:
                log.warning("reconcile pass skipped: %s", exc)
            except Exception:
                log.exception("reconcile pass failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def _lock_for(self, table: dict[str, threading.Lock], task_id: str) -> threading.Lock:
        with self._lock:
            return table.setdefault(task_id, threading.Lock())

    # reconcile -------------------------------------------------------------------
    def reconcile(self) -> None:
        """One level-triggered pass over every live task."""
        live = [t for t in self.store.list_tasks(kind=None) if t.status not in TERMINAL]
        running: set[str] | None = None
        if any(t.status == Status.ACTIVE for t in live):
            try:
                running = self.backend.running_task_ids()
            except BackendError as exc:
                log.warning("cannot list workspaces: %s", exc)
        pending = [t for t in live if t.status == Status.PENDING]
        if pending:
            for task_id in self.admissions.run(pending, LEASE_TTL_S):
                self._submit_provision(task_id)
        for task in live:
            if task.status == Status.INITIALIZING:
                if self._take_lease(task):
                    self._submit_provision(task.id)
            elif task.status == Status.ACTIVE:
                if running is not None and task.id not in running:
                    # Observed truth beats the follower's view: the workspace is gone.
                    self._stop_follower(task.id, wait=False)
                    self.workspace_died(task.id)
                    continue
                self._ensure_follower(task.id)
                self._maybe_auto_pause(task)
        if time.monotonic() - self._last_sweep > ORPHAN_SWEEP_EVERY_S:
            self._last_sweep = time.monotonic()
            self._sweep_orphans({t.id for t in self.store.list_tasks(kind=None)})
        self.pools.fill()

    def _take_lease(self, task: Task) -> bool:
        steal = None
        owner = task.lease_owner
        if owner and owner != self.worker_id:
            host, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            # A lease of a dead process on this very machine need not wait out its TTL.
            if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                steal = owner
        return self.store.acquire_lease(task.id, self.worker_id, LEASE_TTL_S, steal)

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

    def _maybe_auto_pause(self, task: Task) -> None:
        limit = task.policy.get("idle_timeout")
        if not limit or task.state != State.IDLE.value or not task.state_changed_at:
            return
        idle_for = time.time() - parse_time(task.state_changed_at).timestamp()
        if idle_for < float(limit):
            return
        if any(p["state"] not in FINISHED for p in self.store.prompts(task.id)):
            return  # a prompt is on its way: the agent is about to work
        with self._lock:
            if task.id in self._pausing:
                return
            self._pausing.add(task.id)
        self._pool.submit(self._auto_pause, task.id, float(limit))

    def _auto_pause(self, task_id: str, limit: float) -> None:
        try:
            self.pause(
                task_id,
                actor="policy",
                reason=f"auto-paused after {limit:g}s idle",
                expect_idle=True,
            )
        except (TaskConflict, TaskNotFound):
            pass  # it woke up or went away meanwhile: nothing to pause
        except DockyardError as exc:
            log.warning("auto-pause of %s failed: %s", task_id, exc)
        finally:
            with self._lock:
                self._pausing.discard(task_id)

    # provisioning ------------------------------------------------------------------
    def _provision(self, task_id: str) -> None:
        provisioner = Provisioner(self, task_id)
        try:
            provisioner.run()
            self._ensure_follower(task_id)
        except (TaskConflict, TaskNotFound):
            # Deleted or moved on while we worked: don't leave its workspace behind.
            try:
                self.store.get(task_id)
            except TaskNotFound:
                self.backend.remove(task_id)
        except Exception as exc:
            # Every failure names the phase it happened in, so status says where it broke.
            phase = getattr(exc, "phase", None) or provisioner.current_phase
            if isinstance(exc, PhaseTimeout):
                klass = ErrorClass.TIMEOUT
            elif isinstance(exc, BackendUnavailable):
                klass = ErrorClass.TRANSIENT
            elif isinstance(exc, DockyardError):
                klass = ErrorClass.PERMANENT
            else:
                log.exception("provisioning task %s failed", task_id)
                klass = ErrorClass.UNKNOWN
            message = str(exc) if isinstance(exc, DockyardError) else f"internal error: {exc}"
            self.fail(task_id, Status.INITIALIZING, message, klass, phase=phase or None)
        finally:
            with self._lock:
                self._provisioning.discard(task_id)

    # following ---------------------------------------------------------------------
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
        self.endpoints.pop(task_id, None)  # a stopped workspace may come back elsewhere
        with self._lock:
            follower = self._followers.get(task_id)
        if follower is not None:
            follower.stop()
            if wait:
                follower.join(timeout=FOLLOWER_JOIN_S)

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
                    break
                self.store.append_logs(task.id, entries)
                after = max(int(e["seq"]) for e in entries)
            for prompt_id, reason in self.store.sync_prompts(task.id, client.prompts()):
                self.prompt_failure_logged(task.id, prompt_id, reason)
        except (BridgeUnreachable, BridgeError) as exc:
            log.warning("final log sync of %s failed: %s", task.id, exc)
        finally:
            client.close()

    def deliver_prompts(self, task: Task, client: BridgeClient) -> None:
        """Hand every prompt the bridge does not have yet to it, in the order sent."""
        failed = False
        with self._lock_for(self._delivery_locks, task.id):
            for prompt in self.store.prompts(task.id, only_unhanded=True):
                if prompt["state"] in FINISHED:
                    continue
                try:
                    client.send(prompt["content"], "user", prompt["id"])
                except BridgeError as exc:
                    reason = refusal_reason(exc.status_code, exc.body)
                    if reason is None:
                        raise  # it may pass: this one and those after it wait, in order
                    # sent again it would be refused again, and hold up every later one
                    self.prompt_failed(task.id, prompt["id"], reason, actor="engine")
                    failed = True
                    continue
                self.store.mark_handed(prompt["id"])
        if failed:
            self._idle_if_nothing_left(task.id, client)

    def _idle_if_nothing_left(self, task_id: str, client: BridgeClient) -> None:
        """After a failed prompt: idle at once if the agent has nothing else to do.

        Sending marked the task working; the bridge never saw the prompt, so its state
        does not change and the follower, long-polling on it, would notice only later.
        """
        if any(p["state"] not in FINISHED for p in self.store.prompts(task_id)):
            return
        try:
            state = client.status()["dockyard"]["state"]
        except (BridgeUnreachable, BridgeError, KeyError, TypeError):
            return  # the follower finds out
        if state == State.IDLE.value:
            self.store.update(
                task_id, Status.ACTIVE, actor="engine", reason="its prompt failed", state=state
            )

    def prompt_failed(self, task_id: str, prompt_id: str, reason: str, *, actor: str) -> None:
        """A prompt will never reach the agent: failed, with its reason in the logs too."""
        if self.store.fail_prompt(task_id, prompt_id, reason, actor):
            self.prompt_failure_logged(task_id, prompt_id, reason)

    def prompt_failure_logged(self, task_id: str, prompt_id: str, reason: str) -> None:
        """Say in the task's logs that a prompt failed (its state and event say it too)."""
        log.warning("prompt %s of task %s failed: %s", prompt_id, task_id, reason)
        self.store.system_log(task_id, f"prompt {prompt_id} failed: {reason}")

    # failing -------------------------------------------------------------------------
    def fail(
        self,
        task_id: str,
        expected: Status,
        message: str,
        klass: ErrorClass,
        *,
        stop: bool = False,
        phase: str | None = None,
    ) -> None:
        """Move a task to error with its cause; optionally stop its workspace.

        With a capacity limit the workspace is always stopped (its disk and logs kept for
        inspection): a task in error holds no slot, so a running one would overcommit.
        """
        stop = stop or self.max_workspaces is not None
        extra = {"phase": phase} if phase else {}
        try:
            self.store.transition(
                task_id,
                expected,
                Status.ERROR,
                actor="engine",
                reason=message,
                message=message,
                error_class=klass.value,
                **extra,
            )
        except (TaskConflict, TaskNotFound):
            return
        self.wake()  # its slot is free
        if stop:
            try:
                self.backend.stop(task_id)
            except BackendError as exc:
                log.warning("could not stop workspace of %s: %s", task_id, exc)

    def fail_active(self, task_id: str, message: str, klass: ErrorClass, *, stop: bool) -> None:
        """Fail an active task unless a pause or delete holds it (their stop is on purpose)."""
        lock = self._lock_for(self._task_locks, task_id)
        if not lock.acquire(blocking=False):
            return
        try:
            self.fail(task_id, Status.ACTIVE, message, klass, stop=stop)
        finally:
            lock.release()

    def last_output(self, task_id: str) -> str:
        """`; last output: a | b | c` for error messages: stored logs, else the container's."""
        tail = self.store.tail(task_id, LAST_LINES) or self.backend.tail(task_id, LAST_LINES)
        return "; last output: " + " | ".join(tail) if tail else ""

    def workspace_died(self, task_id: str) -> None:
        """An active task's workspace stopped by itself: error, with the cause."""
        lock = self._lock_for(self._task_locks, task_id)
        if not lock.acquire(blocking=False):
            return  # a pause or delete is stopping it on purpose right now
        try:
            observed = self.backend.observe(task_id)
            if observed.running or observed.restarting:
                self._down_since.pop(task_id, None)
                return
            if self._await_restart(task_id, observed):
                return
            message = f"workspace stopped: {observed.death_cause()}" + self.last_output(task_id)
            klass = ErrorClass.PERMANENT if observed.oom_killed else ErrorClass.UNKNOWN
            self.fail(task_id, Status.ACTIVE, message, klass)
        finally:
            lock.release()

    def _await_restart(self, task_id: str, observed: Observed) -> bool:
        """True while a workspace whose template asks Docker to restart it may still return.

        A dockerd restart stops every container before it restarts the ones with a restart
        policy, and nothing in the API tells that stop from any other: give it a while.
        """
        task = self.store.get(task_id)
        if task.policy.get("restart", "no") == "no" or observed.oom_killed or not observed.exists:
            return False
        first = self._down_since.setdefault(task_id, time.monotonic())
        if time.monotonic() - first >= RESTART_GRACE_S:
            self._down_since.pop(task_id, None)
            return False
        note = "workspace is down; waiting for Docker's restart policy to bring it back"
        if task.message != note:
            self.store.update(task_id, Status.ACTIVE, actor="engine", message=note)
        return True

    # requests from the API -------------------------------------------------------------
    def create_task(
        self,
        *,
        template: str,
        preset: str | None,
        prompt: str,
        parameters: dict[str, Any],
        name: str | None,
        template_version: str | None = None,
        owner: str,
        actor: str = "user",
    ) -> Task:
        """Validate and render everything, then store `owner`'s task as pending."""
        if not prompt.strip():
            raise ParameterError("The prompt is empty", hint="give the task something to do")
        if name is not None and not NAME_RE.fullmatch(name):
            raise ParameterError(
                f"Invalid task name {name[:80]!r}: use 1-64 lowercase letters, digits and "
                "dashes, starting with a letter or digit"
            )
        tpl = self.catalog.get(template, template_version)
        check_size(prompt, "the prompt", tpl.config.agent.profile.max_prompt_bytes, tpl.name)
        chosen = select_preset(tpl, preset)
        given = {**self.secrets.from_environment(tpl, parameters), **parameters}
        spec = render_workspace(tpl, chosen, given)  # fails before anything is created
        if name is not None and not NAME_RE.match(name):
            raise ParameterError(
                f"Invalid task name {shorten(repr(name))}: use lowercase letters, digits and dashes"
            )
        self.backend.ping()
        if name is None:
            stem = slug_from_prompt(prompt)
            name = f"{stem}-{secrets.token_hex(2)}"
            while self.store.name_taken(owner, name):
                name = f"{stem}-{secrets.token_hex(2)}"
        now = utcnow()
        task = Task(
            id=str(uuid.uuid4()),
            name=name,
            display_name=prompt.strip().splitlines()[0][:120],
            owner=owner,
            template=tpl.name,
            template_version=tpl.version,
            preset=chosen.name if chosen else None,
            parameters=redact(tpl, spec.parameters),
            resolved=redact(tpl, spec.parameters),  # secrets live in the secret store only
            prompt=prompt,
            status=Status.PENDING,
            bridge_token=secrets.token_urlsafe(32),
            created_at=now,
            updated_at=now,
            message="waiting to be provisioned",
            policy=task_policy(self.catalog, spec),
        )
        task.message = self.admissions.first_message(task)
        secret_names = {p.name for p in tpl.config.parameters if p.secret}
        secret_values = {k: v for k, v in spec.parameters.items() if k in secret_names}
        warm = self.pools.claim(
            tpl,
            chosen,
            spec,
            secret_values,
            {
                "name": task.name,
                "owner": owner,
                "display_name": task.display_name,
                "prompt": prompt,
                "message": "claimed a warm workspace",
            },
        )
        if warm is not None:
            return self._start_claimed(warm, tpl, spec, actor)
        if self.catalog.versions is not None:
            self.catalog.versions.snapshot(tpl)  # the task pins this exact content
        # Saved first: the engine may pick the stored task up at once and must find them.
        # A task that cannot be stored (its name taken, text the database refuses) must
        # not leave its secrets behind in a file no task owns.
        self.secrets.save(task.id, secret_values)
        try:
            self.store.create_task(task, actor=actor)
        except BaseException:
            self.secrets.delete(task.id)
            raise
        # The bridge queues the first prompt from its config; recording it here gives it
        # an id and a delivery state like every other prompt.
        self.store.add_prompt(task.id, initial_prompt_id(task), prompt)
        self.store.mark_handed(initial_prompt_id(task))
        self.wake()
        return task

    def _start_claimed(self, task: Task, tpl: Template, spec: WorkspaceSpec, actor: str) -> Task:
        """A claimed warm workspace: run the per-claim step, then give it the prompt."""
        try:
            self.pools.claim_setup(task, tpl, spec)
        except DockyardError as exc:
            self.fail(task.id, Status.ACTIVE, str(exc), ErrorClass.PERMANENT)
            return self.store.get(task.id)
        self.store.add_prompt(task.id, initial_prompt_id(task), task.prompt)
        self.store.update(task.id, Status.ACTIVE, actor=actor, state=State.WORKING.value)
        self._deliver_now(task)
        return self.store.get(task.id)

    def pause(
        self,
        ref: str,
        *,
        actor: str = "user",
        reason: str = "paused by user",
        expect_idle: bool = False,
    ) -> Task:
        """Stop the workspace, keep its disk and logs."""
        task = self.store.get(ref)
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)
            if task.status != Status.ACTIVE:
                hint = "wait until it is active" if task.status == Status.INITIALIZING else None
                raise TaskConflict(
                    f"Cannot pause {task.name}: it is {task.status.value}", hint=hint
                )
            if expect_idle and task.state != State.IDLE.value:
                raise TaskConflict(f"{task.name} is working again; not auto-pausing")
            self._stop_follower(task.id, wait=False)
            self.sync_logs(task)
            self.backend.stop(task.id)
            message = "paused" if actor.startswith("user") else reason
            paused = self.store.transition(
                task.id,
                Status.ACTIVE,
                Status.PAUSED,
                actor=actor,
                action="pause",
                reason=reason,
                message=message,
            )
        self.wake()  # a slot is free: a waiting task may start
        return paused

    def resume(self, ref: str, *, actor: str = "user", reason: str = "resumed by user") -> Task:
        """Start a paused or errored task's workspace again."""
        task = self.store.get(ref)
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)
            if task.status not in (Status.PAUSED, Status.ERROR):
                raise TaskConflict(
                    f"Cannot resume {task.name}: it is {task.status.value}, not paused or error"
                )
            # Past capacity it waits as pending (its prompts kept) until a slot frees.
            task, started = self.admissions.resume(
                task, actor=actor, reason=reason, lease_s=LEASE_TTL_S
            )
        if started:
            self._submit_provision(task.id)
        return task

    def delete(self, ref: str, *, actor: str = "user") -> Task:
        """Remove the task's workspace (containers and volumes) and its records.

        Of deletes racing for one task exactly one wins; the others find it gone (404).
        """
        task = self.store.get(ref)
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)  # a delete that held the lock first removed it
            self._stop_follower(task.id, wait=False)
            if task.status not in TERMINAL:
                with contextlib.suppress(TaskConflict, TaskNotFound):
                    self.store.transition(
                        task.id,
                        task.status,
                        Status.CANCELLED,
                        actor=actor,
                        reason="deleted by user",
                    )
            self.backend.remove(task.id)
            if not self.store.delete(task.id):  # another server sharing the store was first
                raise TaskNotFound(f"No task {ref[:80]!r}", hint="it was deleted just now")
            self.secrets.delete(task.id)
        self.wake()  # a slot may be free: a waiting task may start
        return task

    def send(self, ref: str, text: str, *, actor: str = "user") -> dict[str, Any]:
        """Queue a follow-up prompt; it reaches the agent once it is active and idle.

        A paused task is resumed first; a starting one gets it once active; a working
        agent gets it when it is next idle. The prompt is stored before anything else, so
        a crash or restart anywhere after this call loses nothing.
        """
        task = self.store.get(ref)
        if not text.strip():
            raise ParameterError("The prompt is empty")
        if task.status in TERMINAL or task.status == Status.ERROR:
            hint = (
                f"resume it first: dockyard task resume {task.name}"
                if task.status == Status.ERROR
                else "create a new task instead"
            )
            raise TaskConflict(f"Cannot send to {task.name}: it is {task.status.value}", hint=hint)
        self._check_prompt_size(task, text)
        prompt = self.store.add_prompt(task.id, uuid.uuid4().hex, text)
        if task.status == Status.PAUSED:
            with contextlib.suppress(TaskConflict):
                self.resume(task.id, actor=actor, reason="resumed to take a prompt")
        elif task.status == Status.ACTIVE:
            # The agent is about to work: say so at once, the bridge will confirm.
            self.store.update(task.id, Status.ACTIVE, actor=actor, state=State.WORKING.value)
            self._deliver_now(task)
        return {"ok": True, "prompt_id": prompt["id"], "state": prompt["state"]}

    def _check_prompt_size(self, task: Task, text: str) -> None:
        """Refuse input larger than the task's template takes (its pinned version)."""
        try:
            tpl = self.catalog.get(task.template, task.template_version)
        except DockyardError:
            return  # its template is gone: the API's own limit still holds
        check_size(text, "the input", tpl.config.agent.profile.max_prompt_bytes, tpl.name)

    def _deliver_now(self, task: Task) -> None:
        # The follower knows where the bridge is; asking Docker costs a list and an inspect.
        endpoint = self.endpoints.get(task.id) or self.backend.observe(task.id).endpoint
        if not endpoint:
            return  # the follower delivers once the workspace is back
        client = BridgeClient(endpoint, task.bridge_token, timeout=5)
        try:
            self.deliver_prompts(task, client)
        except (BridgeUnreachable, BridgeError) as exc:
            log.warning("prompt for %s stays queued: %s", task.id, exc)
        finally:
            client.close()
