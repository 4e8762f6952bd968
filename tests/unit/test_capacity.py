"""Capacity: counting live workspaces, the queue, admission under the store's lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from provisioner import paths
from provisioner.capacity import (
    Slot,
    count_usage,
    may_start,
    parse_limit,
    pool_members_to_evict,
    waiting_message,
)
from provisioner.errors import DockyardError
from provisioner.lifecycle import Status, can_transition
from provisioner.model import Task
from provisioner.store.store import Store
from tests.stored import stored_task


def slot(
    name: str,
    status: Status,
    kind: str = "task",
    since: str = "2025-01-01T00:00:00.000Z",
    priority: int = 0,
    state: str | None = None,
) -> Slot:
    return Slot(name, kind, status, priority, since, state)


# pure logic ------------------------------------------------------------------------
def test_only_initializing_and_active_workspaces_count() -> None:
    usage = count_usage(
        3,
        [
            slot("a", Status.ACTIVE),
            slot("b", Status.INITIALIZING),
            slot("w", Status.ACTIVE, kind="pool"),
            slot("p", Status.PENDING),
        ],
    )
    assert (usage.in_use, usage.tasks, usage.pool, usage.available) == (3, 2, 1, 0)
    assert usage.waiting == 1
    assert usage.summary() == "3 of 3 workspaces in use"
    assert count_usage(None, []).summary() == "0 workspaces in use (no limit)"


def test_queue_puts_user_tasks_first_then_priority_then_age() -> None:
    usage = count_usage(
        1,
        [
            slot("pool-old", Status.PENDING, kind="pool", since="2025-01-01T00:00:00.000Z"),
            slot("late", Status.PENDING, since="2025-01-03T00:00:00.000Z"),
            slot("early", Status.PENDING, since="2025-01-02T00:00:00.000Z"),
            slot("urgent", Status.PENDING, since="2025-01-04T00:00:00.000Z", priority=5),
        ],
    )
    assert [s.id for s in usage.queue] == ["urgent", "early", "late", "pool-old"]
    assert usage.waiting == 3  # warm-pool members are not "waiting tasks"


def test_may_start_only_with_a_slot_free_after_everyone_ahead() -> None:
    rows = [
        slot("run", Status.ACTIVE),
        slot("first", Status.PENDING, since="2025-01-01T00:00:00.000Z"),
        slot("second", Status.PENDING, since="2025-01-02T00:00:00.000Z"),
        slot("warm", Status.PENDING, kind="pool"),
    ]
    two = count_usage(2, rows)
    assert may_start(two, "first")
    assert not may_start(two, "second")  # the one free slot is first's
    assert not may_start(two, "warm", "pool")  # a prebuild never takes a task's slot
    assert not may_start(two, "resumed")  # a resume queues behind waiting tasks
    four = count_usage(4, rows)
    assert may_start(four, "second") and may_start(four, "warm", "pool")
    assert may_start(count_usage(None, rows * 10), "anything")


def test_waiting_message_says_why_how_full_and_where() -> None:
    usage = count_usage(
        2, [slot("a", Status.ACTIVE), slot("b", Status.ACTIVE), slot("c", Status.PENDING)]
    )
    assert waiting_message(usage, "c") == (
        "waiting for capacity: 2 of 2 workspaces in use; 1st in line"
    )
    # not queued yet (being created, or a resume): behind everyone waiting
    assert waiting_message(usage, "new", resuming=True) == (
        "waiting for capacity to resume: 2 of 2 workspaces in use; 2nd in line"
    )


def test_prebuilds_yield_their_slots_to_waiting_tasks() -> None:
    rows = [
        slot("task", Status.ACTIVE),
        slot("ready-old", Status.ACTIVE, "pool", "2025-01-01T00:00:00.000Z", state="idle"),
        slot("ready-new", Status.ACTIVE, "pool", "2025-01-02T00:00:00.000Z", state="idle"),
        slot("starting", Status.INITIALIZING, "pool", "2025-01-03T00:00:00.000Z"),
        slot("wait-1", Status.PENDING),
        slot("wait-2", Status.PENDING),
    ]
    usage = count_usage(4, rows)
    assert pool_members_to_evict(usage, rows) == ["ready-new", "ready-old"]
    assert pool_members_to_evict(count_usage(5, rows), rows) == ["ready-new"]
    assert pool_members_to_evict(count_usage(6, rows), rows) == []
    assert pool_members_to_evict(count_usage(None, rows), rows) == []
    nobody_waits = [r for r in rows if r.status != Status.PENDING]
    assert pool_members_to_evict(count_usage(4, nobody_waits), nobody_waits) == []


@pytest.mark.parametrize(
    ("value", "limit"), [(None, None), ("", None), ("unlimited", None), (4, 4), ("2", 2)]
)
def test_parse_limit(value: object, limit: int | None) -> None:
    assert parse_limit(value, "x") == limit


@pytest.mark.parametrize("value", [0, -1, "many", True, 1.5])
def test_parse_limit_rejects_nonsense(value: object) -> None:
    with pytest.raises(ValueError, match="x"):
        parse_limit(value, "x")


def test_a_waiting_resume_is_pending() -> None:
    assert can_transition(Status.PAUSED, Status.PENDING)
    assert can_transition(Status.ERROR, Status.PENDING)


# configuration ----------------------------------------------------------------------
def test_limit_from_config_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path))
    monkeypatch.delenv("DOCKYARD_MAX_WORKSPACES", raising=False)
    assert paths.max_workspaces() is None
    (tmp_path / "config.yaml").write_text("capacity:\n  workspaces: 3\n")
    assert paths.max_workspaces() == 3
    monkeypatch.setenv("DOCKYARD_MAX_WORKSPACES", "5")
    assert paths.max_workspaces() == 5
    monkeypatch.setenv("DOCKYARD_MAX_WORKSPACES", "0")
    with pytest.raises(DockyardError, match="DOCKYARD_MAX_WORKSPACES: must be at least 1"):
        paths.max_workspaces()
    monkeypatch.delenv("DOCKYARD_MAX_WORKSPACES")
    (tmp_path / "config.yaml").write_text("capacity: 3\n")
    with pytest.raises(DockyardError, match="capacity must be a mapping"):
        paths.max_workspaces()


# the store: counting and moving in one locked transaction ------------------------------
def make_task(store: Store, status: Status = Status.PENDING, kind: str = "task") -> Task:
    # one millisecond apart (the stored time's resolution): arrival order is the order
    # of the calls, not a tie broken by random ids
    time.sleep(0.002)
    return stored_task(store, status, kind=kind)


def admit(store: Store, task: Task, limit: int | None) -> Task | None:
    moved, _ = store.admit(task.id, Status.PENDING, limit, kind=task.kind, actor="test")
    return moved


def test_store_admits_within_the_limit_and_in_order(store: Store) -> None:
    warm = make_task(store, kind="pool")
    first, second = make_task(store), make_task(store)
    assert admit(store, second, 1) is None  # first is ahead of it
    assert admit(store, warm, 1) is None  # user tasks wait: the prebuild yields
    moved = admit(store, first, 1)
    assert moved is not None and moved.status == Status.INITIALIZING
    assert admit(store, second, 1) is None  # full now
    usage = store.usage(1)
    assert (usage.in_use, usage.waiting, [s.id for s in usage.queue]) == (
        1,
        1,
        [second.id, warm.id],
    )
    assert admit(store, second, None) is not None  # unlimited: always


def test_two_stores_never_both_take_the_last_slot(store_url: str) -> None:
    stores = [Store(store_url), Store(store_url)]
    for _ in range(5):
        # Paused tasks being resumed all stand at the head of the line: only the count
        # (taken under the lock) can stop all but one of them.
        tasks = [make_task(stores[0], Status.PAUSED) for _ in range(6)]
        barrier = threading.Barrier(len(tasks))
        results: list[Task | None] = []

        def race(
            task: Task,
            store: Store,
            barrier: threading.Barrier = barrier,
            results: list[Task | None] = results,
        ) -> None:
            barrier.wait()
            moved, _ = store.admit(task.id, Status.PAUSED, 1, actor="test", action="resume")
            results.append(moved)

        threads = [
            threading.Thread(target=race, args=(t, stores[i % 2])) for i, t in enumerate(tasks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r is not None for r in results) == 1
        assert stores[1].usage(1).in_use == 1
        for t in stores[0].list_tasks():
            stores[0].delete(t.id)
    for s in stores:
        s.close()


def test_eviction_spares_a_member_claimed_meanwhile(store: Store) -> None:
    members = [make_task(store, kind="pool") for _ in range(2)]
    for m in members:
        assert admit(store, m, None)
        store.transition(m.id, Status.INITIALIZING, Status.ACTIVE, actor="test", state="idle")
    waiting = make_task(store)
    assert store.claim_pool_member(members[1].id, {"message": "claimed"}, actor="user")
    evicted = store.evict_pool_members(2)
    assert evicted == [members[0].id]
    assert store.get(members[0].id).status == Status.CANCELLED
    assert store.get(members[1].id).status == Status.ACTIVE  # the claimed one: untouched
    assert admit(store, waiting, 2) is not None
