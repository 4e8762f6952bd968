"""On PostgreSQL the webhook dispatcher reads events in commit order: an event whose id
was taken before another's but committed after it (two writers, the first slow to
commit) is still turned into a delivery, however long its transaction stays open.

Event ids come from a sequence at insert; a dispatcher that moved its cursor past a
later id already visible would never read the earlier one (store/commit_order.py).
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update

from provisioner.lifecycle import Status
from provisioner.model import utcnow
from provisioner.server.webhook_dispatch import Dispatcher
from provisioner.store.schema import cursors, events
from provisioner.store.store import Store
from provisioner.store.webhooks import XACT_CURSOR
from provisioner.webhooks import RetryPolicy, Settings, new_secret
from tests.postgres import postgres_cluster
from tests.stored import stored_task

__all__ = ["postgres_cluster"]

SETTINGS = Settings(allow_private=True, retry=RetryPolicy(max_attempts=1))


def _event(task_id: str, text: str) -> dict[str, object]:
    return {"task_id": task_id, "kind": "progress", "actor": "user:boss", "reason": text,
            "time": utcnow()}  # fmt: skip


def _delivered_events(store: Store, hook: str) -> list[int]:
    return sorted(d["event_id"] for d in store.deliveries([hook], limit=1000))


def _xact_cursor(store: Store) -> int:
    with store.db.connect() as conn:
        value = conn.execute(select(cursors.c.value).where(cursors.c.name == XACT_CURSOR))
        return int(value.scalar() or 0)


def test_an_event_committed_after_a_later_one_is_still_delivered(pg_store: Store) -> None:
    store = pg_store
    store.create_user("boss", "admin")
    hook = store.create_webhook(
        "boss", "http://127.0.0.1:9/", ["progress"], new_secret(), all_tasks=True
    )["id"]
    task = stored_task(store, Status.ACTIVE, owner="boss")
    dispatcher = Dispatcher(store, SETTINGS, tick_s=60)  # passes run by hand, no thread

    slow = store.db.connect()
    held = slow.begin()  # the first writer: its event's id taken, its commit delayed
    early = slow.execute(insert(events).values(**_event(task.id, "slow"))).inserted_primary_key
    assert early is not None
    early_id = int(early[0])
    early_xact = int(slow.execute(select(func.txid_current())).scalar())
    try:
        # the second writer commits at once: a larger id, visible first
        assert store.record(task.id, "progress", actor="user:boss", reason="fast")
        late_id = int(store.events(task.id)[-1]["id"])
        assert late_id > early_id
        for _ in range(3):  # any number of passes while the first is open
            dispatcher.fan_out()
            # the cursor never passes a transaction still in flight
            assert _xact_cursor(store) <= early_xact
        held.commit()
    finally:
        slow.close()
    dispatcher.fan_out()
    dispatcher.fan_out()
    assert _delivered_events(store, hook) == [early_id, late_id]

    # a dispatcher of another server (or after a restart) repeats nothing
    Dispatcher(store, SETTINGS, tick_s=60).fan_out()
    assert _delivered_events(store, hook) == [early_id, late_id]


def test_a_rolled_back_event_holds_nothing_up(pg_store: Store) -> None:
    store = pg_store
    store.create_user("boss", "admin")
    hook = store.create_webhook(
        "boss", "http://127.0.0.1:9/", ["progress"], new_secret(), all_tasks=True
    )["id"]
    task = stored_task(store, Status.ACTIVE, owner="boss")
    dispatcher = Dispatcher(store, SETTINGS, tick_s=60)
    with store.db.connect() as conn:
        trans = conn.begin()
        conn.execute(insert(events).values(**_event(task.id, "never")))
        trans.rollback()
    assert store.record(task.id, "progress", actor="user:boss", reason="after")
    after_id = int(store.events(task.id)[-1]["id"])
    dispatcher.fan_out()
    assert _delivered_events(store, hook) == [after_id]


def test_events_carry_their_transaction_even_from_a_plain_insert(pg_store: Store) -> None:
    """PostgreSQL fills the column in itself: a server of an older version, which knows
    nothing of it, still writes events the dispatcher reads."""
    task = stored_task(pg_store, Status.ACTIVE)
    with pg_store.db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO events (task_id, kind, actor, reason, time) "
            f"VALUES ('{task.id}', 'progress', 'old', '', '{utcnow()}')"
        )
    with pg_store.db.connect() as conn:
        found = conn.execute(select(events.c.xact).where(events.c.actor == "old")).scalar()
    assert found is not None and found > 0


def test_events_from_before_commit_order_that_were_not_read_yet_are_delivered(
    pg_store: Store,
) -> None:
    """A database upgraded in place: its events have no transaction id, and the id
    cursor says how far the older dispatcher had read; the rest are still delivered."""
    store = pg_store
    store.create_user("boss", "admin")
    hook = store.create_webhook(
        "boss", "http://127.0.0.1:9/", ["progress"], new_secret(), all_tasks=True
    )["id"]
    task = stored_task(store, Status.ACTIVE, owner="boss")
    for text in ("read before", "not read yet"):
        assert store.record(task.id, "progress", actor="user:boss", reason=text)
    read, unread = (int(e["id"]) for e in store.events(task.id)[-2:])
    with store.db.begin() as conn:  # as the older version left it
        conn.execute(update(events).values(xact=None))
        conn.execute(delete(cursors).where(cursors.c.name == XACT_CURSOR))
        conn.execute(update(cursors).where(cursors.c.name == "webhooks").values(value=read))
    Dispatcher(store, SETTINGS, tick_s=60).fan_out()
    assert _delivered_events(store, hook) == [unread]
