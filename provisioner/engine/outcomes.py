"""How tasks end and what they report on the way: outcomes, progress notes, questions
and cost. A mixin of the Engine, called by the API (a user's `task complete`) and by a
task's follower (reports its agent made with `dockyard-task` inside the workspace).

A workspace report is applied at most once: its id is kept as the `ref` of the event it
made, so a follower that fetches it again after a restart changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from provisioner.backends.base import Backend
from provisioner.engine.gitops import GitWork
from provisioner.errors import BackendError, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import (
    TERMINAL,
    ErrorClass,
    Outcome,
    State,
    Status,
    can_transition,
    check_transition,
)
from provisioner.lifecycle import outcome_status as status_of
from provisioner.model import Task
from provisioner.pricing import PriceTable, price
from provisioner.queueing import (
    MAX_NOTE_BYTES,
    MAX_QUESTION_BYTES,
    Completion,
    Cost,
    check_text,
    parse_completion,
    parse_cost,
)
from provisioner.retrying import attempt_line, should_retry, stamp
from provisioner.store.store import Store

log = logging.getLogger(__name__)

REPORT_KINDS = ("complete", "progress", "ask", "usage")
MAX_REPORT_ID = 64


class TaskOutcomes:
    """complete, progress, ask, add_usage and apply_report (mixed into the Engine)."""

    store: Store
    backend: Backend
    pricing: PriceTable
    gitwork: GitWork
    _task_locks: dict[str, threading.Lock]

    if TYPE_CHECKING:

        def wake(self) -> None: ...
        def _lock_for(self, table: dict[str, threading.Lock], task_id: str) -> threading.Lock: ...
        def _stop_follower(self, task_id: str, wait: bool = True) -> None: ...
        def sync_logs(self, task: Task) -> None: ...
        def mark_stopping(self, task_id: str) -> None: ...

    def priced(self, cost: Cost) -> Cost:
        """The cost with its dollars filled in from the pricing table when not reported."""
        return price(cost, self.pricing)

    def complete(
        self,
        ref: str,
        completion: Completion,
        *,
        actor: str = "user",
        report_id: str | None = None,
    ) -> Task:
        """End the task with an outcome: SUCCESS -> completed, FAILED -> failed, SKIPPED
        and CANCELLED -> cancelled. Its workspace is stopped (disk and logs kept)."""
        task = self.store.get(ref)
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)
            if task.status in TERMINAL:
                raise TaskConflict(
                    f"Cannot complete {task.name}: it has already ended ({task.status.value})"
                )
            retry_at = self._retry_at(task, completion)
            target = status_of(completion.outcome) if retry_at is None else Status.ERROR
            check_transition(task.status, target, action="complete")
            if task.status in (Status.ACTIVE, Status.INITIALIZING) and not task.queue_only:
                self._stop_follower(task.id, wait=False)
                if task.status == Status.ACTIVE:
                    self.mark_stopping(task.id)
                    self.sync_logs(task)
                    self.gitwork.checkpoint(task, "completion", actor=actor)
                try:
                    self.backend.stop(task.id)
                except BackendError as exc:
                    log.warning("could not stop the workspace of %s: %s", task.id, exc)
            self._add_cost(task, completion.cost, actor, None)
            summary = _summary(completion)
            if retry_at is not None:
                return self._fail_for_retry(task, completion, summary, retry_at, actor, report_id)
            changes: dict[str, Any] = {
                "outcome": completion.outcome.value,
                "error_code": completion.error_code,
                "error_class": completion.error_class.value if completion.error_class else None,
                "output": completion.output,
                "message": summary,
            }
            done = self.store.transition(
                task.id, task.status, target, actor=actor, reason=summary, **changes
            )
            self.store.record(
                task.id,
                "outcome",
                actor=actor,
                reason=summary,
                to_value=completion.outcome.value,
                ref=report_id,
            )
        self.wake()  # a slot is free; dependents may start or fail
        return done

    @staticmethod
    def _retry_at(task: Task, completion: Completion) -> datetime | None:
        """When a FAILED outcome is tried again instead (a retryable class, retries
        left, and a status that can go to error: a running or starting task)."""
        if completion.outcome != Outcome.FAILED or not can_transition(task.status, Status.ERROR):
            return None
        if task.queue_only:
            return None  # no workspace to retry in: `task retry` puts it back in the pool
        return should_retry(task, completion.error_class, datetime.now(UTC))

    def _fail_for_retry(
        self,
        task: Task,
        completion: Completion,
        summary: str,
        retry_at: datetime,
        actor: str,
        report_id: str | None,
    ) -> Task:
        """A FAILED outcome with retries left: the task waits in error until `retry_at`,
        when the retry pass queues it again (the same path as an engine error)."""
        klass = completion.error_class.value if completion.error_class else None
        errored = self.store.transition(
            task.id,
            task.status,
            Status.ERROR,
            actor=actor,
            reason=summary,
            message=summary,
            error_class=klass,
            error_code=completion.error_code,
            output=completion.output,
            retry_at=stamp(retry_at),
        )
        delay = max((retry_at - datetime.now(UTC)).total_seconds(), 0.0)
        self.store.record(
            task.id,
            "retry",
            actor=actor,
            reason=f"{summary}; {attempt_line(task, task.attempt + 1)} in {delay:.0f}s",
            from_value=str(task.attempt),
            to_value=str(task.attempt + 1),
            ref=report_id,
        )
        self.wake()
        return errored

    def progress(
        self, ref: str, note: str, *, actor: str = "user", report_id: str | None = None
    ) -> Task:
        """Record a progress note: an event, and the task's latest note."""
        checked = check_text(note, "progress note", MAX_NOTE_BYTES)
        if not checked:
            raise ParameterError("The progress note is empty")
        task = self.store.get(ref)
        if (
            not self.store.record(
                task.id,
                "progress",
                actor=actor,
                reason=checked,
                ref=report_id,
                live=True,
                progress=checked,
            )
            and report_id is None
        ):
            raise TaskConflict(f"Cannot note progress on {task.name}: it has ended")
        return self.store.get(task.id)

    def ask(self, ref: str, question: str, *, actor: str, report_id: str | None = None) -> Task:
        """The agent needs an answer: the task shows `input_required` with the question
        until the next prompt (`task send`) answers it."""
        checked = check_text(question, "question", MAX_QUESTION_BYTES)
        if not checked:
            raise ParameterError("The question is empty")
        task = self.store.get(ref)
        asked = self.store.record(
            task.id,
            "state",
            actor=actor,
            reason=f"asks: {checked}",
            from_value=task.state,
            to_value=State.INPUT_REQUIRED.value,
            ref=report_id,
            expected=Status.ACTIVE,
            state=State.INPUT_REQUIRED.value,
            question=checked,
            message=f"asks: {checked.splitlines()[0][:180]}",
        )
        if not asked and report_id is None:
            raise TaskConflict(f"Cannot ask on behalf of {task.name}: it is not active")
        return self.store.get(task.id)

    def add_usage(self, ref: str, cost: Cost, *, actor: str, report_id: str | None = None) -> Task:
        """Add a turn's tokens and cost to the task's totals."""
        task = self.store.get(ref)
        self._add_cost(task, cost, actor, report_id)
        return self.store.get(task.id)

    def _add_cost(self, task: Task, cost: Cost, actor: str, report_id: str | None) -> None:
        if cost.empty:
            return
        if cost.model is None and task.model:
            # tokens of a later turn, the model named once before: priced as that model
            cost = replace(cost, model=task.model)
        priced = self.priced(cost)
        self.store.add_cost(
            task.id,
            tokens_in=priced.tokens_in,
            tokens_out=priced.tokens_out,
            cost_usd=priced.cost_usd or 0.0,
            model=priced.model,
            actor=actor,
            ref=report_id,
        )

    def apply_report(self, task_id: str, report: Mapping[str, Any]) -> bool:
        """Apply one report a task's agent made inside its workspace (`dockyard-task`).

        The report is as hostile as the agent: checked field by field. Applied at most
        once per id; True when it changed the task. A malformed report is logged and
        dropped (the agent got its error from the bridge already)."""
        report_id = report.get("id")
        kind = report.get("kind")
        if not isinstance(report_id, str) or not 0 < len(report_id) <= MAX_REPORT_ID:
            log.warning("report without a usable id from task %s dropped", task_id)
            return False
        if kind not in REPORT_KINDS:
            log.warning("report of unknown kind %r from task %s dropped", kind, task_id)
            return False
        ref = f"report:{report_id}"
        if self.store.has_ref(task_id, ref):
            return False
        actor = "agent"
        try:
            if kind == "complete":
                self.complete(task_id, parse_completion(report), actor=actor, report_id=ref)
            elif kind == "progress":
                self.progress(task_id, str(report.get("note", "")), actor=actor, report_id=ref)
            elif kind == "ask":
                self.ask(task_id, str(report.get("question", "")), actor=actor, report_id=ref)
            else:
                self.add_usage(task_id, parse_cost(report), actor=actor, report_id=ref)
        except ParameterError as exc:
            log.warning("malformed %s report from task %s dropped: %s", kind, task_id, exc)
            return False
        except (TaskConflict, TaskNotFound) as exc:
            log.info("%s report from task %s not applied: %s", kind, task_id, exc)
            return False
        return True


def _summary(completion: Completion) -> str:
    """`SUCCESS: the first line of the output` or `FAILED (TRANSIENT, E42): ...`."""
    head = completion.outcome.value
    detail = [c for c in (completion.error_class, completion.error_code) if c]
    if detail:
        head += " (" + ", ".join(str(c.value if isinstance(c, ErrorClass) else c) for c in detail)
        head += ")"
    first = (completion.output or "").strip().splitlines()
    return f"{head}: {first[0][:180]}" if first else head
