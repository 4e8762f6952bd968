"""Admission: pending tasks take workspace slots in queue order, within the capacity limit.

The decisions are the pure ones of `capacity`; the store applies each under its capacity
lock. Every reconcile pass first stops warm-pool members whose slots waiting user tasks
need, then starts pending tasks in order until one has to wait, then tells each waiting
task where it stands.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from provisioner.capacity import Usage, waiting_message
from provisioner.errors import BackendError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Phase, Status
from provisioner.model import Task, utcnow

if TYPE_CHECKING:
    from provisioner.engine.ports import AdmissionPort

log = logging.getLogger(__name__)


def _start_changes(task: Task, worker: str, lease_s: float) -> dict[str, Any]:
    """Fields of a task as it takes a slot: a first start builds, a resume starts."""
    resuming = bool(task.phases)  # it has been started before: its workspace exists
    return {
        "phase": (Phase.START if resuming else Phase.IMAGE).value,
        "message": "resuming" if resuming else "preparing the image",
        "lease_owner": worker,
        "lease_until": time.time() + lease_s,
    }


class Admissions:
    """Starts pending tasks of one engine's store as slots allow."""

    def __init__(self, engine: AdmissionPort, limit: int | None) -> None:
        self.engine = engine
        self.limit = limit  # None: unlimited

    def usage(self) -> Usage:
        """How full the server is now."""
        return self.engine.store.usage(self.limit)

    # the reconcile step ------------------------------------------------------------
    def run(self, pending: list[Task], lease_s: float) -> list[str]:
        """Start what fits, in order; returns the ids of the tasks moved to initializing."""
        engine = self.engine
        if self.limit is not None and pending:
            self._evict_for_waiting()
        started: list[str] = []
        usage = self.usage()
        order = {slot.id: i for i, slot in enumerate(usage.queue)}
        by_place = sorted(pending, key=lambda t: order.get(t.id, len(order)))
        waiting: list[Task] = []
        for task in by_place:
            if waiting:  # someone ahead waits: so does everyone after it
                waiting.append(task)
                continue
            try:
                moved, usage = engine.store.admit(
                    task.id,
                    Status.PENDING,
                    self.limit,
                    kind=task.kind,
                    actor="engine",
                    reason="claimed",
                    **_start_changes(task, engine.worker_id, lease_s),
                )
            except (TaskConflict, TaskNotFound):
                continue  # another engine took it, or it was deleted
            if moved is None:
                waiting.append(task)
            else:
                started.append(task.id)
        if waiting:
            self._tell_waiting(waiting, usage)
        return started

    def _evict_for_waiting(self) -> None:
        """Stop warm-pool members whose slots waiting user tasks need."""
        for member_id in self.engine.store.evict_pool_members(self.limit):
            log.info("stopping warm workspace %s: a waiting task needs its slot", member_id)
            try:
                self.engine.delete(member_id)
            except (TaskConflict, TaskNotFound, BackendError) as exc:
                log.warning("could not remove warm workspace %s: %s", member_id, exc)

    def _tell_waiting(self, waiting: list[Task], usage: Usage) -> None:
        for task in waiting:
            message = waiting_message(usage, task.id, resuming=bool(task.phases))
            if task.message != message:
                self.engine.store.update(task.id, Status.PENDING, actor="engine", message=message)

    # requests ------------------------------------------------------------------------
    def resume(self, task: Task, *, actor: str, reason: str, lease_s: float) -> tuple[Task, bool]:
        """Start a paused or errored task if a slot is free, else queue it as pending.

        Returns the task and whether it took a slot (the caller then provisions it).
        """
        store = self.engine.store
        moved, usage = store.admit(
            task.id,
            task.status,
            self.limit,
            actor=actor,
            action="resume",
            reason=reason,
            phase=Phase.START.value,
            message="resuming",
            lease_owner=self.engine.worker_id,
            lease_until=time.time() + lease_s,
        )
        if moved is not None:
            return moved, True
        queued = store.transition(
            task.id,
            task.status,
            Status.PENDING,
            actor=actor,
            action="resume",
            reason=f"{reason}; waiting for capacity ({usage.summary()})",
            message=waiting_message(usage, task.id, resuming=True),
            queued_at=utcnow(),
        )
        self.engine.wake()
        return queued, False

    def first_message(self, task: Task) -> str:
        """What a task being created says: whether it will wait for a slot."""
        if self.limit is None:
            return task.message
        usage = self.usage()
        # not stored yet: it would queue behind every waiting user task
        if usage.in_use + usage.waiting < self.limit:
            return task.message
        return waiting_message(usage, task.id)
