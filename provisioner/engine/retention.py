"""Removing finished tasks' workspaces once their retention has passed (which are due is
the pure `provisioner.retention`). Only the workspace goes, its container and volumes; the
task's row, logs and history stay, and its `workspace` field says when and why it was
removed (`task status` shows it).

The reconcile pass only decides which are due. Keeping each one's branch first (git in
its workspace, bounded at minutes) and the removal after it run on the sweeper's own
thread, one task at a time: a slow or hung git never holds up a pass (admission,
provisioning, auto-pause, every other task's housekeeping)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Set
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from provisioner.backends.base import Backend
from provisioner.errors import BackendError, TaskNotFound
from provisioner.lifecycle import TERMINAL
from provisioner.model import Task, utcnow
from provisioner.retention import Due, due_for_removal, next_removal, removed, retry_keep_in
from provisioner.store.store import Store

log = logging.getLogger(__name__)

# Finished tasks are read again at least this often even when nothing says one is due
# (another server sharing the database may have finished some).
SWEEP_EVERY_S = 60.0
RETRY_FAILED_S = 10.0

# keeps a task's branch before its workspace goes: True when it may go (kept, or nothing
# to keep), False when keeping failed (the workspace stays for a later try)
Keep = Callable[[Task], bool]


def _no_lock(task_id: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class RetentionSweeper:
    """Finds the finished tasks due for removal, only when it can find some (so a pass
    does not read every task ever finished): when a task has left the live set since the
    last pass, when the earliest known removal time has come, when the server's default
    changed, when its thread has finished what it was given, or every SWEEP_EVERY_S.
    It hands them to its thread, which keeps each one's branch, then removes it."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        every_s: float = SWEEP_EVERY_S,
        keep: Keep | None = None,
        lock_for: Callable[[str], AbstractContextManager[object]] = _no_lock,
    ) -> None:
        self.store = store
        self.backend = backend
        self.keep = keep
        # the engine's per-task lock: a delete of the task in this engine (which keeps
        # the branch too) waits for the keep under way, never runs beside it
        self.lock_for = lock_for
        self.every_s = every_s
        self._live: Set[str] = frozenset()
        self._next = 0.0  # monotonic time of the next sweep; 0: at the next pass
        self._default: str | None = None
        self._mutex = threading.Lock()
        self._busy: set[str] = set()  # handed to the thread and not done: never twice
        self._later: dict[str, float] = {}  # not before this monotonic time (a retry)
        self._failed_keeps: dict[str, int] = {}
        self._queue: queue.SimpleQueue[Due | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # the reconcile pass's share ------------------------------------------------------
    def step(self, live_ids: Set[str], default: str | None) -> list[str]:
        """One reconcile pass's share: the ids handed to the thread now (it removes their
        workspaces later). Reads the store; never waits on git or the backend."""
        finished_some = bool(self._live - live_ids)
        self._live = frozenset(live_ids)
        now = time.monotonic()
        with self._mutex:
            due_now = finished_some or now >= self._next or default != self._default
        if not due_now or self._stopping.is_set():
            return []
        self._default = default
        finished = self.store.list_tasks(list(TERMINAL), kind=None)
        wall = datetime.now(UTC)
        handed: list[str] = []
        with self._mutex:
            # a retry whose time has come is due like any other (or gone: deleted)
            self._later = {k: t for k, t in self._later.items() if t > now}
            for due in due_for_removal(finished, wall, default):
                task_id = due.task.id
                if task_id in self._busy or task_id in self._later:
                    continue
                self._busy.add(task_id)
                handed.append(task_id)
                self._queue.put(due)
            wait = self.every_s
            soonest = next_removal(finished, wall, default)
            if soonest is not None:
                wait = min(wait, max((soonest - wall).total_seconds(), 0.0))
            if self._later:
                wait = min(wait, min(self._later.values()) - now)
            # (the thread, once it has done all it was given, asks for a look at the next
            # pass: a retry it set is in _later, counted above)
            self._next = now + wait
        if handed:
            self._start()
        return handed

    def stop(self) -> None:
        """The server stops: a keep under way ends (it is bounded) but its workspace is
        not removed, nor anything after it; the next pass (of this server once it runs
        again, or another's on the database) keeps and removes those."""
        self._stopping.set()
        self._queue.put(None)

    def busy(self) -> set[str]:
        """The ids handed to the thread whose keep and removal have not ended."""
        with self._mutex:
            return set(self._busy)

    # the thread ----------------------------------------------------------------------
    def _start(self) -> None:
        with self._mutex:
            if self._thread is not None or self._stopping.is_set():
                return
            # a daemon: a server exiting mid-keep does not wait for git (nothing was
            # removed, the next server keeps again)
            self._thread = threading.Thread(target=self._work, name="retention", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            due = self._queue.get()
            if due is None or self._stopping.is_set():
                return
            try:
                self._keep_and_remove(due)
            except Exception:  # one task's trouble never ends the thread
                log.exception("retention: removing the workspace of %s failed", due.task.id)
                self._retry(due.task.id, RETRY_FAILED_S)
            finally:
                with self._mutex:
                    self._busy.discard(due.task.id)
                    if not self._busy:
                        self._next = 0.0  # look again at the next pass

    def _retry(self, task_id: str, seconds: float) -> None:
        with self._mutex:
            self._later[task_id] = time.monotonic() + seconds

    def _keep_and_remove(self, due: Due) -> None:
        task_id = due.task.id
        with self.lock_for(task_id):
            try:
                task = self.store.get(task_id)
            except TaskNotFound:
                with self._mutex:
                    self._failed_keeps.pop(task_id, None)
                return  # deleted meanwhile: the delete kept it and removed the workspace
            if removed(task) or task.status not in TERMINAL:
                return  # another server sharing the store removed it meanwhile
            if not self._kept(task, due):
                return
            if self._stopping.is_set():
                log.info("retention: %s kept; the server stops before removing it", task_id)
                return
            self._remove(task, due)

    def _kept(self, task: Task, due: Due) -> bool:
        """Keep the branch; False when the workspace must stay (a retry is set)."""
        if self.keep is None:
            return True
        try:
            may_go = self.keep(task)
        except Exception:  # a bug in keeping: the work stays, tried again later
            log.exception("retention: keeping the branch of %s failed", task.id)
            may_go = False
        if may_go:
            with self._mutex:
                self._failed_keeps.pop(task.id, None)
            return True
        with self._mutex:
            failures = self._failed_keeps.get(task.id, 0) + 1
            self._failed_keeps[task.id] = failures
        retry_in = retry_keep_in(failures)
        if retry_in is None:
            log.warning(
                "retention: the branch of %s could not be kept (%d tries); its workspace "
                "is removed anyway (see its kept events)",
                task.id,
                failures,
            )
            return True
        note = (
            f"workspace kept past its retention ({due.retention}): its branch could not be "
            f"kept (try {failures}), retention tries again in {retry_in:g}s; "
            "see the kept event for why"
        )
        log.warning("retention: %s: %s", task.id, note)
        self.store.system_log(task.id, note)
        self._retry(task.id, retry_in)
        return False

    def _remove(self, task: Task, due: Due) -> None:
        try:
            self.backend.remove(task.id)  # idempotent: two engines doing it at once is harmless
        except BackendError as exc:
            log.warning("retention: cannot remove the workspace of %s yet: %s", task.id, exc)
            self._retry(task.id, RETRY_FAILED_S)
            return
        with self._mutex:
            self._failed_keeps.pop(task.id, None)
            self._later.pop(task.id, None)
        reason = f"workspace removed {due.retention} after the task finished (retention)"
        # once per task: another engine sharing the store may have recorded it first
        self.store.record(
            task.id,
            "retention",
            actor="policy",
            reason=reason + "; its logs and history are kept",
            to_value="removed",
            ref="retention",
            workspace={"removed_at": utcnow(), "reason": reason},
        )
        log.info("retention: removed the workspace of %s (%s)", task.id, due.retention)
