"""The reconcile step that removes finished tasks' workspaces once their retention has
passed (which are due is the pure `provisioner.retention`). Only the workspace goes, its
container and volumes; the task's row, logs and history stay, and its `workspace` field
says when and why it was removed (`task status` shows it)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from provisioner.backends.base import Backend
from provisioner.errors import BackendError
from provisioner.model import Task, utcnow
from provisioner.retention import due_for_removal
from provisioner.store.store import Store

log = logging.getLogger(__name__)


def remove_expired(
    store: Store, backend: Backend, tasks: list[Task], default: str | None
) -> list[str]:
    """Remove the workspaces of finished tasks past their retention; the ids removed."""
    removed = []
    for due in due_for_removal(tasks, datetime.now(UTC), default):
        task = due.task
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
