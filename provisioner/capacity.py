"""Capacity: how many workspaces may run at once, and who starts next. Pure logic, no I/O.

A live workspace is a task (or warm-pool member) that is initializing or active: its
container is running. Paused, errored and finished tasks hold no slot. Pending tasks wait
in one queue: user tasks first (interrupts ahead of all others, then by priority, then
the time they started waiting), then warm-pool members, so a prebuild never takes a slot a
user's task is waiting for.

A task routed to a target with `max_concurrent` also needs a free place under that
target's limit (`parallel` tasks excepted), and a task for a codebase no target serves
cannot start at all; neither holds up the tasks behind it (`plan`). The store applies
these decisions inside one locked transaction, so two engines sharing a database can
never both take the last slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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
    target: str | None = None  # the route it runs under (None: none)
    action: str = "queue"  # interrupt: head of the queue; parallel: outside its target's limit
    codebase: str | None = None
    state_since: str | None = None  # when its state last changed (the longest idle first)

    @property
    def unserved(self) -> bool:
        """A task for a codebase no target took: it waits until one serves it."""
        return self.codebase is not None and self.target is None

    @property
    def target_counted(self) -> bool:
        """Whether it counts against (and is limited by) its target's max_concurrent."""
        return self.target is not None and self.action != "parallel"


@dataclass(frozen=True)
class Usage:
    """How full the server is, and who waits in which order."""

    limit: int | None  # None: unlimited
    in_use: int
    pool: int  # of in_use: warm-pool members
    queue: tuple[Slot, ...]  # pending, first to start first
    live: tuple[Slot, ...] = ()  # initializing or active
    target_limits: Mapping[str, int] = field(default_factory=dict)  # max_concurrent by target
    target_live: Mapping[str, int] = field(default_factory=dict)  # live, parallel not counted

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


def queue_key(slot: Slot) -> tuple[int, int, int, str, str]:
    """User tasks before warm-pool members; interrupts first (the head of the queue);
    then higher priority; then longest waiting."""
    return (
        0 if slot.kind == "task" else 1,
        0 if slot.action == "interrupt" else 1,
        -slot.priority,
        slot.waiting_since,
        slot.id,
    )


def count_usage(
    limit: int | None, slots: Iterable[Slot], target_limits: Mapping[str, int] | None = None
) -> Usage:
    """Count live workspaces (in all and per target) and order the waiting ones."""
    rows = list(slots)
    live = [s for s in rows if s.status in LIVE]
    queue = sorted((s for s in rows if s.status == Status.PENDING), key=queue_key)
    per_target: dict[str, int] = {}
    for s in live:
        if s.target_counted and s.target is not None:
            per_target[s.target] = per_target.get(s.target, 0) + 1
    return Usage(
        limit=limit,
        in_use=len(live),
        pool=sum(1 for s in live if s.kind == "pool"),
        queue=tuple(queue),
        live=tuple(live),
        target_limits=dict(target_limits or {}),
        target_live=per_target,
    )


# why a pending task cannot start now
CAPACITY = "capacity"  # every workspace slot is taken, or promised to someone ahead
TARGET = "target"  # its target runs max_concurrent tasks already
UNSERVED = "codebase"  # no configured target serves its codebase


@dataclass(frozen=True)
class Hold:
    """Why a waiting task does not start now, and its place in the queue (0-based)."""

    why: str  # CAPACITY | TARGET | UNSERVED
    place: int
    target: str | None = None
    codebase: str | None = None


def _with_candidate(current: Usage, candidate: Slot | None) -> list[Slot]:
    """The queue, with a task not queued yet (a resume, a task being created) behind
    every waiting user task (an interrupt: behind the waiting interrupts; a warm-pool
    member behind everything)."""
    queue = list(current.queue)
    if candidate is None or any(s.id == candidate.id for s in queue):
        return queue
    if candidate.kind != "task":
        at = len(queue)
    elif candidate.action == "interrupt":
        at = sum(1 for s in queue if s.kind == "task" and s.action == "interrupt")
    else:
        at = current.waiting
    queue.insert(at, candidate)
    return queue


