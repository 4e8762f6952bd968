"""Inbound webhooks (triggers) and their deliveries: the store's part.

A verified delivery's id is stored in a unique (trigger, delivery id): a replay of it
inserts nothing, whichever server sharing the database it reaches.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from provisioner.auth.tokens import Principal
from provisioner.errors import ParameterError, TaskConflict, TaskNotFound
from provisioner.model import utcnow
from provisioner.store.schema import trigger_deliveries, triggers

MAX_TRIGGERS_PER_USER = 50
_HINT = "list your triggers: dockyard trigger list"


def _json(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data.pop("secret", None)  # never shown: the caller gave it, or it was shown once
    return data


class TriggersMixin:
    """Triggers and their deliveries; mixed into the Store."""

    db: Engine

    def create_trigger(self, values: dict[str, Any]) -> dict[str, Any]:
        """Store a new trigger; 409 if the name is taken (trigger names are one namespace:
        they are the URL)."""
        row = {"id": secrets.token_hex(6), "created_at": utcnow(), **values}
        with self.db.begin() as conn:
            have = conn.execute(
                select(func.count()).select_from(triggers).where(triggers.c.owner == row["owner"])
            ).scalar()
            if (have or 0) >= MAX_TRIGGERS_PER_USER:
                raise ParameterError(
                    f"{row['owner']} has {have} triggers, the most a user may have",
                    hint="delete one first: dockyard trigger delete NAME",
                )
            try:
                conn.execute(insert(triggers).values(**row))
            except IntegrityError:
                raise TaskConflict(
                    f"The trigger name {row['name']!r} is taken",
                    hint="trigger names are the URL, shared by every user: pick another",
                ) from None
        return self.trigger(row["name"], None)

    def trigger_row(self, name: str) -> dict[str, Any] | None:
        """A trigger with its secret (for checking a delivery), or None."""
        with self.db.connect() as conn:
            row = conn.execute(select(triggers).where(triggers.c.name == name)).first()
        return dict(row._mapping) if row is not None else None

    def trigger(self, ref: str, by: Principal | None) -> dict[str, Any]:
        """The trigger `ref` (name or id) names, as `by` may see it (a member: their own;
        another's is absent). `by` None: any (the server's own use)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(triggers).where(or_(triggers.c.name == ref, triggers.c.id == ref))
            ).first()
        if row is None or (by is not None and row.owner != by.user and not by.is_admin):
            raise TaskNotFound(f"No trigger {ref[:40]!r}", hint=_HINT)
        return _json(row)

    def triggers_of(self, owner: str | None) -> list[dict[str, Any]]:
        query = select(triggers).order_by(triggers.c.name)
        if owner is not None:
            query = query.where(triggers.c.owner == owner)
        with self.db.connect() as conn:
            return [_json(r) for r in conn.execute(query)]

    def delete_trigger(self, trigger_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                delete(trigger_deliveries).where(trigger_deliveries.c.trigger_id == trigger_id)
            )
            conn.execute(delete(triggers).where(triggers.c.id == trigger_id))

    def record_trigger_delivery(self, trigger_id: str, **values: Any) -> int | None:
        """Record a delivery; its row id, or None when its delivery id was recorded
        before (a replay)."""
        row = {"trigger_id": trigger_id, "time": utcnow(), **values}
        try:
            with self.db.begin() as conn:
                made = conn.execute(insert(trigger_deliveries).values(**row))
        except IntegrityError:
            return None
        key = made.inserted_primary_key
        return int(key[0]) if key else None

    def settle_trigger_delivery(
        self,
        row_id: int,
        outcome: str,
        reason: str = "",
        task_id: str | None = None,
        *,
        free_id: bool = False,
    ) -> None:
        """What became of a delivery. `free_id`: it made nothing (the server could not
        create the task), so the sender's redelivery of that id is not a replay."""
        values: dict[str, Any] = {"outcome": outcome, "reason": reason[:2000], "task_id": task_id}
        if free_id:
            values["delivery_id"] = None
        with self.db.begin() as conn:
            conn.execute(
                update(trigger_deliveries).where(trigger_deliveries.c.id == row_id).values(**values)
            )

    def trigger_deliveries(self, trigger_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A trigger's newest deliveries, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(trigger_deliveries)
                .where(trigger_deliveries.c.trigger_id == trigger_id)
                .order_by(trigger_deliveries.c.id.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]
