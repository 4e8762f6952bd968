"""Changing a task's first input before any workspace took it (Coder's PATCH .../input)."""

from __future__ import annotations

from sqlalchemy import and_, update

from provisioner.lifecycle import Status
from provisioner.store.schema import prompts
from provisioner.store.store import Store

# the statuses in which no workspace has been handed the first prompt yet
NOT_STARTED = (Status.BACKLOG, Status.PENDING)


def replace_first_input(store: Store, task_id: str, text: str, *, actor: str) -> bool:
    """Set the task's prompt (and its queued first prompt) to `text` while it has not
    started, with an `input` event; False when it has (send a follow-up instead)."""
    reason = "first input replaced before the task started"
    if not any(
        store.record(task_id, "input", actor=actor, reason=reason, expected=status, prompt=text)
        for status in NOT_STARTED
    ):
        return False
    with store.db.begin() as conn:
        conn.execute(
            update(prompts)
            .where(and_(prompts.c.id == f"{task_id}-initial", prompts.c.task_id == task_id))
            .values(content=text)
        )
    return True