def plan(current: Usage, candidate: Slot | None = None) -> dict[str, Hold | None]:
    """Who of the waiting tasks may start now (None) and why the others wait.

    Walks the queue in order handing out slots: a task its target's limit holds, or one
    no target serves, takes none, so the tasks behind it are not held up by it.
    """
    in_use = current.in_use
    per_target = dict(current.target_live)
    decided: dict[str, Hold | None] = {}
    for place, slot in enumerate(_with_candidate(current, candidate)):
        if slot.unserved:
            decided[slot.id] = Hold(UNSERVED, place, codebase=slot.codebase)
            continue
        cap = current.target_limits.get(slot.target or "") if slot.target_counted else None
        if cap is not None and per_target.get(slot.target or "", 0) >= cap:
            decided[slot.id] = Hold(TARGET, place, target=slot.target)
            continue
        if current.limit is not None and in_use >= current.limit:
            decided[slot.id] = Hold(CAPACITY, place)
            continue
        decided[slot.id] = None
        in_use += 1
        if slot.target_counted and slot.target is not None:
            per_target[slot.target] = per_target.get(slot.target, 0) + 1
    return decided


def may_start(
    current: Usage, task_id: str, kind: str = "task", *, candidate: Slot | None = None
) -> bool:
    """True when the task may take a slot now: a slot is free for it (and a place under
    its target's limit) after everyone ahead of it who can start has one. A task not in
    the queue (a resume: `candidate`) goes last among user tasks."""
    if candidate is None:
        candidate = Slot(task_id, kind, Status.PENDING, 0, "")
    return plan(current, candidate).get(task_id) is None


def hold_message(current: Usage, hold: Hold, *, resuming: bool = False) -> str:
    """What a task held by `hold` says while it waits."""
    place = f"{_ordinal(hold.place + 1)} in line"
    to_resume = " to resume" if resuming else ""
    if hold.why == UNSERVED:
        return (
            f"waiting for a target serving codebase {hold.codebase}: "
            "no target in the server's config serves it"
        )
    if hold.why == TARGET:
        target = hold.target or ""
        limit = current.target_limits.get(target, 0)
        running = current.target_live.get(target, 0)
        return (
            f"waiting for target {target}{to_resume}: {running} of {limit} of its tasks "
            f"running; {place}"
        )
    return f"waiting for capacity{to_resume}: {current.summary()}; {place}"


def pool_members_to_evict(current: Usage, live_pool: Sequence[Slot]) -> list[str]:
    """Warm-pool members to stop so waiting user tasks get slots (a user's task beats a
    prebuild): idle ready members first, then ones still starting, newest first."""
    if current.limit is None:
        return []
    # only tasks that would start given a slot: not those their target or codebase holds
    decided = plan(current)
    short = sum(
        1
        for s in current.queue
        if s.kind == "task" and (hold := decided.get(s.id)) is not None and hold.why == CAPACITY
    )
    if short <= 0:
        return []

    members = [s for s in live_pool if s.kind == "pool" and s.status in LIVE]
    # Newest first (least work lost), then the ready ones ahead of those still starting:
    # stopping a ready member wastes no half-done start.
    members.sort(key=lambda s: s.waiting_since, reverse=True)
    members.sort(key=lambda s: not (s.status == Status.ACTIVE and s.state == State.IDLE.value))
    return [s.id for s in members[:short]]


def waiting_message(
    current: Usage, task_id: str, *, resuming: bool = False, candidate: Slot | None = None
) -> str:
    """What a pending task says while it waits: why (capacity, its target's limit, its
    codebase unserved), how full, and its place in line (a task not queued yet goes
    behind every waiting user task)."""
    if candidate is None:
        candidate = Slot(task_id, "task", Status.PENDING, 0, "")
    hold = plan(current, candidate).get(task_id)
    if hold is None:  # it may start: say where it stands all the same
        place = next(
            (i for i, s in enumerate(_with_candidate(current, candidate)) if s.id == task_id), 0
        )
        hold = Hold(CAPACITY, place)
    return hold_message(current, hold, resuming=resuming)


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
