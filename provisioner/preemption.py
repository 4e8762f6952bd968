"""Preemption: which running task an `interrupt` task may pause to take its slot.
Pure logic, no I/O (the engine pauses the victim and records why).

An interrupt goes to the head of the queue. When it still cannot start, it may pause one
task that is active, idle (its agent waits for input: pausing it loses no work, and a
`send` resumes it) and of lower priority than itself, the lowest priority first, then the
longest idle. Never a working task (that would cut its turn short), never one asking a
question (`input_required`: its user is about to answer), never a warm-pool member (those
give way to waiting tasks by themselves), never one of equal or higher priority.
"""

from __future__ import annotations

from collections.abc import Iterable

from provisioner.capacity import CAPACITY, TARGET, Hold, Slot
from provisioner.lifecycle import State, Status


def victims(interrupt: Slot, hold: Hold, live: Iterable[Slot]) -> list[Slot]:
    """The tasks `interrupt`, held by `hold`, may pause, the one to pause first first.

    Held by its target's limit, only a task of that target counted against the limit
    frees the place it needs; held by capacity, any task frees a slot.
    """
    if interrupt.action != "interrupt" or hold.why not in (CAPACITY, TARGET):
        return []
    found = [
        s
        for s in live
        if s.kind == "task"
        and s.id != interrupt.id
        and s.status == Status.ACTIVE
        and s.state == State.IDLE.value
        and s.priority < interrupt.priority
        and (hold.why != TARGET or (s.target == hold.target and s.target_counted))
    ]
    return sorted(found, key=lambda s: (s.priority, s.state_since or "", s.id))
