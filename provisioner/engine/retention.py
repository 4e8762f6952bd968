"""The reconcile step that removes finished tasks' workspaces once their retention has
passed (which are due is the pure `provisioner.retention`). Only the workspace goes, its
container and volumes; the task's row, logs and history stay, and its `workspace` field
says when and why it was removed (`task status` shows it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Set
from datetime import UTC, datetime

from provisioner.backends.base import Backend
from provisioner.errors import BackendError
from provisioner.lifecycle import TERMINAL
from provisioner.model import Task, utcnow
from provisioner.retention import due_for_removal, next_removal
from provisioner.store.store import Store

log = logging.getLogger(__name__)


def remove_expired(
    store: Store,
    backend: Backend,
    tasks: list[Task],
    default: str | None,
    before_remove: Callable[[Task], None] | None = None,
) -> list[str]:
    """Remove the workspaces of finished tasks past their retention; the ids removed.
    `before_remove` runs first for each (the engine keeps the task branch); it must not
    raise, and a failure of it never keeps a workspace."""
    removed = []
    for due in due_for_removal(tasks, datetime.now(UTC), default):
        task = due.task
        if before_remove is not None:
            try:
                before_remove(task)
            except Exception:  # never a reason to keep the workspace forever
                log.exception("retention: keeping the branch of %s failed", task.id)
        try:
            backend.remove(task.id)  # idempotent: two engines doing it at once is harmless
        except BackendError as exc:
            log.warning("retention: cannot remove the workspace of %s yet: %s", task.id, exc)
            continue  # tried again on a later pass
        reason = f"workspace removed {due.retention} after the task finished (retention)"
        # once per task: another engine sharing the store may have recorded it first
        store.record(
            task.id,
            "retention",
            actor="policy",
            reason=reason + "; its logs and history are kept",
            to_value="removed",
            ref="retention",
            workspace={"removed_at": utcnow(), "reason": reason},
        )
        log.info("retention: removed the workspace of %s (%s)", task.id, due.retention)
        removed.append(task.id)
    return removed


# Finished tasks are read again at least this often even when nothing says one is due
# (another server sharing the database may have finished some).
SWEEP_EVERY_S = 60.0
RETRY_FAILED_S = 10.0


class RetentionSweeper:
    """Runs `remove_expired` only when it can find something, so a reconcile pass does not
    read every task ever finished: when a task has left the live set since the last pass,
    when the earliest known removal time has come, when the server's default changed, or
    every SWEEP_EVERY_S."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        every_s: float = SWEEP_EVERY_S,
        before_remove: Callable[[Task], None] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.before_remove = before_remove
        self.every_s = every_s
        self._live: Set[str] = frozenset()
        self._next = 0.0  # monotonic time of the next sweep; 0: at the first pass
        self._default: str | None = None

    def step(self, live_ids: Set[str], default: str | None) -> list[str]:
        """One reconcile pass's share: the ids whose workspaces were removed."""
        finished_some = bool(self._live - live_ids)
        self._live = frozenset(live_ids)
        now = time.monotonic()
        if not (finished_some or now >= self._next or default != self._default):
            return []
        self._default = default
        finished = self.store.list_tasks(list(TERMINAL), kind=None)
        removed = remove_expired(self.store, self.backend, finished, default, self.before_remove)
        wall = datetime.now(UTC)
        soonest = next_removal(finished, wall, default)
        wait = self.every_s
        if any(d.task.id not in removed for d in due_for_removal(finished, wall, default)):
            wait = RETRY_FAILED_S  # the backend refused a removal: try again soon
        if soonest is not None:
            wait = min(wait, max((soonest - wall).total_seconds(), 0.0))
        self._next = now + wait
        return removed
