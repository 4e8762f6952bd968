"""On PostgreSQL A2A push configs follow their tasks' events in commit order, as the
webhook dispatcher reads every task's (store/commit_order.py): an event whose id was
taken before another's but committed after it is still pushed, after it, once.

Read by id, a config that had followed the later id would have passed the earlier one
for good. Two transactions are interleaved by hand here: the first takes its
transaction id, the second inserts an event (the smaller id) and stays open, the first
inserts its event (the larger id) and commits at once. A real HTTP receiver gets what the
dispatcher sends; passes are run by hand, no thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from provisioner.lifecycle import Status
from provisioner.model import utcnow
from provisioner.server.webhook_dispatch import Dispatcher
from provisioner.store.schema import a2a_push_configs, events, webhook_deliveries
from provisioner.store.store import Store
from provisioner.webhooks import RetryPolicy, Settings
from tests.polling import wait_until
from tests.postgres import postgres_cluster
from tests.stored import stored_task
from tests.webhook_receiver import Receiver

__all__ = ["postgres_cluster"]

SETTINGS = Settings(allow_private=True, timeout_s=5, retry=RetryPolicy(max_attempts=1))
WORKING, INPUT = "TASK_STATE_WORKING", "TASK_STATE_INPUT_REQUIRED"


def _insert_state(conn: Connection, task_id: str, state: str) -> int:
    """A state event written in `conn`'s transaction, as a bridge report writes one."""
    added = conn.execute(
        insert(events).values(task_id=task_id, kind="state", to_value=state, actor="bridge",
                              reason="", time=utcnow())
    ).inserted_primary_key  # fmt: skip
    assert added is not None
    return int(added[0])


def _pushed(receiver: Receiver) -> list[tuple[str, int]]:
    """(A2A state, event id) of each push the receiver accepted, in arrival order."""
    return [
        (
            g.json["statusUpdate"]["status"]["state"],
            int(g.json["statusUpdate"]["metadata"]["dockyard"]["event_id"]),
        )
        for g in receiver.accepted()
    ]


def _send_until(dispatcher: Dispatcher, receiver: Receiver, count: int) -> list[tuple[str, int]]:
    def sent() -> list[tuple[str, int]] | None:
        dispatcher.dispatch()  # one request per config at a time: a pass per push
        got = _pushed(receiver)
        return got if len(got) >= count else None

    return wait_until(sent, 20, f"{count} pushes accepted (have {_pushed(receiver)})")


def _push_rows(store: Store) -> list[dict[str, Any]]:
    with store.db.connect() as conn:
        query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id.like("a2a-%"))
        return [dict(r._mapping) for r in conn.execute(query)]


def _seen(store: Store, task_id: str) -> dict[str, Any]:
    with store.db.connect() as conn:
        query = select(a2a_push_configs.c.seen).where(a2a_push_configs.c.task_id == task_id)
        return dict(conn.execute(query).scalar_one())


def test_a_push_committed_after_a_later_id_is_still_sent_in_commit_order(
    pg_store: Store,
) -> None:
    store = pg_store
    store.create_user("boss", "admin")
    task = stored_task(store, Status.ACTIVE, owner="boss", state="idle")
    with Receiver() as receiver:
        # set while the task waits for input: its next changes are pushed
        assert store.put_push_config(task.id, "c1", {"url": receiver.url})
        dispatcher = Dispatcher(store, SETTINGS, tick_s=60)
        try:
            dispatcher.fan_out()  # the cursor starts after what exists

            fast, slow = store.db.connect(), store.db.connect()
            try:
                fast_tx = fast.begin()
                fast.execute(select(func.txid_current()))  # the older transaction...
                slow_tx = slow.begin()
                early = _insert_state(slow, task.id, "idle")  # ...the smaller id
                late = _insert_state(fast, task.id, "working")
                assert early < late
                fast_tx.commit()  # the larger id visible first
                for _ in range(3):  # any number of passes while the first is open
                    dispatcher.fan_out()
                assert _send_until(dispatcher, receiver, 1) == [(WORKING, late)]
                slow_tx.commit()
            finally:
                fast.close()
                slow.close()
            dispatcher.fan_out()
            # both, in the order they committed
            assert _send_until(dispatcher, receiver, 2) == [(WORKING, late), (INPUT, early)]

            # another server's dispatcher (or this one after a restart) repeats nothing
            other = Dispatcher(store, SETTINGS, tick_s=60)
            other.fan_out()
            dispatcher.fan_out()
            assert sorted(r["event_id"] for r in _push_rows(store)) == [early, late]
            # the receiver has each request before its sender marks the row delivered
            wait_until(
                lambda: all(r["state"] == "delivered" for r in _push_rows(store)),
                what="both pushes marked delivered",
            )
        finally:
            dispatcher.stop()
        assert len(receiver.requests()) == 2


