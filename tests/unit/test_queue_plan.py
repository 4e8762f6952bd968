"""The queue's pure decisions: who starts next under the server's limit and the targets'
max_concurrent, what the others wait for, and whom an interrupt may pause."""

from __future__ import annotations

from provisioner.capacity import (
    CAPACITY,
    TARGET,
    UNSERVED,
    Hold,
    Slot,
    count_usage,
    hold_message,
    may_start,
    plan,
    pool_members_to_evict,
    waiting_message,
)
from provisioner.lifecycle import Status
from provisioner.preemption import victims


def at(day: int) -> str:
    return f"2025-01-{day:02d}T00:00:00.000Z"


def pending(name: str, day: int = 1, priority: int = 50, **kw: object) -> Slot:
    return Slot(name, "task", Status.PENDING, priority, at(day), **kw)  # type: ignore[arg-type]


def running(name: str, priority: int = 50, state: str = "idle", **kw: object) -> Slot:
    return Slot(name, "task", Status.ACTIVE, priority, at(1), state, **kw)  # type: ignore[arg-type]


def order(*slots: Slot, limit: int | None = 1, **limits: int) -> list[str]:
    return [s.id for s in count_usage(limit, slots, limits).queue]


def test_priority_then_arrival_and_interrupts_head_the_whole_queue() -> None:
    rows = [
        pending("low", 1, 10),
        pending("high", 3, 90),
        pending("mid", 2, 50),
        pending("mid-later", 4, 50),
        pending("urgent-low", 5, 5, action="interrupt"),
        pending("urgent", 6, 60, action="interrupt"),
        Slot("warm", "pool", Status.PENDING, 100, at(1)),
    ]
    # interrupts first (by priority among themselves), then priority, then arrival;
    # warm-pool members after every user task
    assert order(*rows) == [
        "urgent",
        "urgent-low",
        "high",
        "mid",
        "mid-later",
        "low",
        "warm",
    ]


def test_a_target_at_its_limit_holds_its_tasks_but_not_those_behind_them() -> None:
    rows = [
        running("b1", target="builder"),
        running("b2", target="builder"),
        pending("b3", 1, 90, target="builder"),
        pending("other", 2, 10, target="reviewer"),
        pending("free", 3, 10),
    ]
    usage = count_usage(None, rows, {"builder": 2})
    decided = plan(usage)
    assert decided["b3"] == Hold(TARGET, 0, target="builder")
    assert decided["other"] is None and decided["free"] is None
    assert hold_message(usage, Hold(TARGET, 0, target="builder")) == (
        "waiting for target builder: 2 of 2 of its tasks running; 1st in line"
    )
    # the global limit on top: one free slot goes to the first task that can use it
    usage = count_usage(3, rows, {"builder": 2})
    decided = plan(usage)
    assert decided["other"] is None
    assert decided["free"] == Hold(CAPACITY, 2)
    assert waiting_message(usage, "free") == (
        "waiting for capacity: 2 of 3 workspaces in use; 3rd in line"
    )


def test_a_targets_limit_counts_what_starts_before_it_in_one_pass() -> None:
    rows = [pending("b1", 1, target="builder"), pending("b2", 2, target="builder")]
    decided = plan(count_usage(None, rows, {"builder": 1}))
    assert decided["b1"] is None
    assert decided["b2"] == Hold(TARGET, 1, target="builder")


def test_parallel_tasks_neither_count_against_nor_wait_for_their_target() -> None:
    rows = [
        running("b1", target="builder"),
        running("p1", target="builder", action="parallel"),
        pending("p2", 1, target="builder", action="parallel"),
        pending("b2", 2, target="builder"),
    ]
    usage = count_usage(3, rows, {"builder": 1})
    assert usage.target_live == {"builder": 1}  # the parallel one is not counted
    decided = plan(usage)
    assert decided["p2"] is None  # the target is full, but it is parallel
    assert decided["b2"] == Hold(TARGET, 1, target="builder")
    # ... yet parallel tasks count against the server's own limit
    decided = plan(count_usage(2, rows, {"builder": 5}))
    assert decided["p2"] == Hold(CAPACITY, 0)


