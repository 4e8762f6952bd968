"""Drain, pure: the server's graceful shutdown (Agent Swarm's), as a stored state and the
decisions every reconcile pass takes from it.

While draining, no pending task is admitted (new ones are still accepted and wait), idle
tasks are paused at once, working ones once they go idle or the grace runs out, and each
paused task's id is kept so that undrain resumes exactly those. The state lives in the
database (one `drain` setting), so it survives a restart and every server sharing the
database drains alike; every step is level-triggered from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from provisioner.lifecycle import State, Status
from provisioner.model import Task, parse_time

SETTING = "drain"
DEFAULT_GRACE_S = 30.0
# an undrain resumes its tasks itself; a reconcile pass finishes one only after this long
# (its server died meanwhile), so the two do not race for the same tasks
UNDRAIN_TAKEOVER_S = 30.0
MAX_GRACE_S = 24 * 3600.0
# what a task waiting while the server drains says
WAITING = "waiting: the server is draining; it starts after `dockyard undrain`"


@dataclass(frozen=True)
class Drain:
    """The drain state: whether admission is stopped, since when and by whom, until when
    working tasks may finish their turn, and the tasks the drain paused (to resume)."""

    draining: bool = False
    since: str | None = None
    by: str | None = None
    grace_s: float = DEFAULT_GRACE_S
    deadline: str | None = None  # working tasks are paused anyway from then on
    paused: tuple[str, ...] = field(default_factory=tuple)
    undrained_at: str | None = None  # when admission opened again (tasks to resume left)

    @classmethod
    def from_value(cls, value: dict[str, Any] | None) -> Drain:
        """From the stored setting (None: never drained)."""
        if not value:
            return cls()
        return cls(
            draining=bool(value.get("draining")),
            since=value.get("since"),
            by=value.get("by"),
            grace_s=float(value.get("grace_s") or 0),
            deadline=value.get("deadline"),
            paused=tuple(str(p) for p in value.get("paused") or ()),
            undrained_at=value.get("undrained_at"),
        )

    def to_value(self) -> dict[str, Any] | None:
        """As stored; None once there is nothing left to remember."""
        if not self.draining and not self.paused:
            return None
        return {
            "draining": self.draining,
            "since": self.since,
            "by": self.by,
            "grace_s": self.grace_s,
            "deadline": self.deadline,
            "paused": list(self.paused),
            "undrained_at": self.undrained_at,
        }


def started(current: Drain, by: str, grace_s: float, now: datetime) -> Drain:
    """Drain from now; a drain asked again keeps what it paused and takes the new grace."""
    stamp = _stamp(now)
    return replace(
        current,
        draining=True,
        since=current.since if current.draining else stamp,
        by=by,
        grace_s=grace_s,
        deadline=_stamp(now + timedelta(seconds=grace_s)),
        undrained_at=None,
    )


def stopped(current: Drain, now: datetime) -> Drain:
    """Admission open again; the tasks it paused are still to be resumed."""
    return replace(current, draining=False, since=None, deadline=None, undrained_at=_stamp(now))


def undrain_stalled(drain: Drain, now: datetime) -> bool:
    """Whether a reconcile pass should resume what an undrain left paused: the undrain
    asked long enough ago that its server must have died before it was done."""
    if drain.draining or not drain.paused:
        return False
    if drain.undrained_at is None:
        return True
    return (now - parse_time(drain.undrained_at)).total_seconds() >= UNDRAIN_TAKEOVER_S


def with_paused(current: Drain, task_id: str) -> Drain:
    """Remember that the drain paused this task (before it is paused: see Draining)."""
    if task_id in current.paused:
        return current
    return replace(current, paused=(*current.paused, task_id))


def without(current: Drain, task_ids: Iterable[str]) -> Drain:
    """Forget these tasks (resumed, or no longer the drain's to resume)."""
    gone = set(task_ids)
    return replace(current, paused=tuple(p for p in current.paused if p not in gone))


def to_pause(drain: Drain, tasks: Iterable[Task], now: datetime) -> list[tuple[Task, bool]]:
    """Active tasks to pause now, each with whether it must be idle when paused: idle ones
    (and those waiting for an answer) at once, working ones once the grace is over.
    Warm-pool members are not tasks: they are left as they are."""
    if not drain.draining:
        return []
    over = drain.deadline is not None and now >= parse_time(drain.deadline)
    chosen = []
    for task in tasks:
        if task.kind != "task" or task.status != Status.ACTIVE:
            continue
        if task.state != State.WORKING.value:
            chosen.append((task, True))
        elif over:
            chosen.append((task, False))
    return chosen


def to_resume(drain: Drain, tasks: Iterable[Task]) -> tuple[list[Task], list[str]]:
    """After an undrain: the tasks to resume (those the drain paused that are still paused)
    and the ids to forget (moved on by someone else meanwhile, or deleted)."""
    if drain.draining:
        return [], []
    by_id = {t.id: t for t in tasks}
    resume = [by_id[i] for i in drain.paused if i in by_id and by_id[i].status == Status.PAUSED]
    forget = [i for i in drain.paused if i not in by_id or by_id[i].status != Status.PAUSED]
    return resume, forget


def summary(drain: Drain, tasks: Iterable[Task]) -> dict[str, Any]:
    """What health and capacity show: the state and how far the drain has got."""
    live = [t for t in tasks if t.kind == "task"]
    active = sum(1 for t in live if t.status == Status.ACTIVE)
    starting = sum(1 for t in live if t.status == Status.INITIALIZING)
    return {
        "draining": drain.draining,
        "since": drain.since,
        "by": drain.by,
        "grace_s": drain.grace_s if drain.draining else None,
        "deadline": drain.deadline,
        "active": active,
        "initializing": starting,
        "paused_by_drain": len(drain.paused),
        # nothing runs any more: the host may go down (workspaces keep their disks)
        "done": drain.draining and active == 0 and starting == 0,
    }


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
