"""Retrying tasks: the reconcile pass that schedules and starts automatic retries, and
`task retry` (a retry by hand). What to do is decided by the pure `retrying` module.

Level-triggered like the rest of the engine: a task in error with a retryable class and
retries left gets a `retry_at` (a `retry` event says when and why); once that time has
come, the task is queued again as its next attempt (error -> pending, attempt + 1), and
admission starts it like any resumed task, its workspace and disk kept. A crash between
any two steps leaves a state the next pass picks up from.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from provisioner.errors import TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task, parse_time
from provisioner.prompts import FINISHED, new_prompt_id
from provisioner.retrying import attempt_line, retry_prompt, should_retry, stamp

if TYPE_CHECKING:
    from provisioner.engine.ports import RetryPort

log = logging.getLogger(__name__)

# what `task retry` takes back into the queue
RETRIABLE_BY_HAND = (Status.FAILED, Status.ERROR)


def _why(task: Task) -> str:
    """`TRANSIENT: docker is not running` (the error's class and first line)."""
    first = (task.message or "").strip().splitlines()
    return f"{task.error_class or 'UNKNOWN'}: {first[0][:200] if first else 'no message'}"


class Retries:
    """Schedules and starts the retries of one engine's tasks."""

    def __init__(self, engine: RetryPort) -> None:
        self.engine = engine

    def run(self, live: list[Task], now: datetime | None = None) -> None:
        """The reconcile step: look at every task in error."""
        now = now or datetime.now(UTC)
        for task in live:
            if task.status != Status.ERROR:
                continue
            try:
                if task.retry_at is None:
                    self._schedule(task, now)
                elif parse_time(task.retry_at) <= now:
                    self._start(task, "policy", "automatic retry", _why(task))
            except (TaskConflict, TaskNotFound):
                continue  # resumed, retried by another engine, or deleted meanwhile

    def _schedule(self, task: Task, now: datetime) -> None:
        when = should_retry(task, task.error_class, now)
        if when is None:
            return
        delay = (when - now).total_seconds()
        self.engine.store.record(
            task.id,
            "retry",
            actor="policy",
            reason=f"{_why(task)}; {attempt_line(task, task.attempt + 1)} in {delay:g}s",
            from_value=str(task.attempt),
            to_value=str(task.attempt + 1),
            expected=Status.ERROR,
            # once per error: two engines sharing the store both see it, one schedules
            ref=f"retry:{task.attempt}:{task.updated_at}",
            retry_at=stamp(when),
        )

    def retry(self, task: Task, *, actor: str) -> Task:
        """`task retry`: queue a failed or errored task again at once, as its next attempt."""
        if task.status not in RETRIABLE_BY_HAND:
            raise TaskConflict(
                f"Cannot retry {task.name}: it is {task.status.value}; only a failed task or "
                "one in error can be retried",
                hint=(
                    f"pause or complete it first: dockyard task complete {task.name}"
                    if task.status == Status.ACTIVE
                    else None
                ),
            )
        cause = _why(task) if task.status == Status.ERROR else self._outcome_of(task)
        return self._start(task, actor, f"retried by {actor}", cause)

    @staticmethod
    def _outcome_of(task: Task) -> str:
        first = (task.message or "").strip().splitlines()
        return first[0][:200] if first else (task.outcome or "FAILED")

    def _start(self, task: Task, actor: str, how: str, cause: str) -> Task:
        """Queue the task as its next attempt; an agent that already took every prompt is
        told it is tried again (the bridge hands over prompts not yet taken by itself)."""
        store = self.engine.store
        attempt = task.attempt + 1
        reason = f"{attempt_line(task, attempt)}: {how} after {cause}"
        queued = store.requeue(task.id, task.status, attempt, actor=actor, reason=reason)
        if all(p["state"] in FINISHED for p in store.prompts(task.id)):
            store.add_prompt(task.id, new_prompt_id(), retry_prompt(attempt, cause))
        log.info("task %s queued again: %s", task.id, reason)
        self.engine.wake()  # admission starts it when a slot is free
        return queued