def test_a_config_set_later_starts_after_the_last_event_in_commit_order(
    pg_store: Store,
) -> None:
    store = pg_store
    store.create_user("boss", "admin")
    task = stored_task(store, Status.ACTIVE, owner="boss", state="working")
    assert store.record(task.id, "state", actor="bridge", to_value="idle", state="idle")
    assert store.put_push_config(task.id, "c1", {"url": "http://127.0.0.1:9/"})
    seen = _seen(store, task.id)
    (last,) = store.events(task.id)[-1:]
    # in commit order from its start, above the ids that came before it
    assert (seen["floor"], seen["xact"], seen["state"]) == (last["id"], 0, "idle")
    dispatcher = Dispatcher(store, SETTINGS, tick_s=60)
    dispatcher.fan_out()
    assert store.record(task.id, "state", actor="bridge", to_value="working", state="working")
    dispatcher.fan_out()
    # the change before it was set is not pushed; the one after is, once
    assert [(r["event"], r["event_id"]) for r in _push_rows(store)] == [
        (WORKING, store.events(task.id)[-1]["id"])
    ]


def test_a_config_placed_by_id_is_moved_to_commit_order_without_repeats(
    pg_store: Store,
) -> None:
    """A config stored before push followed commit order has a place by id only; it is
    placed after every event it followed, and pushes none of them again."""
    store = pg_store
    store.create_user("boss", "admin")
    task = stored_task(store, Status.ACTIVE, owner="boss", state="idle")
    assert store.put_push_config(task.id, "c1", {"url": "http://127.0.0.1:9/"})
    dispatcher = Dispatcher(store, SETTINGS, tick_s=60)
    dispatcher.fan_out()
    for state in ("working", "idle"):
        assert store.record(task.id, "state", actor="bridge", to_value=state, state=state)
    followed = store.events(task.id)[-1]["id"]
    by_id = {"event": followed, "status": "active", "state": "idle", "a2a": INPUT}
    with store.db.begin() as conn:  # as the version before left it
        conn.execute(update(a2a_push_configs).values(seen=by_id))
    assert store.record(task.id, "state", actor="bridge", to_value="working", state="working")
    dispatcher.fan_out()
    newest = store.events(task.id)[-1]["id"]
    assert [(r["event"], r["event_id"]) for r in _push_rows(store)] == [(WORKING, newest)]
    assert _seen(store, task.id)["xact"] > 0 and _seen(store, task.id)["event"] == newest


def test_a_config_set_later_gets_the_event_of_a_transaction_older_than_its_start(
    pg_store: Store,
) -> None:
    """The config's start is after the task's last event, but a transaction that began
    before that event's may write the next one: it is pushed (a place of (xact, id) at
    the last event would sort it before, and pass it)."""
    store = pg_store
    store.create_user("boss", "admin")
    task = stored_task(store, Status.ACTIVE, owner="boss", state="working")
    dispatcher = Dispatcher(store, SETTINGS, tick_s=60)
    dispatcher.fan_out()
    with store.db.connect() as older:
        held = older.begin()
        older.execute(select(func.txid_current()))
        assert store.record(task.id, "state", actor="bridge", to_value="idle", state="idle")
        assert store.put_push_config(task.id, "c1", {"url": "http://127.0.0.1:9/"})
        event = _insert_state(older, task.id, "working")
        held.commit()
    dispatcher.fan_out()
    assert [(r["event"], r["event_id"]) for r in _push_rows(store)] == [(WORKING, event)]
