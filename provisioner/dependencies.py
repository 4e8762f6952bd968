"""Dependencies, backlog and sprints: what a waiting task may do next. Pure logic, no I/O.

A task with `depends_on` waits `pending` until every task it names is `completed`. It
holds no place in the capacity queue meanwhile, so it never stands in front of tasks
that could start. When a dependency ends `failed` or `cancelled` (a deleted one counts
as cancelled), the dependent fails with error class DEPENDENCY, unless it was created
with `on_dependency_failure: wait`: then it keeps waiting, saying that someone has to
retry the dependency or delete it.

The engine applies `decide` to every waiting task on each reconcile pass (every second),
so it only looks at what the caller gives it: no query, no graph walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from provisioner.lifecycle import Status
from provisioner.queueing import waiting_for_message

# the statuses in which a dependency will never complete by itself
DEAD = frozenset({Status.FAILED, Status.CANCELLED})


@dataclass(frozen=True)
class Dependency:
    """A task another one depends on, as the gate sees it (None status: deleted)."""

    id: str
    name: str
    status: Status | None


class Verdict(StrEnum):
    READY = "ready"  # every dependency completed: it may take a slot
    WAIT = "wait"  # stays pending, out of the capacity queue
    FAIL = "fail"  # a dependency failed or was cancelled: it fails with DEPENDENCY


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    message: str = ""  # what the task says while it waits, or why it failed
    culprit: str | None = None  # the name of the dead dependency, if one decided it


def _shown(dep: Dependency) -> str:
    return dep.name if dep.status is not None else f"{dep.id[:8]} (deleted)"


def _death(dep: Dependency) -> str:
    """`build-1a2b failed`, `build-1a2b was cancelled`, `1a2b3c4d was deleted`."""
    if dep.status is None:
        return f"{dep.id[:8]} was deleted"
    if dep.status == Status.FAILED:
        return f"{dep.name} failed"
    return f"{dep.name} was cancelled"


def decide(
    depends_on: Sequence[str], policy: str, found: Mapping[str, Dependency | None]
) -> Decision:
    """What a waiting task with these dependencies does now.

    `found` maps a dependency's id to what it is now (missing or None: deleted);
    `policy` is the task's on_dependency_failure (fail | wait).
    """
    deps = [found.get(i) or Dependency(i, i[:8], None) for i in depends_on]
    dead = [d for d in deps if d.status is None or d.status in DEAD]
    if dead:
        why = ", ".join(_death(d) for d in dead)
        if policy != "wait":
            return Decision(Verdict.FAIL, f"dependency {why}", _shown(dead[0]))
        retry = [d.name for d in dead if d.status is not None]
        fix = f"retry it (dockyard task retry {' '.join(retry)}) or " if retry else ""
        return Decision(
            Verdict.WAIT,
            f"waiting for dependencies: {why}; {fix}delete this task",
            _shown(dead[0]),
        )
    open_ = [d for d in deps if d.status != Status.COMPLETED]
    if not open_:
        return Decision(Verdict.READY)
    return Decision(Verdict.WAIT, waiting_for_message((d.name, str(d.status)) for d in open_))


def find_cycle(edges: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """A dependency cycle reachable from `start` as a path [a, b, ..., a], else None.

    `edges` maps a task id to the ids it depends on (the new task's edges included).
    Iterative, so a long chain cannot exhaust the stack.
    """
    on_path: dict[str, int] = {}
    path: list[str] = []
    done: set[str] = set()
    stack: list[tuple[str, list[str]]] = [(start, list(edges.get(start, ())))]
    on_path[start] = 0
    path.append(start)
    while stack:
        node, todo = stack[-1]
        if not todo:
            stack.pop()
            path.pop()
            del on_path[node]
            done.add(node)
            continue
        nxt = todo.pop()
        if nxt in on_path:
            return [*path[on_path[nxt] :], nxt]
        if nxt in done:
            continue
        on_path[nxt] = len(path)
        path.append(nxt)
        stack.append((nxt, list(edges.get(nxt, ()))))
    return None


def sprint_dependencies(
    earlier: Iterable[tuple[str, Status]],
) -> list[str]:
    """The implicit dependencies of a new sprint task: the ids of its epic's earlier sprint
    tasks that have not ended (those that ended are history: a sprint goes on after a
    failure once someone adds a task to it). Given (id, status) oldest first."""
    ended = DEAD | {Status.COMPLETED}
    return [task_id for task_id, status in earlier if status not in ended]


@dataclass(frozen=True)
class Parked:
    """A backlog task as promotion sees it."""

    id: str
    target: str | None
    priority: int
    created_at: str


def to_promote(backlog: Iterable[Parked], waiting_targets: Iterable[str | None]) -> list[str]:
    """Backlog tasks to move to pending now: for each target, the first of its backlog
    (higher priority, then older) when nothing for that target waits for a slot.

    `waiting_targets`: the target of every pending task that is ready to start (tasks
    blocked by dependencies do not count, or a backlog task could wait on its own
    dependent). The default route (no target) shares every workspace: its backlog moves
    only when nothing at all waits. One per target per pass: the one promoted then
    waits itself, and the next follows once it has started.
    """
    busy = set(waiting_targets)
    first: dict[str | None, Parked] = {}
    for task in sorted(backlog, key=lambda p: (-p.priority, p.created_at, p.id)):
        first.setdefault(task.target, task)
    return [
        task.id
        for target, task in first.items()
        if target not in busy and (target is not None or not busy)
    ]


def dependency_order(tasks: Sequence[tuple[str, Sequence[str], str]]) -> list[str]:
    """Ids of (id, depends_on, created_at) in an order where each comes after what it
    depends on (dependencies outside the list are ignored), older first among equals."""
    ids = {t[0] for t in tasks}
    by_time = sorted(tasks, key=lambda t: (t[2], t[0]))
    placed: list[str] = []
    seen: set[str] = set()
    remaining = list(by_time)
    while remaining:
        progress = False
        for task in list(remaining):
            task_id, deps, _ = task
            if all(d in seen or d not in ids for d in deps):
                placed.append(task_id)
                seen.add(task_id)
                remaining.remove(task)
                progress = True
                break  # start over: the oldest ready task goes next
        if not progress:  # a cycle (never stored): the rest in creation order
            placed += [t[0] for t in remaining]
            break
    return placed
