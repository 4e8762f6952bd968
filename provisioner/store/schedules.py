"""Schedules and their fire times: the store's part of cron.

Servers sharing a database agree through the unique (schedule, fire time) of
`schedule_fires`: whichever inserts a fire time's row first makes its task; the others'
inserts do nothing. A row left `claimed` by a server that died before it finished is
taken over once its `until` passes (compare-and-set on the row), and the task's name,
derived from the fire time, tells the taker whether the task was made already.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from provisioner.auth.tokens import Principal
from provisioner.errors import ParameterError, TaskConflict, TaskNotFound
from provisioner.model import utcnow
from provisioner.store.records import insert_ignoring_duplicates
from provisioner.store.schema import schedule_fires, schedules, tasks, users

MAX_SCHEDULES_PER_USER = 100
_HINT = "list your schedules: dockyard schedule list"


def _json(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["paused"] = bool(data["paused"])
    return data


class SchedulesMixin:
    """Schedules and the fire times dealt with; mixed into the Store."""

    db: Engine

    def create_schedule(self, values: dict[str, Any]) -> dict[str, Any]:
        """Store a new schedule (values as the API checked them); 409 if its owner has one
        by that name."""
        now = utcnow()
        row = {
            "id": secrets.token_hex(6),
            "paused": False,
            "since": now,
            "considered": None,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        with self.db.begin() as conn:
            have = conn.execute(
                select(func.count()).select_from(schedules).where(schedules.c.owner == row["owner"])
            ).scalar()
            if (have or 0) >= MAX_SCHEDULES_PER_USER:
                raise ParameterError(
                    f"{row['owner']} has {have} schedules, the most a user may have",
                    hint="delete one first: dockyard schedule delete NAME",
                )
            try:
                conn.execute(insert(schedules).values(**row))
            except IntegrityError:
                raise TaskConflict(
                    f"A schedule named {row['name']!r} exists already",
                    hint="pick another name, or delete it first: dockyard schedule delete NAME",
                ) from None
        return self.schedule_by_id(row["id"])

    def schedule_by_id(self, schedule_id: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        if row is None:
            raise TaskNotFound(f"No schedule {schedule_id[:40]!r}", hint=_HINT)
        return _json(row)

    def schedule(self, ref: str, by: Principal) -> dict[str, Any]:
        """The schedule `ref` (a name or id) names, as `by` may see it: a member's own
        only (another's answers as absent, so its name does not leak); an admin's own
        first, then anyone's."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(schedules).where(or_(schedules.c.name == ref, schedules.c.id == ref))
            ).all()
        mine = [r for r in rows if r.owner == by.user]
        found = mine or (rows if by.is_admin else [])
        if not found:
            raise TaskNotFound(f"No schedule {ref[:40]!r}", hint=_HINT)
        return _json(found[0])

    def schedules_of(self, owner: str | None) -> list[dict[str, Any]]:
        """A user's schedules (everyone's with None), by name."""
        query = select(schedules).order_by(schedules.c.name, schedules.c.owner)
        if owner is not None:
            query = query.where(schedules.c.owner == owner)
        with self.db.connect() as conn:
            return [_json(r) for r in conn.execute(query)]

    def active_schedules(self) -> list[dict[str, Any]]:
        """Every schedule that is not paused (what the scheduler looks at each pass)."""
        with self.db.connect() as conn:
            rows = conn.execute(select(schedules).where(schedules.c.paused.is_(False)))
            return [_json(r) for r in rows]

    def pause_schedule(self, schedule_id: str, paused: bool) -> dict[str, Any]:
        """Pause or resume. A resume counts fire times from now: none is owed for the
        time it was paused."""
        now = utcnow()
        values: dict[str, Any] = {"paused": paused, "updated_at": now}
        if not paused:
            values["since"] = now
        with self.db.begin() as conn:
            conn.execute(
                update(schedules)
                .where(and_(schedules.c.id == schedule_id, schedules.c.paused.isnot(paused)))
                .values(**values)
            )
        return self.schedule_by_id(schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove a schedule and its fire history (its tasks stay)."""
        with self.db.begin() as conn:
            conn.execute(delete(schedule_fires).where(schedule_fires.c.schedule_id == schedule_id))
            conn.execute(delete(schedules).where(schedules.c.id == schedule_id))

    def schedule_considered(self, schedule_id: str, fire_at: str) -> None:
        """Record that fire times up to `fire_at` were dealt with (it only moves on)."""
        column = schedules.c.considered
        with self.db.begin() as conn:
            conn.execute(
                update(schedules)
                .where(
                    and_(
                        schedules.c.id == schedule_id,
                        or_(column.is_(None), column < fire_at),
                    )
                )
                .values(considered=fire_at)
            )

    # fire times --------------------------------------------------------------------------
    def claim_fire(
        self, schedule_id: str, fire_at: str, state: str, worker: str, lease_s: float, reason: str
    ) -> bool:
        """Insert the row of one fire time; True for the one server whose insert made it."""
        now = utcnow()
        row = {
            "schedule_id": schedule_id,
            "fire_at": fire_at,
            "state": state,
            "reason": reason,
            "claimed_by": worker,
            "until": time.time() + lease_s,
            "created_at": now,
            "updated_at": now,
        }
        with self.db.begin() as conn:
            # RETURNING, not rowcount: PostgreSQL's driver counts a row ON CONFLICT skipped
            made = conn.execute(
                insert_ignoring_duplicates(self.db, schedule_fires)
                .values(**row)
                .returning(schedule_fires.c.id)
            ).first()
        return made is not None

    def take_over_fire(self, fire_id: int, state: str, worker: str, lease_s: float) -> bool:
        """Take a fire time in `state` whose holder let its lease run out (it died while
        making the task, or a queued one waits); True for the one server that wins."""
        now = time.time()
        with self.db.begin() as conn:
            moved = conn.execute(
                update(schedule_fires)
                .where(
                    and_(
                        schedule_fires.c.id == fire_id,
                        schedule_fires.c.state == state,
                        or_(schedule_fires.c.until.is_(None), schedule_fires.c.until < now),
                    )
                )
                .values(claimed_by=worker, until=now + lease_s, updated_at=utcnow())
            )
        return bool(moved.rowcount)

    def stale_fires(self, state: str) -> list[dict[str, Any]]:
        """Fire times in `state` whose lease has run out, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(schedule_fires)
                .where(
                    and_(
                        schedule_fires.c.state == state,
                        or_(
                            schedule_fires.c.until.is_(None),
                            schedule_fires.c.until < time.time(),
                        ),
                    )
                )
                .order_by(schedule_fires.c.fire_at)
            )
            return [dict(r._mapping) for r in rows]

    def settle_fire(
        self,
        schedule_id: str,
        fire_at: str,
        state: str,
        reason: str = "",
        task_id: str | None = None,
    ) -> None:
        """A fire time's end: started (its task), skipped or failed (why), or queued."""
        with self.db.begin() as conn:
            conn.execute(
                update(schedule_fires)
                .where(
                    and_(
                        schedule_fires.c.schedule_id == schedule_id,
                        schedule_fires.c.fire_at == fire_at,
                    )
                )
                .values(state=state, reason=reason, task_id=task_id, until=None,
                        updated_at=utcnow())
            )  # fmt: skip

    def fires(self, schedule_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """A schedule's newest fire times, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(schedule_fires)
                .where(schedule_fires.c.schedule_id == schedule_id)
                .order_by(schedule_fires.c.fire_at.desc())
                .limit(limit)
            )
            return [
                {k: v for k, v in r._mapping.items() if k not in ("claimed_by", "until", "id")}
                for r in rows
            ]

    def queued_fire(self, schedule_id: str) -> dict[str, Any] | None:
        """The fire time of a schedule waiting for its earlier run (concurrency: queue)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(schedule_fires).where(
                    and_(
                        schedule_fires.c.schedule_id == schedule_id,
                        schedule_fires.c.state == "queued",
                    )
                )
            ).first()
        return dict(row._mapping) if row is not None else None

    def schedule_runs(self, schedule_id: str) -> list[dict[str, Any]]:
        """The tasks a schedule made that still exist: id, name, status and state."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(tasks.c.id, tasks.c.name, tasks.c.status, tasks.c.state)
                .where(tasks.c.schedule_id == schedule_id)
                .order_by(tasks.c.created_at)
            )
            return [dict(r._mapping) for r in rows]

    def user_removed(self, name: str) -> bool:
        """True once `name` was removed (`dockyard user remove`): its schedules and
        triggers make no more tasks."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(users.c.name).where(
                    and_(users.c.name == name, users.c.disabled_at.isnot(None))
                )
            ).first()
        return row is not None
