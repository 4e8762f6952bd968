"""Reading every task event in the order its transaction committed (PostgreSQL).

An event's id comes from a sequence when the row is inserted, but the row becomes
visible when its transaction commits: with two writers, id 8 can be visible while id 7
is still in flight. A reader that moves a cursor past 8 (the webhook dispatcher) would
never see 7. Log lines solve this with a lock per task (provisioner/store/records.py),
which fits readers of one task; the dispatcher reads every task's events, and one lock
for all of them would serialise every write of the store.

Instead each event carries the id of the transaction that wrote it (`xact`, filled in
by PostgreSQL itself, so a server of an older version writes it too), and a reader asks
PostgreSQL for the horizon: the oldest transaction still in flight. Every transaction
below it has ended, so its events are all visible (or rolled back, and never will be);
a reader that reads `xact < horizon` and then moves its cursor to the horizon skips
nothing. A transaction held open long delays what comes after it; nothing is lost.
SQLite has one writer at a time, so its ids are visible in order already.

Readers that follow events this way: the webhook dispatcher (every task's events, one
cursor) and A2A push configs (one task's events each, a position per config); both read
through `after` below, in `ORDER`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, inspect, text, tuple_

from provisioner.store.schema import events

# where a reader is: the (xact, id) of the last event it read; (0, 0) is the start
Position = tuple[int, int]
ORDER = (events.c.xact, events.c.id)


def commit_ordered(db: Engine) -> bool:
    """Whether this database needs (and has) events read by their transaction."""
    return db.dialect.name == "postgresql"


def prepare(db: Engine) -> None:
    """Make PostgreSQL fill in `events.xact` for every insert, whoever writes it, and
    index it. Idempotent; changed only when missing (an ALTER takes a strong lock)."""
    if not commit_ordered(db):
        return
    column = next(c for c in inspect(db).get_columns("events") if c["name"] == "xact")
    if "txid_current" not in str(column.get("default") or ""):
        with db.begin() as conn:
            conn.execute(text("ALTER TABLE events ALTER COLUMN xact SET DEFAULT txid_current()"))
    index = next(i for i in events.indexes if i.name == "ix_events_xact")
    with db.begin() as conn:  # a database from before the column lacks it
        index.create(conn, checkfirst=True)


def horizon(conn: Any) -> int:
    """The oldest transaction in flight now: every one below it has ended."""
    return int(conn.execute(text("SELECT txid_snapshot_xmin(txid_current_snapshot())")).scalar())


def after(position: Position, before: int) -> ColumnElement[bool]:
    """The events of ended transactions (`xact` below the horizon `before`) that come
    after `position` in commit order: read them ordered by ORDER."""
    return and_(events.c.xact < before, tuple_(*ORDER) > tuple_(position[0], position[1]))
