"""The store on each backend (SQLite and PostgreSQL): tasks, compare-and-set moves, leases,
warm-pool claims, logs and prompts, and several stores (engines) sharing one database."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from provisioner.errors import DockyardError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.store.store import Store
from tests.postgres import PostgresCluster, column_names, drop_columns
from tests.stored import stored_task


def make_task(store: Store, status: Status = Status.PENDING, **fields: Any) -> Task:
    return stored_task(store, status, **fields)


def race(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables at once (released together by a barrier); their results."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = workers[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def two_stores(store_url: str) -> Any:
    """Two stores on one database: two engines (or servers) sharing it."""
    stores = [Store(store_url), Store(store_url)]
    yield stores
    for s in stores:
        s.close()


# tasks ---------------------------------------------------------------------------------
def test_tasks_round_trip_with_their_json_fields(store: Store) -> None:
    task = make_task(
        store,
        parameters={"model": "x", "nested": {"list": [1, 2.5, None, True]}},
        resolved={"unicode": "caf\u00e9 \u2713 \U0001f680"},
        workspace={"container": "abc", "ports": {"8080": 1234}},
        policy={"backend": "docker", "idle_timeout_s": 30.5},
        priority=3,
        prompt="multi\nline 'quoted' \"prompt\" with %s and %(x)s",
    )
    got = store.get(task.id)
    assert got == task
    assert store.get(task.name) == task
    assert store.get(task.id[:8]) == task
    with pytest.raises(TaskNotFound):
        store.get("no-such-task")
    assert got.workspace == {"container": "abc", "ports": {"8080": 1234}}
    assert got.phases == [] and got.lease_until is None


def test_list_filters_by_status_and_kind_newest_first(store: Store) -> None:
    first = make_task(store)
    time.sleep(0.002)  # created_at has millisecond resolution
    second = make_task(store, Status.BACKLOG)
    time.sleep(0.002)
    warm = make_task(store, kind="pool")
    assert [t.id for t in store.list_tasks()] == [second.id, first.id]
    assert [t.id for t in store.list_tasks(kind=None)] == [warm.id, second.id, first.id]
    assert [t.id for t in store.list_tasks([Status.BACKLOG])] == [second.id]
    assert store.list_tasks([Status.ACTIVE]) == []


def test_a_taken_name_is_a_conflict_and_leaves_nothing_behind(store: Store) -> None:
    task = make_task(store, name="same")
    assert store.name_taken("me", "same") and not store.name_taken("you", "same")
    with pytest.raises(TaskConflict, match="already exists"):
        make_task(store, name="same")
    make_task(store, name="same", owner="you")  # unique per owner only
    assert len(store.events(task.id)) == 1
    assert len(store.list_tasks()) == 2


def test_transitions_are_compare_and_set(store: Store) -> None:
    task = make_task(store)
    moved = store.transition(
        task.id, Status.PENDING, Status.INITIALIZING, actor="engine", phase="image"
    )
    assert moved.status == Status.INITIALIZING and moved.phase == "image"
    assert [p["phase"] for p in moved.phases] == ["image"]
    with pytest.raises(TaskConflict, match="it is initializing, not pending"):
        store.transition(task.id, Status.PENDING, Status.CANCELLED, actor="user")
    assert store.update(task.id, Status.INITIALIZING, actor="engine", phase="start")
    assert not store.update(task.id, Status.PENDING, actor="engine", message="stale view")
    active = store.transition(
        task.id, Status.INITIALIZING, Status.ACTIVE, actor="engine", state="working"
    )
    assert active.phase is None and active.state == "working"
    assert [p["phase"] for p in active.phases] == ["image", "start"]
    assert all(p["duration_s"] is not None for p in active.phases)
    history = [(e["kind"], e["from_value"], e["to_value"]) for e in store.events(task.id)]
    assert history == [
        ("status", None, "pending"),
        ("status", "pending", "initializing"),
        ("phase", None, "image"),
        ("phase", "image", "start"),
        ("status", "initializing", "active"),
    ]
    store.delete(task.id)
    with pytest.raises(TaskNotFound, match="deleted"):
        store.transition(task.id, Status.ACTIVE, Status.PAUSED, actor="user")
    assert store.events(task.id) == []


def test_racing_transitions_move_a_task_once(two_stores: list[Store]) -> None:
    for _ in range(5):
        task = make_task(two_stores[0], Status.ACTIVE)

        def pause(store: Store, task: Task = task) -> bool:
            try:
                store.transition(task.id, Status.ACTIVE, Status.PAUSED, actor="test")
                return True
            except TaskConflict:
                return False

        results = race([lambda s=s: pause(s) for s in two_stores * 3])
        assert sum(results) == 1
        assert two_stores[1].get(task.id).status == Status.PAUSED
        moves = [e for e in two_stores[1].events(task.id) if e["to_value"] == "paused"]
        assert len(moves) == 1


# leases and warm-pool claims --------------------------------------------------------------
def test_leases_go_to_one_engine_until_they_expire(two_stores: list[Store]) -> None:
    a, b = two_stores
    task = make_task(a, Status.INITIALIZING)
    assert a.acquire_lease(task.id, "engine-a", ttl=30)
    assert not b.acquire_lease(task.id, "engine-b", ttl=30)
    assert a.acquire_lease(task.id, "engine-a", ttl=30)  # renewing one's own
    assert b.acquire_lease(task.id, "engine-b", ttl=30, steal_from="engine-a")
    b.renew_leases("engine-b", ttl=-1)  # expired
    assert a.get(task.id).lease_until == pytest.approx(time.time() - 1, abs=5)
    assert a.acquire_lease(task.id, "engine-a", ttl=30)
    assert a.get(task.id).lease_owner == "engine-a"
    pending = make_task(a)
    assert not a.acquire_lease(pending.id, "engine-a", ttl=30)  # only while initializing


def test_racing_engines_take_a_lease_once(two_stores: list[Store]) -> None:
    for _ in range(5):
        task = make_task(two_stores[0], Status.INITIALIZING)
        workers = [
            lambda i=i, task=task: two_stores[i % 2].acquire_lease(task.id, f"engine-{i}", ttl=30)
            for i in range(6)
        ]
        results = race(workers)
        assert sum(results) == 1
        assert two_stores[0].get(task.id).lease_owner == f"engine-{results.index(True)}"


def test_a_warm_member_is_never_claimed_twice(two_stores: list[Store]) -> None:
    for _ in range(5):
        member = make_task(two_stores[0], Status.ACTIVE, kind="pool")
        workers = [
            lambda i=i, member=member: two_stores[i % 2].claim_pool_member(
                member.id, {"message": f"claimed by {i}", "prompt": f"p{i}"}, actor="user"
            )
            for i in range(6)
        ]
        results = race(workers)
        assert sum(results) == 1
        claimed = two_stores[1].get(member.id)
        winner = results.index(True)
        assert (claimed.kind, claimed.prompt) == ("task", f"p{winner}")
        assert not two_stores[0].claim_pool_member(member.id, {}, actor="user")
        claims = [e for e in two_stores[0].events(member.id) if e["from_value"] == "pool"]
        assert len(claims) == 1


# logs -------------------------------------------------------------------------------------
def test_logs_append_and_read_in_order(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    woken: list[int] = []
    store.log_listeners.add(lambda: woken.append(1))
    entries = [
        {"seq": 1, "type": "input", "content": "do it", "prompt_id": "p1"},
        {"seq": 2, "type": "output", "content": "50% done, 'quoted' %s %(x)s \\ \u2713"},
        {"seq": 3, "type": "output", "content": "", "time": "2025-01-01T00:00:00.000Z"},
    ]
    assert store.append_logs(task.id, entries) == 3
    assert store.append_logs(task.id, []) == 0
    store.system_log(task.id, "provisioned")
    rows = store.logs(task.id)
    assert [(r["seq"], r["type"], r["content"]) for r in rows] == [
        (1, "input", "do it"),
        (2, "output", "50% done, 'quoted' %s %(x)s \\ \u2713"),
        (3, "output", ""),
        (None, "system", "provisioned"),
    ]
    assert rows[2]["time"] == "2025-01-01T00:00:00.000Z"
    assert rows[0]["delivery"] is None  # no such prompt stored
    assert [r["content"] for r in store.logs(task.id, after=rows[1]["id"])] == ["", "provisioned"]
    assert len(store.logs(task.id, limit=2)) == 2
    assert store.last_seq(task.id) == 3
    assert store.tail(task.id, 2) == ["50% done, 'quoted' %s %(x)s \\ \u2713", ""]
    assert len(woken) == 2


def test_duplicate_seqs_are_skipped_not_failed(two_stores: list[Store]) -> None:
    a, b = two_stores
    task = make_task(a, Status.ACTIVE)
    first = [{"seq": i, "type": "output", "content": f"line {i}"} for i in range(1, 6)]
    assert a.append_logs(task.id, first) == 5
    # a second follower's batch overlapping the first: only the new seqs are stored
    overlap = [{"seq": i, "type": "output", "content": f"again {i}"} for i in range(4, 9)]
    assert b.append_logs(task.id, overlap) == 3
    assert [r["content"] for r in a.logs(task.id)] == [
        *(f"line {i}" for i in range(1, 6)),
        *(f"again {i}" for i in range(6, 9)),
    ]
    # provisioning lines have no seq: each one is kept
    a.system_log(task.id, "same")
    a.system_log(task.id, "same")
    assert [r["content"] for r in a.logs(task.id)].count("same") == 2
    assert a.last_seq(task.id) == 8


def test_racing_followers_store_each_entry_once(two_stores: list[Store]) -> None:
    task = make_task(two_stores[0], Status.ACTIVE)
    batch = [{"seq": i, "type": "output", "content": f"line {i}"} for i in range(1, 501)]
    stored = race([lambda s=s: s.append_logs(task.id, batch) for s in two_stores * 2])
    assert sum(stored) == 500
    assert [r["seq"] for r in two_stores[0].logs(task.id)] == list(range(1, 501))


def test_a_large_batch_is_stored_whole(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    n = 20000
    batch = [
        {"seq": i, "type": "output", "content": f"line {i} " + "x" * (i % 200), "source": "agent"}
        for i in range(1, n + 1)
    ]
    assert store.append_logs(task.id, batch) == n
    rows = store.logs(task.id, limit=n + 10)
    assert len(rows) == n and rows[-1]["seq"] == n and rows[-1]["source"] == "agent"
    assert [r["seq"] for r in rows] == list(range(1, n + 1))
    assert store.last_seq(task.id) == n


def test_the_tail_of_a_tasks_logs(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    other = make_task(store, Status.ACTIVE)
    assert store.tail_start(task.id, 3) == 0  # no logs: read from the start
    store.append_logs(task.id, [{"seq": i, "type": "output", "content": f"l{i}"} for i in range(5)])
    store.append_logs(other.id, [{"seq": 9, "type": "output", "content": "theirs"}])
    tail = store.logs(task.id, store.tail_start(task.id, 3), 3)
    assert [r["content"] for r in tail] == ["l2", "l3", "l4"]
    assert store.tail_start(task.id, 10) == 0  # fewer than asked: all of them


def test_deleting_a_task_removes_its_logs_events_and_prompts(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    other = make_task(store, Status.ACTIVE)
    for t in (task, other):
        store.append_logs(t.id, [{"seq": 1, "type": "output", "content": "x"}])
        store.add_prompt(t.id, f"prompt-{t.id}", "hi")
    store.delete(task.id)
    assert store.logs(task.id) == [] and store.prompts(task.id) == []
    assert len(store.logs(other.id)) == 1 and len(store.prompts(other.id)) == 1


# prompts ----------------------------------------------------------------------------------
def test_prompts_are_kept_until_taken(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    first = store.add_prompt(task.id, "p1", "first")
    assert (first["state"], first["handed"]) == ("queued", 0)
    assert store.add_prompt(task.id, "p1", "first again")["content"] == "first"  # once
    store.add_prompt(task.id, "p2", "second")
    assert [p["id"] for p in store.prompts(task.id)] == ["p1", "p2"]
    store.mark_handed("p1")
    assert [p["id"] for p in store.prompts(task.id, only_unhanded=True)] == ["p2"]
    store.sync_prompts(
        task.id,
        [
            {"id": "p1", "state": "taken", "delivered_at": "d", "taken_at": "t"},
            {"id": "p2", "state": "delivered", "delivered_at": "d"},
            {"id": "unknown", "state": "taken"},
        ],
    )
    store.sync_prompts(task.id, [{"id": "p1", "state": "queued"}])  # never goes back
    p1, p2 = store.prompts(task.id)
    assert (p1["state"], p1["taken_at"], p2["state"], p2["handed"]) == (
        "taken",
        "t",
        "delivered",
        1,
    )
    assert store.prompt("missing") is None
    store.append_logs(task.id, [{"seq": 1, "type": "input", "content": "first", "prompt_id": "p1"}])
    assert store.logs(task.id)[0]["delivery"] == "taken"


# several engines on one database -------------------------------------------------------------
def test_a_failed_prompt_is_final_and_says_why(store: Store) -> None:
    task = make_task(store, Status.ACTIVE)
    for prompt_id in ("p1", "p2", "p3"):
        store.add_prompt(task.id, prompt_id, prompt_id)
    assert store.fail_prompt(task.id, "p1", "refused (413)", "engine") is True
    assert store.fail_prompt(task.id, "p1", "refused again", "engine") is False
    failed = store.sync_prompts(
        task.id,
        [
            {"id": "p1", "state": "taken"},  # final states never change
            {"id": "p2", "state": "failed", "reason": "too long"},
            {"id": "p3", "state": "taken", "taken_at": "t"},
        ],
    )
    assert failed == [("p2", "too long")]
    assert store.sync_prompts(task.id, [{"id": "p3", "state": "failed", "reason": "x"}]) == []
    assert [(p["state"], p["reason"], p["handed"]) for p in store.prompts(task.id)] == [
        ("failed", "refused (413)", 1),
        ("failed", "too long", 1),
        ("taken", None, 1),
    ]
    history = [
        (e["from_value"], e["to_value"], e["actor"], e["reason"])
        for e in store.events(task.id)
        if e["kind"] == "prompt"
    ]
    assert history == [
        ("p1", "failed", "engine", "refused (413)"),
        ("p2", "failed", "bridge", "too long"),
    ]


def test_an_older_database_gets_the_prompt_reason_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    Store(url).close()
    old = create_engine(url)
    with old.begin() as conn:
        conn.execute(text("ALTER TABLE prompts DROP COLUMN reason"))
    old.dispose()
    store = Store(url)
    task = make_task(store, Status.ACTIVE)
    store.add_prompt(task.id, "p1", "x")
    assert store.fail_prompt(task.id, "p1", "why", "engine")
    assert store.prompts(task.id)[0]["reason"] == "why"
    store.close()


def test_stores_opening_one_new_database_together(store_url: str) -> None:
    stores = race([lambda: Store(store_url) for _ in range(4)])
    try:
        task = make_task(stores[0])
        assert all(s.get(task.id) == task for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_stricter_default_isolation_changes_nothing(postgres_cluster: PostgresCluster) -> None:
    # An administrator may make REPEATABLE READ or SERIALIZABLE a database's default: the
    # store keeps READ COMMITTED, so racing moves still end in one winner, not in errors.
    url = postgres_cluster.database()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                f"ALTER DATABASE {make_url(url).database} "
                "SET default_transaction_isolation = 'serializable'"
            )
        )
    admin.dispose()
    stores = [Store(url), Store(url)]
    try:
        test_racing_transitions_move_a_task_once(stores)
        tasks = [make_task(stores[0], Status.PAUSED) for _ in range(6)]
        admitted = race(
            [
                lambda t=t, s=s: s.admit(t.id, Status.PAUSED, 1, actor="t", action="resume")[0]
                for t, s in zip(tasks, stores * 3, strict=True)
            ]
        )
        assert sum(a is not None for a in admitted) == 1
    finally:
        for s in stores:
            s.close()
        postgres_cluster.drop(url)


def test_a_nul_in_text_is_stored_not_rejected(store: Store) -> None:
    # PostgreSQL text cannot hold NUL: there it becomes U+FFFD rather than failing the batch
    task = make_task(store, Status.ACTIVE, prompt="see\x00this")
    nul = "\ufffd" if store.db.dialect.name == "postgresql" else "\x00"
    stored = store.append_logs(
        task.id,
        [
            {"seq": 1, "type": "output", "content": "binary \x00\x01 junk"},
            {"seq": 2, "type": "output", "content": "fine"},
        ],
    )
    assert stored == 2
    assert [r["content"] for r in store.logs(task.id)] == [f"binary {nul}\x01 junk", "fine"]
    assert store.update(task.id, Status.ACTIVE, actor="engine", message="said \x00")
    assert store.get(task.id).message == f"said {nul}"
    assert store.get(task.id).prompt == f"see{nul}this"
    store.add_prompt(task.id, "p1", "follow\x00up")
    assert store.prompts(task.id)[0]["content"] == f"follow{nul}up"


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://me:hunter2@/dockyard?host={tmp_path}"  # no server there
    with pytest.raises(DockyardError, match="Cannot open the database at") as caught:
        Store(url)
    assert "hunter2" not in str(caught.value) and "DOCKYARD_DATABASE_URL" in str(caught.value)


def test_a_missing_driver_says_what_to_install() -> None:
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed")
    with pytest.raises(DockyardError, match=r"driver .* is not installed \(pg8000\)") as caught:
        Store("postgresql+pg8000://me:hunter2@localhost/dockyard")
    assert "dockyard[postgres]" in str(caught.value) and "hunter2" not in str(caught.value)


def test_log_ids_go_past_32_bits(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.database()
    store = Store(url)
    try:
        with store.db.begin() as conn:
            conn.execute(text("ALTER SEQUENCE logs_id_seq RESTART WITH 3000000000"))
        task = make_task(store, Status.ACTIVE)
        store.append_logs(task.id, [{"seq": 1, "type": "output", "content": "far along"}])
        (row,) = store.logs(task.id)
        assert row["id"] == 3000000000
        assert store.logs(task.id, after=row["id"]) == []
    finally:
        store.close()
        postgres_cluster.drop(url)


def test_a_task_waiting_for_dependencies_holds_no_place_in_line(store_url: str) -> None:
    Store(store_url).close()
    drop_columns(store_url, "tasks", ["blocked"])  # a database from before dependencies
    store = Store(store_url)
    try:
        assert "blocked" in column_names(store_url, "tasks")
        running = make_task(store, Status.ACTIVE)
        ahead = make_task(store, priority=90, blocked=True)
        behind = make_task(store, priority=10)
        usage = store.usage(2)
        assert [s.id for s in usage.queue] == [behind.id] and usage.waiting == 1
        moved, _ = store.admit(behind.id, Status.PENDING, 2, actor="engine")
        assert moved is not None and moved.status == Status.INITIALIZING
        assert store.get(ahead.id).blocked is True and running.blocked is False
    finally:
        store.close()