def test_an_unserved_codebase_waits_without_holding_up_anyone() -> None:
    rows = [pending("lost", 1, 90, codebase="mobile"), pending("next", 2, 10)]
    usage = count_usage(1, rows)
    decided = plan(usage)
    assert decided["lost"] == Hold(UNSERVED, 0, codebase="mobile")
    assert decided["next"] is None
    assert hold_message(usage, decided["lost"]) == (  # type: ignore[arg-type]
        "waiting for a target serving codebase mobile: no target in the server's config serves it"
    )
    # routed (a target set), the codebase no longer holds it
    assert plan(count_usage(1, [pending("found", codebase="mobile", target="t")]))["found"] is None


def test_a_resume_is_checked_against_its_targets_limit() -> None:
    rows = [running("b1", target="builder")]
    usage = count_usage(5, rows, {"builder": 1})
    resumed = Slot("r", "task", Status.PAUSED, 50, at(1), target="builder")
    assert not may_start(usage, "r", candidate=resumed)
    assert may_start(usage, "r", candidate=Slot("r", "task", Status.PAUSED, 50, at(1)))
    assert waiting_message(usage, "r", resuming=True, candidate=resumed) == (
        "waiting for target builder to resume: 1 of 1 of its tasks running; 1st in line"
    )


def test_a_new_interrupt_goes_ahead_of_waiting_tasks() -> None:
    usage = count_usage(1, [running("run"), pending("a", 1), pending("b", 2)])
    new = Slot("new", "task", Status.PENDING, 50, at(9), action="interrupt")
    assert waiting_message(usage, "new", candidate=new).endswith("1st in line")
    plain = Slot("plain", "task", Status.PENDING, 50, at(9))
    assert waiting_message(usage, "plain", candidate=plain).endswith("3rd in line")


def test_warm_members_are_stopped_only_for_tasks_a_slot_would_start() -> None:
    rows = [
        Slot("warm", "pool", Status.ACTIVE, 50, at(1), "idle"),
        pending("held", 1, target="builder"),
        running("b1", target="builder"),
        pending("lost", 2, codebase="mobile"),
    ]
    usage = count_usage(2, rows, {"builder": 1})
    assert pool_members_to_evict(usage, rows) == []  # neither would start with its slot
    rows.append(pending("free", 3))
    usage = count_usage(2, rows, {"builder": 1})
    assert pool_members_to_evict(usage, rows) == ["warm"]


# preemption ---------------------------------------------------------------------------
def interrupt(priority: int = 80, **kw: object) -> Slot:
    return pending("int", 9, priority, action="interrupt", **kw)


def test_an_interrupt_pauses_the_lowest_priority_idle_task_then_the_longest_idle() -> None:
    live = [
        running("idle-30", 30, state_since=at(5)),
        running("idle-10-recent", 10, state_since=at(8)),
        running("idle-10-long", 10, state_since=at(2)),
        running("working-1", 1, state="working"),
        running("asking-1", 1, state="input_required"),
        Slot("warm", "pool", Status.ACTIVE, 0, at(1), "idle"),
        Slot("starting", "task", Status.INITIALIZING, 0, at(1)),
    ]
    found = victims(interrupt(), Hold(CAPACITY, 0), live)
    assert [v.id for v in found] == ["idle-10-long", "idle-10-recent", "idle-30"]


def test_an_interrupt_never_pauses_a_task_of_its_priority_or_higher() -> None:
    live = [running("same", 80), running("higher", 95), running("working", 5, "working")]
    assert victims(interrupt(80), Hold(CAPACITY, 0), live) == []
    # and only an interrupt preempts, only when capacity or its target holds it
    assert victims(pending("plain", 1, 99), Hold(CAPACITY, 0), [running("low", 1)]) == []
    assert victims(interrupt(), Hold(UNSERVED, 0, codebase="x"), [running("low", 1)]) == []


def test_an_interrupt_held_by_its_target_pauses_a_task_of_that_target() -> None:
    live = [
        running("other", 1, target="reviewer"),
        running("parallel", 2, target="builder", action="parallel"),
        running("mine", 40, target="builder"),
    ]
    found = victims(interrupt(target="builder"), Hold(TARGET, 0, target="builder"), live)
    assert [v.id for v in found] == ["mine"]  # pausing the others frees no builder place
