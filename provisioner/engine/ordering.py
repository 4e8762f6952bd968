"""Dependencies, backlog, sprints, epics and priority changes (a mixin of the Engine).

The decisions are the pure ones of `provisioner.dependencies`; this applies them. On each
reconcile pass `gate` sorts the pending tasks into those that may take a slot and those
that wait for dependencies (failing the ones whose dependency died), and after admission
`promote_backlog` moves backlog tasks up when nothing for their target waits. The rest
are requests: promote, change a priority, show an epic, and the dependency checks of a
task being created. Every change is an event with its actor and reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from provisioner.dependencies import (
    Dependency,
    Parked,
    Verdict,
    decide,
    dependency_order,
    find_cycle,
    sprint_dependencies,
    to_promote,
)
from provisioner.engine.admission import Admissions
from provisioner.errors import ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import TERMINAL, ErrorClass, Status
from provisioner.model import QueueFields, Task, utcnow
from provisioner.queueing import MAX_DEPENDENCIES, check_text, parse_priority
from provisioner.store.store import Store

log = logging.getLogger(__name__)

# statuses whose dependencies are checked: a backlog task fails with its dependency too
GATED = frozenset({Status.PENDING, Status.BACKLOG})
MAX_REASON_BYTES = 512


class TaskOrdering:
    """gate, promote_backlog, promote, set_priority, epic (mixed into the Engine)."""

    store: Store
    admissions: Admissions

    if TYPE_CHECKING:

        def wake(self) -> None: ...

    # the reconcile steps ----------------------------------------------------------
    def gate(self, live: Sequence[Task], everyone: Sequence[Task]) -> list[Task]:
        """The pending tasks that may take a slot now. Those whose dependencies are not
        all completed wait apart (`blocked`, with a message naming them); those whose
        dependency failed, was cancelled or deleted fail (DEPENDENCY) unless they wait.

        `everyone`: every task the pass read (finished ones too), so that nothing more
        is queried for the decisions.
        """
        known = {t.id: Dependency(t.id, t.name, t.status) for t in everyone}
        ready: list[Task] = []
        changed = False
        for task in live:
            if task.status not in GATED:
                continue
            if not task.depends_on:
                if task.status == Status.PENDING:
                    if task.blocked:  # no dependencies left: it never should have been
                        self._unblock(task, "no dependencies")
                    ready.append(task)
                continue
            decision = decide(task.depends_on, task.on_dependency_failure, known)
            if decision.verdict == Verdict.FAIL:
                changed |= self._fail_dependent(task, decision.message)
            elif task.status == Status.BACKLOG:
                continue  # its dependencies are checked again once it is promoted
            elif decision.verdict == Verdict.READY:
                if task.blocked:
                    self._unblock(task, "its dependencies completed")
                ready.append(task)
            elif not task.blocked or task.message != decision.message:
                self._block(task, decision.message, dead=decision.culprit is not None)
        if changed:
            self.wake()  # its own dependents may fail next
        return ready

    def _fail_dependent(self, task: Task, why: str) -> bool:
        try:
            self.store.transition(
                task.id,
                task.status,
                Status.FAILED,
                actor="engine",
                reason=why,
                message=why,
                error_class=ErrorClass.DEPENDENCY.value,
                blocked=False,
            )
        except (TaskConflict, TaskNotFound):
            return False  # moved on meanwhile: the next pass looks again
        log.info("task %s failed: %s", task.id, why)
        return True

    def _block(self, task: Task, message: str, *, dead: bool) -> None:
        if task.blocked and not dead:
            # only the list of what it waits for changed: no event for every status move
            self.store.update(task.id, Status.PENDING, actor="engine", message=message)
            return
        self.store.record(
            task.id,
            "dependency",
            actor="engine",
            reason=message,
            from_value="ready" if not task.blocked else "waiting",
            to_value="dependency failed" if dead else "waiting",
            expected=Status.PENDING,
            # once, however many engines share the store
            unchanged={"blocked": task.blocked, "message": task.message},
            blocked=True,
            message=message,
        )

    def _unblock(self, task: Task, why: str) -> None:
        self.store.record(
            task.id,
            "dependency",
            actor="engine",
            reason=why,
            from_value="waiting",
            to_value="ready",
            expected=Status.PENDING,
            unchanged={"blocked": True},  # once, however many engines share the store
            blocked=False,
            message="waiting to be provisioned",
        )

    def promote_backlog(self, everyone: Sequence[Task], waiting: Iterable[Task]) -> None:
        """Move backlog tasks to pending when nothing for their target waits for a slot.

        `waiting`: the pending tasks ready to start that admission left waiting. Backlog
        tasks whose dependencies are not all completed yet stay in the backlog.
        """
        backlog = [t for t in everyone if t.status == Status.BACKLOG and t.kind == "task"]
        if not backlog:
            return
        known = {t.id: Dependency(t.id, t.name, t.status) for t in everyone}
        candidates = [
            Parked(t.id, t.target, t.priority, t.created_at)
            for t in backlog
            if decide(t.depends_on, "wait", known).verdict == Verdict.READY
        ]
        by_id = {t.id: t for t in backlog}
        for task_id in to_promote(candidates, (t.target for t in waiting if t.kind == "task")):
            task = by_id[task_id]
            scope = f"for target {task.target} " if task.target else ""
            with contextlib.suppress(TaskConflict, TaskNotFound):
                self._promote(task, "engine", f"nothing else {scope}waits")

    # requests ------------------------------------------------------------------------
    def promote(self, ref: str, *, actor: str = "user", reason: str | None = None) -> Task:
        """Move a backlog task to pending by hand (`dockyard task promote`)."""
        why = check_text(reason, "reason", MAX_REASON_BYTES) or "promoted by hand"
        task = self.store.get(ref)
        if task.status != Status.BACKLOG:
            raise TaskConflict(
                f"Cannot promote {task.name}: it is {task.status.value}, not in the backlog"
            )
        promoted = self._promote(task, actor, why)
        self.wake()
        return promoted

    def _promote(self, task: Task, actor: str, why: str) -> Task:
        """backlog -> pending, behind the tasks already waiting, with a `promote` event."""
        deps = {t.id: Dependency(t.id, t.name, t.status) for t in self._deps_of(task)}
        decision = decide(task.depends_on, task.on_dependency_failure, deps)
        blocked = decision.verdict == Verdict.WAIT
        ready = dataclasses.replace(task, message="waiting to be provisioned")
        moved = self.store.transition(
            task.id,
            Status.BACKLOG,
            Status.PENDING,
            actor=actor,
            action="promote",
            reason=f"promoted: {why}",
            # like a task just created: behind every waiting task, or starting at once
            message=decision.message if blocked else self.admissions.first_message(ready),
            blocked=blocked,
            queued_at=utcnow(),  # its place in line: from now, not from its creation
        )
        self.store.record(
            task.id,
            "promote",
            actor=actor,
            reason=why,
            from_value=Status.BACKLOG.value,
            to_value=Status.PENDING.value,
        )
        self.wake()
        return moved

    def _deps_of(self, task: Task) -> list[Task]:
        return list(self.store.tasks_by_ids(task.depends_on).values())

    def set_priority(
        self, ref: str, value: object, *, actor: str = "user", reason: str | None = None
    ) -> Task:
        """Change a task's priority (0-100 or low/normal/high); the queue reorders on the
        next pass. A `priority` event says from what, to what, who and why."""
        priority = parse_priority(value)
        why = check_text(reason, "reason", MAX_REASON_BYTES)
        task = self.store.get(ref)
        if task.status in TERMINAL:
            raise TaskConflict(
                f"Cannot change the priority of {task.name}: it has ended ({task.status.value})"
            )
        if task.priority == priority:
            return task
        changed = self.store.record(
            task.id,
            "priority",
            actor=actor,
            reason=why or f"priority {task.priority} -> {priority}",
            from_value=str(task.priority),
            to_value=str(priority),
            live=True,
            unchanged={"priority": task.priority},  # so the event's `from` is the truth
            priority=priority,
        )
        if not changed:
            raise TaskConflict(
                f"Cannot change the priority of {task.name}: it ended or changed meanwhile",
                hint="look at it again: dockyard task status " + task.name,
            )
        self.wake()  # the waiting ones learn their new place
        return self.store.get(task.id)

    def epic(self, name: str, owner: str | None) -> dict[str, Any]:
        """An epic's tasks in dependency order, its progress and its total cost; `owner`
        None: every user's tasks of that epic (admins)."""
        found = self.store.list_tasks(owner=owner, epic=name)
        if not found:
            raise TaskNotFound(f"No epic {name[:80]!r}", hint="tasks join one with --epic NAME")
        return epic_view(name, found)

    # creating ------------------------------------------------------------------------
    def queue_dependencies(self, queue: QueueFields, owner: str, refs: list[str]) -> list[str]:
        """What a new task depends on: the ids of the tasks it names (`refs`, already
        resolved), and for a sprint task the open sprint tasks of its epic created before
        it. A cycle is refused (400) naming its tasks."""
        ids = list(refs)
        if queue.action == "sprint" and queue.epic:
            earlier = sorted(
                (
                    t
                    for t in self.store.list_tasks(owner=owner, epic=queue.epic)
                    if t.action == "sprint"
                ),
                key=lambda t: (t.created_at, t.id),
            )
            ids += sprint_dependencies((t.id, t.status) for t in earlier)
        ids = list(dict.fromkeys(ids))
        if len(ids) > MAX_DEPENDENCIES:
            raise ParameterError(
                f"Too many dependencies ({len(ids)}, with the sprint's open tasks): "
                f"at most {MAX_DEPENDENCIES}"
            )
        self._refuse_cycles(owner, ids)
        return ids

    def _refuse_cycles(self, owner: str, ids: list[str], new_id: str = "(new task)") -> None:
        """A task cannot wait, directly or not, for itself. A new task cannot close a
        cycle (nothing depends on it yet), but the graph it joins is checked whole."""
        if not ids:
            return
        tasks = self.store.list_tasks(owner=owner)
        edges: dict[str, list[str]] = {t.id: list(t.depends_on) for t in tasks}
        edges[new_id] = ids
        cycle = find_cycle(edges, new_id)
        if cycle:
            names = {t.id: t.name for t in tasks}
            shown = " -> ".join(names.get(i, i) for i in cycle)
            raise ParameterError(f"Dependency cycle: {shown}", hint="a task cannot wait for itself")

    def first_gate(self, task: Task) -> None:
        """Set a new pending task's `blocked` and message from its dependencies."""
        if task.status != Status.PENDING or not task.depends_on:
            return
        deps = {t.id: Dependency(t.id, t.name, t.status) for t in self._deps_of(task)}
        decision = decide(task.depends_on, task.on_dependency_failure, deps)
        if decision.verdict != Verdict.READY:
            # a dead dependency fails it on the engine's first pass, with an event
            task.blocked = True
            task.message = decision.message

    def dependency_deleted(self, deleted: Task) -> None:
        """A task was deleted. Had it completed, it no longer blocks anyone: it is dropped
        from its dependents' lists. Otherwise it counts as cancelled: its dependents fail
        now, naming it (or, created to wait, keep waiting)."""
        for task in self.store.list_tasks(list(GATED), kind=None):
            if deleted.id not in task.depends_on:
                continue
            if deleted.status == Status.COMPLETED:
                self.store.record(
                    task.id,
                    "dependency",
                    actor="engine",
                    reason=f"{deleted.name} completed and was deleted: no longer waited for",
                    from_value=deleted.name[:32],
                    to_value="dropped",
                    live=True,
                    depends_on=[d for d in task.depends_on if d != deleted.id],
                )
            elif task.on_dependency_failure != "wait":
                self._fail_dependent(task, f"dependency {deleted.name} was deleted")
        self.wake()


