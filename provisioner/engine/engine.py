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
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provisioner.backends.base import Backend, Observed
from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.capacity import Usage
from provisioner.engine.admission import Admissions
from provisioner.engine.claims import TaskClaims
from provisioner.engine.commands import LEASE_TTL_S, UserCommands
from provisioner.engine.draining import Draining
from provisioner.engine.follower import Follower
from provisioner.engine.gitops import GitWork
from provisioner.engine.kept import KeptBundles
from provisioner.engine.mcp_relay import McpCall
from provisioner.engine.ordering import TaskOrdering
from provisioner.engine.outcomes import TaskOutcomes
from provisioner.engine.pools import WarmPools
from provisioner.engine.provision import Provisioner
from provisioner.engine.retention import RetentionSweeper
from provisioner.engine.retries import Retries
from provisioner.engine.routing import Routes
from provisioner.engine.scheduler import Scheduler
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import (
    BackendError,
    BackendUnavailable,
    DockyardError,
    PhaseTimeout,
    TaskConflict,
    TaskNotFound,
)
from provisioner.lifecycle import TERMINAL, ErrorClass, State, Status
from provisioner.logcontext import in_task
from provisioner.model import POOL_OWNER, Task, parse_time
from provisioner.placement import PAUSE, on_lost
from provisioner.pricing import PriceTable
from provisioner.prompts import FINISHED, refusal_reason
from provisioner.routing import Target
from provisioner.session_limits import OpenSessions, idle_since
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog

log = logging.getLogger(__name__)

ORPHAN_SWEEP_EVERY_S = 30.0
LIVE_STATUSES = [s for s in Status if s not in TERMINAL]
LAST_LINES = 8
FOLLOWER_JOIN_S = 15.0
RESTART_GRACE_S = 45.0
# how long a mark that an engine is stopping a workspace on purpose holds (see mark_stopping)
STOPPING_LEASE_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unserved(task: Task) -> bool:
    """A task for a codebase no target has taken (see engine.routing)."""
    return task.codebase is not None and task.target is None


