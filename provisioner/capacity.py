"""Capacity: how many workspaces may run at once, and who starts next. Pure logic, no I/O.

A live workspace is a task (or warm-pool member) that is initializing or active: its
container is running. Paused, errored and finished tasks hold no slot. Pending tasks wait
in one queue: user tasks first (by priority, then the time they started waiting), then
warm-pool members, so a prebuild never takes a slot a user's task is waiting for. The
store applies these decisions inside one locked transaction, so two engines sharing a
database can never both take the last slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provisioner.lifecycle import State, Status

LIVE = frozenset({Status.INITIALIZING, Status.ACTIVE})
# the statuses capacity decisions read: the live ones and the waiting ones
COUNTED = LIVE | {Status.PENDING}


@dataclass(frozen=True)
class Slot:
    """A task as capacity sees it."""

    id: str
    kind: str  # task | pool
    status: Status
    priority: int
    waiting_since: str  # when it became pending (ISO timestamp): its place in the queue
    state: str | None = None


@dataclass(frozen=True)
class Usage:
    """How full the server is, and who waits in which order."""

    limit: int | None  # None: unlimited
    in_use: int
    pool: int  # of in_use: warm-pool members
    queue: tuple[Slot, ...]  # pending, first to start first

    @property
    def tasks(self) -> int:
        """Live workspaces that are tasks (not warm-pool members)."""
        return self.in_use - self.pool

    @property
    def available(self) -> int | None:
        """Free slots, or None when unlimited."""
        return None if self.limit is None else max(self.limit - self.in_use, 0)

    @property
    def waiting(self) -> int:
        """User tasks waiting to start (warm-pool members not included)."""
        return sum(1 for s in self.queue if s.kind == "task")

    def position(self, task_id: str) -> int | None:
        """0-based place of a pending task in the queue; None if not pending."""
        for index, slot in enumerate(self.queue):
            if slot.id == task_id:
                return index
        return None

    def summary(self) -> str:
        """`3 of 4 workspaces in use`, or `3 workspaces in use (no limit)`."""
        if self.limit is None:
            return f"{self.in_use} workspace{'s' if self.in_use != 1 else ''} in use (no limit)"
        return f"{self.in_use} of {self.limit} workspaces in use"


def queue_key(slot: Slot) -> tuple[int, int, str, str]:
    """User tasks before warm-pool members; then higher priority; then longest waiting."""
    return (0 if slot.kind == "task" else 1, -slot.priority, slot.waiting_since, slot.id)


def count_usage(limit: int | None, slots: Iterable[Slot]) -> Usage:
    """Count live workspaces and order the waiting ones."""
    rows = list(slots)
    live = [s for s in rows if s.status in LIVE]
    queue = sorted((s for s in rows if s.status == Status.PENDING), key=queue_key)
    return Usage(
        limit=limit,
        in_use=len(live),
        pool=sum(1 for s in live if s.kind == "pool"),
        queue=tuple(queue),
    )


def may_start(current: Usage, task_id: str, kind: str = "task") -> bool:
    """True when the task may take a slot now: a slot is free for it after everyone
    ahead of it in the queue has one. A task not in the queue (a resume) goes last
    among user tasks."""
    if current.limit is None:
        return True
    ahead = current.position(task_id)
    if ahead is None:
        ahead = current.waiting if kind == "task" else len(current.queue)
    return current.in_use + ahead < current.limit


def pool_members_to_evict(current: Usage, live_pool: Sequence[Slot]) -> list[str]:
    """Warm-pool members to stop so waiting user tasks get slots (a user's task beats a
    prebuild): idle ready members first, then ones still starting, newest first."""
    if current.limit is None:
        return []
    short = current.waiting - (current.limit - current.in_use)
    if short <= 0:
        return []

    members = [s for s in live_pool if s.kind == "pool" and s.status in LIVE]
    # Newest first (least work lost), then the ready ones ahead of those still starting:
    # stopping a ready member wastes no half-done start.
    members.sort(key=lambda s: s.waiting_since, reverse=True)
    members.sort(key=lambda s: not (s.status == Status.ACTIVE and s.state == State.IDLE.value))
    return [s.id for s in members[:short]]


def waiting_message(current: Usage, task_id: str, *, resuming: bool = False) -> str:
    """What a pending task says while it waits for a slot: how full, and its place in line
    (a task not queued yet goes behind every waiting user task)."""
    what = "waiting for capacity to resume" if resuming else "waiting for capacity"
    place = current.position(task_id)
    if place is None:
        place = current.waiting
    return f"{what}: {current.summary()}; {_ordinal(place + 1)} in line"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_limit(value: object, where: str) -> int | None:
    """A configured limit: a positive integer, or None/"unlimited" for no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "unlimited")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a positive integer or 'unlimited', got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{where}: expected a positive integer or 'unlimited', got {value!r}"
        ) from None
    if number < 1:
        raise ValueError(f"{where}: must be at least 1 (leave it unset for no limit)")
    return number