def epic_view(name: str, tasks: Sequence[Task]) -> dict[str, Any]:
    """`GET /api/v2/epics/{name}`: tasks in dependency order (sprint order), progress
    (n of m completed) and the summed cost."""
    order = dependency_order([(t.id, t.depends_on, t.created_at) for t in tasks])
    by_id = {t.id: t for t in tasks}
    names = {t.id: t.name for t in tasks}
    rows = []
    for task_id in order:
        t = by_id[task_id]
        rows.append(
            {
                "id": t.id,
                "name": t.name,
                "owner": t.owner,
                "title": t.title,
                "status": t.status.value,
                "priority": t.priority,
                "action": t.action,
                "progress": t.progress,
                "message": t.message,
                "depends_on": [names.get(d, d[:8]) for d in t.depends_on],
                "tokens_in": t.tokens_in,
                "tokens_out": t.tokens_out,
                "cost_usd": t.cost_usd,
            }
        )
    done = sum(1 for t in tasks if t.status == Status.COMPLETED)
    return {
        "name": name,
        "tasks": rows,
        "completed": done,
        "total": len(tasks),
        "progress": f"{done} of {len(tasks)} completed",
        "tokens_in": sum(t.tokens_in for t in tasks),
        "tokens_out": sum(t.tokens_out for t in tasks),
        "cost_usd": round(sum(t.cost_usd for t in tasks), 6),
    }