class Engine(UserCommands, TaskOutcomes, TaskOrdering, TaskClaims):
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
        pricing: PriceTable | None = None,
        targets: Mapping[str, Target] | None = None,
        retention: str | None = None,
        kept: KeptBundles | None = None,
        sessions: OpenSessions | None = None,
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
        # targets: the config's named routes, each with its own optional limit
        self.admissions = Admissions(self, max_workspaces, targets)
        self.routes = Routes(self)
        # how long finished tasks' workspaces stay when their template does not say
        self.retention = retention
        # the branch is kept (task pull, task diff) before retention removes a workspace
        # (on its own thread: the pass only hands it the tasks due, see engine/retention)
        self.retention_sweeper = RetentionSweeper(
            store,
            backend,
            keep=lambda task: self._keep_before_removal(task),
            lock_for=lambda task_id: self._lock_for(self._task_locks, task_id),
        )
        self.retries = Retries(self)
        self.scheduler = Scheduler(self)  # schedules (cron): their fire times, once
        self.pricing = pricing or PriceTable()  # fills in dollars of usage reported as tokens
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._provisioning: set[str] = set()
        self._pausing: set[str] = set()
        self._down_since: dict[str, float] = {}
        self._followers: dict[str, Follower] = {}
        # the server's /mcp, which answers the agents' MCP messages relayed from their
        # workspaces (engine/mcp_relay.py); set by the server before it starts the engine
        self.mcp_call: McpCall | None = None
        self._task_locks: dict[str, threading.Lock] = {}
        self._delivery_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="provision")
        self.draining = Draining(self, self._pool)
        # the task repositories' checkpoints and the work out (diff, bundle, push)
        self.gitwork = GitWork(
            store, backend, lambda: self.catalog, lambda task_id: self.secrets.load(task_id)
        )
        # deleted tasks' branches, for task pull after the workspace is gone (None: none)
        self.kept = kept
        # shells, exec streams and port-forwards open now in this process: their bounds,
        # and the activity that keeps a task from idle auto-pause (session_limits.py)
        self.sessions = sessions or OpenSessions()
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
        self.retention_sweeper.stop()  # a keep under way removes nothing after it
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
    def workers_targets(self) -> dict[str, Target]:
        """The targets of the config whose tasks workers claim."""
        return {n: t for n, t in self.admissions.targets.items() if t.workers}

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
        live, everyone = self._read_live()
        running: set[str] | None = None
        if any(t.status == Status.ACTIVE for t in live):
            try:
                running = self.backend.running_task_ids()
            except BackendError as exc:
                log.warning("cannot list workspaces: %s", exc)
        self.retries.run(live)  # errors worth retrying get their time, or go back in line
        if self.expire_claims(live):  # claim leases that ran out: back in the pool
            live, everyone = self._read_live()
        pending = [t for t in live if t.status == Status.PENDING]
        if pending and self.admissions.targets:
            self.routes.route_waiting(pending)  # a codebase a target now serves
        # draining (stored, shared by every server on the database): admit nothing
        draining = self.draining.step(live)
        # those waiting for dependencies are kept apart: they hold up no one behind them
        pending = self.gate(live, everyone)
        self.make_offers(pending)  # ready tasks created to be offered to one worker
        # a queue-only task is claimed by a worker: it never takes a workspace
        to_admit = [t for t in pending if not t.queue_only]
        started: list[str] = []
        if to_admit and draining:
            self.draining.tell_waiting(to_admit)
        elif to_admit:
            started = self.admissions.run(to_admit, LEASE_TTL_S)
            for task_id in started:
                self._submit_provision(task_id)
        # a task for a codebase no target serves never takes a slot: it holds back no one
        left = [t for t in pending if t.id not in started and not _unserved(t)]
        self.promote_backlog(everyone, left)
        for task in live:
            if task.queue_only:
                continue  # no workspace: its worker reports, its lease expires
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
        self.retention_sweeper.step({t.id for t in live}, self.retention)
        if time.monotonic() - self._last_sweep > ORPHAN_SWEEP_EVERY_S:
            self._last_sweep = time.monotonic()
            self._sweep_orphans()
        if not draining:
            self.pools.fill()
        self.scheduler.maybe_run()  # a task it makes waits for the next pass like any other

    def _read_live(self) -> tuple[list[Task], list[Task]]:
        """The live tasks, and those plus the finished tasks they depend on: all a pass
        needs. Finished tasks are not read on every pass (a long-lived server has
        thousands); retention reads them when one may be due (RetentionSweeper)."""
        live = self.store.list_tasks(LIVE_STATUSES, kind=None)
        ids = {t.id for t in live}
        named = {d for t in live for d in t.depends_on if d not in ids}
        return live, live + list(self.store.tasks_by_ids(named).values())

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
        self._pool.submit(in_task(task_id, self._provision), task_id)

    def _sweep_orphans(self) -> None:
        # The workspaces first, the tasks after: a task's row is stored before any of its
        # resources exist, so whatever was listed has its row in the later read. (The other
        # way round, a task created by another engine while the listing ran, its volumes
        # made meanwhile, was taken for an orphan and had its workspace removed.)
        try:
            found = self.backend.task_ids()
        except BackendError as exc:
            log.warning("cannot list workspaces: %s", exc)
            return
        known = {t.id for t in self.store.list_tasks(kind=None)}
        for task_id in found - known:
            log.info("removing workspace of deleted task %s", task_id)
            self.backend.remove(task_id)

    def _keep_before_removal(self, task: Task) -> bool:
        """Keep the task branch and its diff, as a delete does, before retention removes
        the workspace: `task diff` and `task pull` then answer from the copy. False when
        git failed: the workspace stays for a later try (run on retention's thread)."""
        if self.kept is None or not task.base_commit:
            return True
        return self.gitwork.keep_before_removal(task, self.kept, actor="policy")

    def _maybe_auto_pause(self, task: Task) -> None:
        limit = task.policy.get("idle_timeout")
        if not limit or task.state != State.IDLE.value or not task.state_changed_at:
            return
        if self.sessions.open_for(task.id):
            return  # its user works in it (a shell, exec or port-forward): not idle
        since = idle_since(
            parse_time(task.state_changed_at).timestamp(), self.sessions.last_closed(task.id)
        )
        idle_for = time.time() - since
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
            self._ensure_follower(task_id, provisioner.endpoint)
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
    def _ensure_follower(self, task_id: str, endpoint: str | None = None) -> None:
        """A follower for the task unless one runs; `endpoint`: its bridge's address, as
        just seen (the follower then starts without asking the backend)."""
        with self._lock:
            current = self._followers.get(task_id)
            if self._stopping.is_set() or (current and not current.stopping.is_set()):
                return
            # A follower told to stop may still sit in a long poll: replace, don't wait.
            follower = Follower(self, task_id, endpoint)
            self._followers[task_id] = follower
        follower.start()

    def follower_done(self, follower: Follower) -> None:
        """Called by a follower thread as it ends."""
        with self._lock:
            if self._followers.get(follower.task_id) is follower:
                del self._followers[follower.task_id]

    def nudge_follower(self, task_id: str) -> None:
        """A prompt was stored for an active task: its follower hands it over now.

        Without a follower (it ended, or none started yet) the next reconcile pass, run
        now, starts one, and a follower hands over what is waiting before it polls.
        """
        with self._lock:
            follower = self._followers.get(task_id)
        if follower is not None and not follower.stopping.is_set():
            follower.nudge()
        else:
            self.wake()

    def _stop_follower(self, task_id: str, wait: bool = True) -> None:
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
        """Hand every prompt the bridge does not have yet to it, in the order sent.

        Only the task's follower calls this (the API nudges it: nudge_follower)."""
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

        With a capacity limit (the server's or a target's) the workspace is always stopped
        (its disk and logs kept for inspection): a task in error holds no slot, so a
        running one would overcommit.
        """
        stop = stop or self.admissions.limited
        extra: dict[str, Any] = {"phase": phase} if phase else {}
        if stop and expected == Status.ACTIVE:
            # a stop of a live workspace: what the agent wrote is committed first
            with contextlib.suppress(TaskNotFound):
                self.gitwork.checkpoint(self.store.get(task_id), "stop", actor="engine")
        if stop:
            # Stopped before the error is recorded: the record frees its slot, and a waiting
            # task must not start while this workspace still runs (docker stop's grace).
            try:
                self.backend.stop(task_id)
            except BackendError as exc:
                log.warning("could not stop workspace of %s: %s", task_id, exc)
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

    def mark_stopping(self, task_id: str) -> None:
        """Say in the store that this engine is stopping an active task's workspace on
        purpose (a pause, a completion), before it stops it: another engine sharing the
        database that sees the workspace go down meanwhile must not call it dead. The
        mark is the lease fields, which an active task does not otherwise use; the
        status change that follows the stop clears them."""
        self.store.update(
            task_id,
            Status.ACTIVE,
            actor="engine",
            lease_owner=self.worker_id,
            lease_until=time.time() + STOPPING_LEASE_S,
        )

    def _stopping_elsewhere(self, task_id: str) -> bool:
        """True while another engine has marked this active task as being stopped."""
        try:
            task = self.store.get(task_id)
        except TaskNotFound:
            return True  # deleted: nothing to fail
        return bool(
            task.status == Status.ACTIVE
            and task.lease_owner
            and task.lease_owner != self.worker_id
            and (task.lease_until or 0) > time.time()
        )

    def fail_active(self, task_id: str, message: str, klass: ErrorClass, *, stop: bool) -> None:
        """Fail an active task unless a pause or delete holds it (their stop is on purpose)."""
        lock = self._lock_for(self._task_locks, task_id)
        if not lock.acquire(blocking=False):
            return
        try:
            if self._stopping_elsewhere(task_id):
                return
            self.fail(task_id, Status.ACTIVE, message, klass, stop=stop)
        finally:
            lock.release()

    def last_output(self, task_id: str) -> str:
        """`; last output: a | b | c` for error messages: stored logs, else the container's."""
        tail = self.store.tail(task_id, LAST_LINES) or self.backend.tail(task_id, LAST_LINES)
        return "; last output: " + " | ".join(tail) if tail else ""

    def workspace_died(self, task_id: str) -> None:
        """An active task's workspace stopped by itself: error, with the cause (or paused,
        when its node was drained and its template says `placement.on_drain: pause`)."""
        lock = self._lock_for(self._task_locks, task_id)
        if not lock.acquire(blocking=False):
            return  # a pause or delete is stopping it on purpose right now
        pause_for = ""
        try:
            if self._stopping_elsewhere(task_id):
                return  # another engine is pausing or completing it
            observed = self.backend.observe(task_id)
            if observed.running or observed.restarting:
                self._down_since.pop(task_id, None)
                return
            if self._await_restart(task_id, observed):
                return
            policy = self.store.get(task_id).policy
            if on_lost(policy, observed.lost, observed.drained) == PAUSE:
                pause_for = observed.lost
            else:
                message = f"workspace stopped: {observed.death_cause()}"
                message += self.last_output(task_id)
                klass = ErrorClass.PERMANENT if observed.oom_killed else ErrorClass.UNKNOWN
                self.fail(task_id, Status.ACTIVE, message, klass)
        finally:
            lock.release()
        if pause_for:
            self._pause_on_drain(task_id, pause_for)

    def _pause_on_drain(self, task_id: str, why: str) -> None:
        """Pause a task whose node was drained: the pause's own path (logs synced, the
        repository checkpointed if the workspace still answers, the service scaled to
        none), so a resume once the node is active starts it there with its disk."""
        reason = f"{why}; paused with its disk on the node: resume it once the node is active"
        try:
            self.pause(task_id, actor="engine", reason=reason)
        except (TaskConflict, TaskNotFound):
            return  # someone else moved it on meanwhile (a delete, another engine)
        except BackendError as exc:
            self.fail(task_id, Status.ACTIVE, f"{reason} (the pause failed: {exc})",
                      ErrorClass.TRANSIENT)  # fmt: skip

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
