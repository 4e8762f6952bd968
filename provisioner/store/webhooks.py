"""Webhook subscriptions and their deliveries: the store's part of notifications out.

Servers sharing a database cooperate through three things here: the unique
(webhook, event) of a delivery (an event is turned into a delivery once, whoever sees it
first), a delivery's lease (one server sends it at a time), and the cursor (how far every
event has been turned into deliveries, so a restart neither loses nor repeats any).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from provisioner.auth.tokens import Principal
from provisioner.errors import ParameterError, TaskNotFound
from provisioner.model import utcnow
from provisioner.store import commit_order
from provisioner.store.records import insert_ignoring_duplicates
from provisioner.store.schema import cursors, events, tasks, users, webhook_deliveries, webhooks

MAX_WEBHOOKS_PER_USER = 50
CURSOR = "webhooks"
# on PostgreSQL: the transaction horizon below which every event was turned into
# deliveries (see store/commit_order.py); the id cursor is SQLite's
XACT_CURSOR = "webhooks-xact"
_NOT_FOUND_HINT = "list your webhooks: dockyard webhook list"


def _webhook_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": row.owner,
        "url": row.url,
        "events": list(row.events),
        "task_id": row.task_id,
        "all": bool(row.all_tasks),
        "created_at": row.created_at,
    }  # never the secret: it is shown once, when the server makes it


_DELIVERY_COLUMNS = [c for c in webhook_deliveries.c if c.name not in ("body", "lease_owner")]


def _delivery_json(row: Any) -> dict[str, Any]:
    data = {c.name: getattr(row, c.name) for c in _DELIVERY_COLUMNS}
    data.pop("lease_until", None)
    return data


def unleased(now: float) -> ColumnElement[bool]:
    """A delivery no server holds: never leased, or its lease ran out."""
    d = webhook_deliveries
    return or_(d.c.lease_until.is_(None), d.c.lease_until < now)


def oldest_due(now: float, *columns: Any, hooks: ColumnElement[bool] | None = None) -> Select[Any]:
    """The oldest pending delivery of each receiver (of those `hooks` selects), if it is
    due and unleased, with `columns` beside it; the caller joins what they come from.
    Only the oldest: a receiver's events go out in order, so a later one waits while an
    earlier one is retried."""
    d = webhook_deliveries
    pending = d.c.state == "pending"
    oldest = (
        select(d.c.webhook_id, func.min(d.c.event_id).label("first"))
        .where(pending if hooks is None else and_(pending, hooks))
        .group_by(d.c.webhook_id)
        .subquery()
    )
    return (
        select(d, *columns)
        .join(oldest, and_(oldest.c.webhook_id == d.c.webhook_id, oldest.c.first == d.c.event_id))
        .where(and_(d.c.next_attempt_at <= now, unleased(now)))
        .order_by(d.c.next_attempt_at)
    )


class WebhooksMixin:
    """Subscriptions, deliveries and the dispatcher's cursor; mixed into the Store."""

    db: Engine

    # subscriptions ------------------------------------------------------------------------
    def create_webhook(
        self,
        owner: str,
        url: str,
        event_names: list[str],
        secret: str,
        *,
        task_id: str | None = None,
        all_tasks: bool = False,
    ) -> dict[str, Any]:
        """A new subscription of `owner`'s; it gets events recorded from now on."""
        with self.db.begin() as conn:
            have = conn.execute(
                select(func.count()).select_from(webhooks).where(webhooks.c.owner == owner)
            ).scalar()
            if (have or 0) >= MAX_WEBHOOKS_PER_USER:
                raise ParameterError(
                    f"{owner} has {have} webhooks, the most a user may have",
                    hint="remove one first: dockyard webhook remove ID",
                )
            newest = conn.execute(select(func.max(events.c.id))).scalar() or 0
            # the dispatcher's cursor starts here at the latest, even if it never ran yet
            conn.execute(
                insert_ignoring_duplicates(self.db, cursors), [{"name": CURSOR, "value": newest}]
            )
            if commit_order.commit_ordered(self.db):
                self._xact_cursor_in(conn)
            values = {
                "id": secrets.token_hex(6),
                "owner": owner,
                "url": url,
                "events": event_names,
                "task_id": task_id,
                "all_tasks": int(all_tasks),
                "secret": secret,
                "after_event": newest,
                "created_at": utcnow(),
            }
            conn.execute(insert(webhooks).values(**values))
            row = conn.execute(select(webhooks).where(webhooks.c.id == values["id"])).one()
        return _webhook_json(row)

    def webhooks_of(self, owner: str | None) -> list[dict[str, Any]]:
        """Subscriptions, oldest first; of one owner, or everyone's."""
        query = select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
        if owner is not None:
            query = query.where(webhooks.c.owner == owner)
        with self.db.connect() as conn:
            return [_webhook_json(r) for r in conn.execute(query)]

    def webhook(self, webhook_id: str, by: Principal) -> dict[str, Any]:
        """One subscription: the caller's own, or anyone's for an admin. Another member's
        answers as absent, so its existence does not leak."""
        with self.db.connect() as conn:
            row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
        if row is None or (row.owner != by.user and not by.is_admin):
            raise TaskNotFound(f"No webhook {webhook_id[:40]!r}", hint=_NOT_FOUND_HINT)
        return _webhook_json(row)

    def remove_webhook(self, webhook_id: str, by: Principal) -> dict[str, Any]:
        """Remove a subscription and its deliveries (pending ones are not sent)."""
        found = self.webhook(webhook_id, by)
        with self.db.begin() as conn:
            conn.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
        return found

    def deliveries(
        self, webhook_ids: list[str], *, failed: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest deliveries of these subscriptions, newest first (failed only, or
        ones still being retried after a failure too, with `failed`)."""
        if not webhook_ids:
            return []
        query = (
            select(*_DELIVERY_COLUMNS)
            .where(webhook_deliveries.c.webhook_id.in_(webhook_ids))
            .order_by(webhook_deliveries.c.event_id.desc(), webhook_deliveries.c.webhook_id)
            .limit(limit)
        )
        if failed:
            query = query.where(
                or_(
                    webhook_deliveries.c.state == "failed",
                    and_(
                        webhook_deliveries.c.state == "pending",
                        webhook_deliveries.c.attempts > 0,
                    ),
                )
            )
        with self.db.connect() as conn:
            return [_delivery_json(r) for r in conn.execute(query)]

    # the dispatcher -----------------------------------------------------------------------
    def live_webhooks(self) -> list[dict[str, Any]]:
        """Every subscription of a live user, with the secret and the owner's role now."""
        query = (
            select(webhooks, users.c.role.label("owner_role"))
            .join(users, users.c.name == webhooks.c.owner)
            .where(users.c.disabled_at.is_(None))
        )
        with self.db.connect() as conn:
            return [
                {**_webhook_json(r), "secret": r.secret, "after_event": r.after_event,
                 "owner_role": r.owner_role}
                for r in conn.execute(query)
            ]  # fmt: skip

    def webhook_cursor(self) -> int:
        """The id up to which every event has been turned into deliveries. A new database
        (or one from before webhooks) starts at the newest event: history is not sent."""
        with self.db.begin() as conn:
            value = conn.execute(select(cursors.c.value).where(cursors.c.name == CURSOR)).scalar()
            if value is not None:
                return int(value)
            newest = conn.execute(select(func.max(events.c.id))).scalar() or 0
            conn.execute(
                insert_ignoring_duplicates(self.db, cursors), [{"name": CURSOR, "value": newest}]
            )
            value = conn.execute(select(cursors.c.value).where(cursors.c.name == CURSOR)).scalar()
        return int(value or 0)

    def advance_webhook_cursor(self, value: int, name: str = CURSOR) -> None:
        """Move the cursor forward (never back: another server may be further on)."""
        with self.db.begin() as conn:
            conn.execute(
                update(cursors)
                .where(and_(cursors.c.name == name, cursors.c.value < value))
                .values(value=value)
            )

    # on PostgreSQL: events in commit order (store/commit_order.py) -------------------------
    def events_commit_ordered(self) -> bool:
        """Whether the dispatcher reads events by transaction (PostgreSQL), not by id."""
        return commit_order.commit_ordered(self.db)

    def webhook_xact_cursor(self) -> int:
        """The transaction horizon below which every event has been turned into
        deliveries; a database without one starts at the horizon now (history is not
        sent, as with the id cursor)."""
        with self.db.begin() as conn:
            return self._xact_cursor_in(conn)

    def _xact_cursor_in(self, conn: Connection) -> int:
        def read() -> Any:
            return conn.execute(
                select(cursors.c.value).where(cursors.c.name == XACT_CURSOR)
            ).scalar()

        value = read()
        if value is not None:
            return int(value)
        conn.execute(
            insert_ignoring_duplicates(self.db, cursors),
            [{"name": XACT_CURSOR, "value": commit_order.horizon(conn)}],
        )
        value = int(read() or 0)
        # A database from before commit order: its events have no transaction id. Those
        # the id cursor had not reached yet are put at the start, to be read.
        by_id = conn.execute(select(cursors.c.value).where(cursors.c.name == CURSOR)).scalar()
        if by_id is not None:
            conn.execute(
                update(events)
                .where(and_(events.c.xact.is_(None), events.c.id > by_id))
                .values(xact=value)
            )
        return value

    def event_horizon(self) -> int:
        """The oldest transaction still in flight: events below it are all visible."""
        with self.db.connect() as conn:
            return commit_order.horizon(conn)

    def events_by_xact(
        self,
        after: commit_order.Position,
        before: int,
        limit: int = 500,
        *,
        task_id: str | None = None,
        above: int = 0,
    ) -> list[dict[str, Any]]:
        """Events written by ended transactions (`xact` below `before`), after (xact, id)
        `after`, in that order, with the task's name and owner: every task's, or only
        `task_id`'s with ids above `above` (an A2A push config follows one task)."""
        query = (
            select(events, tasks.c.name.label("task_name"), tasks.c.owner.label("task_owner"))
            .join(tasks, tasks.c.id == events.c.task_id)
            .where(commit_order.after(after, before))
            .order_by(*commit_order.ORDER)
            .limit(limit)
        )
        if task_id is not None:
            query = query.where(events.c.task_id == task_id)
        if above:
            query = query.where(events.c.id > above)
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def pending_counts(self) -> dict[str, int]:
        """Deliveries waiting to be sent, by subscription."""
        query = (
            select(webhook_deliveries.c.webhook_id, func.count())
            .where(webhook_deliveries.c.state == "pending")
            .group_by(webhook_deliveries.c.webhook_id)
        )
        with self.db.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(query)}

    def add_deliveries(self, rows: list[dict[str, Any]]) -> None:
        """Store new deliveries; one another server stored first is left as it is."""
        if not rows:
            return
        now = utcnow()
        full = [
            {"attempts": 0, "next_attempt_at": 0.0, "created_at": now, "updated_at": now, **r}
            for r in rows
        ]
        with self.db.begin() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, webhook_deliveries), full)

    def due_deliveries(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """The oldest pending delivery of each subscription, if due and not leased, with
        its subscription's URL, secret and owner's role. Only the oldest: a subscription's
        events go out in order, so a later one waits while an earlier one is retried."""
        query = (
            oldest_due(
                now,
                webhooks.c.url,
                webhooks.c.secret,
                webhooks.c.owner,
                users.c.role.label("owner_role"),
                users.c.disabled_at.label("owner_removed_at"),
            )
            .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            .join(users, users.c.name == webhooks.c.owner)
            .limit(limit)
        )
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def claim_delivery(self, delivery_id: str, owner: str, now: float, lease_s: float) -> bool:
        """Take a pending delivery for sending; False if another server holds it."""
        d = webhook_deliveries
        with self.db.begin() as conn:
            result = conn.execute(
                update(d)
                .where(
                    and_(
                        d.c.id == delivery_id,
                        d.c.state == "pending",
                        unleased(now),
                    )
                )
                .values(lease_owner=owner, lease_until=now + lease_s)
            )
            return result.rowcount == 1

    def finish_attempt(self, delivery_id: str, owner: str, **values: Any) -> bool:
        """Record an attempt's result and let the lease go; False if the lease was lost."""
        d = webhook_deliveries
        with self.db.begin() as conn:
            result = conn.execute(
                update(d)
                .where(and_(d.c.id == delivery_id, d.c.lease_owner == owner))
                .values(lease_owner=None, lease_until=None, updated_at=utcnow(), **values)
            )
            return result.rowcount == 1

    def prune_deliveries(self, before: str) -> int:
        """Forget finished deliveries last changed before `before` (an ISO time)."""
        d = webhook_deliveries
        with self.db.begin() as conn:
            result = conn.execute(
                delete(d).where(and_(d.c.state != "pending", d.c.updated_at < before))
            )
            return int(result.rowcount or 0)
