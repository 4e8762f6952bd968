"""Admission: pending tasks take workspace slots in queue order, within the capacity limit
and their targets' `max_concurrent`.

The decisions are the pure ones of `capacity` (and `preemption`); the store applies each
under its capacity lock. Every reconcile pass first stops warm-pool members whose slots
waiting user tasks need, then starts pending tasks in order until one has to wait for
capacity (one its target or codebase holds does not hold up those behind it), lets
waiting `interrupt` tasks pause an idle task of lower priority, then tells each waiting
task where it stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provisioner.capacity import CAPACITY, Hold, Slot, Usage, hold_message, plan, waiting_message
from provisioner.errors import BackendError, DockyardError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Phase, Status
from provisioner.model import Task, utcnow
from provisioner.preemption import victims
from provisioner.prompts import FINISHED
from provisioner.routing import Target, limits_of

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

    def __init__(
        self, engine: AdmissionPort, limit: int | None, targets: Mapping[str, Target] | None = None
    ) -> None:
        self.engine = engine
        self.limit = limit  # None: unlimited
        self.targets: dict[str, Target] = dict(targets or {})  # the config's routes
        self._lock = threading.Lock()
        self._preempting: dict[str, str] = {}  # interrupt task id -> the victim being paused

    @property
    def target_limits(self) -> dict[str, int]:
        """max_concurrent of the targets that have one."""
        return limits_of(self.targets)

    @property
    def limited(self) -> bool:
        """Whether anything limits how many run (the server's limit or a target's)."""
        return self.limit is not None or bool(self.target_limits)

    def usage(self) -> Usage:
        """How full the server is now."""
        return self.engine.store.usage(self.limit, self.target_limits)

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
        full = False  # once one waits for capacity, everyone after it does too
        for task in by_place:
            if full:
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
                    target_limits=self.target_limits,
                    **_start_changes(task, engine.worker_id, lease_s),
                )
            except (TaskConflict, TaskNotFound):
                continue  # another engine took it, or it was deleted
            if moved is None:
                waiting.append(task)
                hold = plan(usage).get(task.id)
                full = hold is not None and hold.why == CAPACITY
            else:
                started.append(task.id)
        if waiting:
            usage = self.usage()  # as it is after this pass's starts
            holds = plan(usage)
            stuck = self._preempt_for(waiting, usage, holds)
            self._tell_waiting(waiting, usage, holds, stuck)
        return started

    def _evict_for_waiting(self) -> None:
        """Stop warm-pool members whose slots waiting user tasks need."""
        for member_id in self.engine.store.evict_pool_members(self.limit, self.target_limits):
            log.info("stopping warm workspace %s: a waiting task needs its slot", member_id)
            try:
                self.engine.delete(member_id)
            except (TaskConflict, TaskNotFound, BackendError) as exc:
                log.warning("could not remove warm workspace %s: %s", member_id, exc)

    def _tell_waiting(
        self, waiting: list[Task], usage: Usage, holds: dict[str, Hold | None], stuck: set[str]
    ) -> None:
        for task in waiting:
            hold = holds.get(task.id)
            resuming = bool(task.phases)
            if hold is None:  # free now: it starts next pass; say where it stands meanwhile
                message = waiting_message(usage, task.id, resuming=resuming)
            else:
                message = hold_message(usage, hold, resuming=resuming)
            if task.id in stuck:
                message += "; no idle task of lower priority to pause"
            if task.id in self._preempting:
                continue  # it says whom it is pausing until it starts
            if task.message != message:
                self.engine.store.update(task.id, Status.PENDING, actor="engine", message=message)

    # preemption ---------------------------------------------------------------------
    def _preempt_for(
        self, waiting: list[Task], usage: Usage, holds: dict[str, Hold | None]
    ) -> set[str]:
        """Let each held `interrupt` task pause one idle task of lower priority (in the
        background: a pause stops a workspace). Returns the interrupts that found none."""
        stuck: set[str] = set()
        slots = {s.id: s for s in usage.queue}
        with self._lock:
            pausing = set(self._preempting.values())
        for task in waiting:
            hold = holds.get(task.id)
            slot = slots.get(task.id)
            if hold is None or slot is None or slot.action != "interrupt":
                continue
            with self._lock:
                if task.id in self._preempting:
                    continue  # its victim is being paused
            candidates = [v for v in victims(slot, hold, usage.live) if v.id not in pausing]
            victim = next((v for v in candidates if not self._about_to_work(v)), None)
            if victim is None:
                stuck.add(task.id)
                continue
            pausing.add(victim.id)
            with self._lock:
                self._preempting[task.id] = victim.id
            threading.Thread(
                target=self._preempt, args=(task, victim), name="preempt", daemon=True
            ).start()
        return stuck

    def _about_to_work(self, victim: Slot) -> bool:
        """A prompt on its way to the agent: it is idle only for a moment."""
        return any(p["state"] not in FINISHED for p in self.engine.store.prompts(victim.id))

    def _preempt(self, task: Task, victim: Slot) -> None:
        """Pause `victim` for interrupt `task`, and say so in both tasks' histories."""
        store = self.engine.store
        try:
            paused = self.engine.pause(
                victim.id,
                actor="engine",
                reason=f"preempted by interrupt task {task.name} (priority {task.priority})",
                expect_idle=True,
            )
        except (TaskConflict, TaskNotFound):
            return  # it woke up, was paused or went away meanwhile: the next pass looks again
        except DockyardError as exc:
            log.warning("could not preempt %s for %s: %s", victim.id, task.id, exc)
            return
        finally:
            with self._lock:
                self._preempting.pop(task.id, None)
            self.engine.wake()
        store.record(
            victim.id,
            "preempt",
            actor="engine",
            reason=f"paused to make room for interrupt task {task.name} "
            f"(priority {task.priority}); send it a prompt or resume it to continue",
            from_value=Status.ACTIVE.value,
            to_value=Status.PAUSED.value,
        )
        said = f"paused {paused.name} (priority {paused.priority}, idle) to take its slot"
        # its message says so while it still waits; it may have started already (the
        # freed slot is its own and the loop runs meanwhile): then only its history does
        if not store.record(
            task.id,
            "preempt",
            actor="engine",
            reason=said,
            to_value=paused.id,
            expected=Status.PENDING,
            message=f"preempted {paused.name} (priority {paused.priority}, idle); starting",
        ):
            store.record(task.id, "preempt", actor="engine", reason=said, to_value=paused.id)

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
            target_limits=self.target_limits,
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
        message = waiting_message(usage, task.id, resuming=True, candidate=slot_of(task))
        queued = store.transition(
            task.id,
            task.status,
            Status.PENDING,
            actor=actor,
            action="resume",
            reason=f"{reason}; {message}",
            message=message,
            queued_at=utcnow(),
        )
        self.engine.wake()
        return queued, False

    def first_message(self, task: Task) -> str:
        """What a task being created says: whether it will wait, and for what."""
        candidate = slot_of(task)
        if not self.limited and not candidate.unserved:
            return task.message
        usage = self.usage()
        # not stored yet: it would queue behind every waiting user task
        if plan(usage, candidate).get(task.id) is None:
            return task.message
        return waiting_message(usage, task.id, candidate=candidate)


def slot_of(task: Task) -> Slot:
    """A task as capacity sees it."""
    return Slot(
        id=task.id,
        kind=task.kind,
        status=task.status,
        priority=task.priority,
        waiting_since=task.queued_at or task.created_at,
        state=task.state,
        target=task.target,
        action=task.action,
        codebase=task.codebase,
        state_since=task.state_changed_at,
    )
