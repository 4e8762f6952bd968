"""What the A2A endpoint keeps beside a task: its context id and push notification
configs. The task itself is the one Dockyard task (tables `tasks`, `logs`, `prompts`)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from provisioner.model import utcnow
from provisioner.store import commit_order
from provisioner.store.schema import (
    a2a_contexts,
    a2a_push_configs,
    events,
    tasks,
    users,
    webhook_deliveries,
)
from provisioner.store.webhooks import oldest_due

# a task holds at most this many push configs: each would be one POST per event
MAX_PUSH_CONFIGS = 10


class A2AMixin:
    """Context ids and push configs of A2A tasks (mixed into the Store)."""

    db: Engine

    def set_a2a_context(self, task_id: str, context_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(insert(a2a_contexts).values(task_id=task_id, context_id=context_id))

    def a2a_contexts(self, task_ids: list[str]) -> dict[str, str]:
        """task id -> its context id, for those that have one."""
        if not task_ids:
            return {}
        query = select(a2a_contexts).where(a2a_contexts.c.task_id.in_(task_ids))
        with self.db.connect() as conn:
            return {r.task_id: r.context_id for r in conn.execute(query)}

    def tasks_in_a2a_context(self, context_id: str) -> list[str]:
        query = select(a2a_contexts.c.task_id).where(a2a_contexts.c.context_id == context_id)
        with self.db.connect() as conn:
            return [r.task_id for r in conn.execute(query)]

    def put_push_config(
        self, task_id: str, config_id: str, config: dict[str, Any], *, from_start: bool = False
    ) -> bool:
        """Store (or replace) one config; False when the task already has the most. A new
        config is pushed the task's changes from now on, or from its first event with
        `from_start` (one given with the message that creates the task)."""
        where = and_(a2a_push_configs.c.task_id == task_id)
        with self.db.begin() as conn:
            # Lock the task's row first (PostgreSQL; a delete takes it before the configs'):
            # every change of the task updates it, and every event of the task (its
            # foreign key) holds a share of it until it commits, so while the config's
            # start is read no event of the task is in flight.
            conn.execute(select(tasks.c.id).where(tasks.c.id == task_id).with_for_update())
            replaced = conn.execute(
                update(a2a_push_configs)
                .where(where, a2a_push_configs.c.config_id == config_id)
                .values(config=config)
            ).rowcount
            if replaced:
                return True
            count = conn.execute(select(func.count()).where(where)).scalar_one()
            if count >= MAX_PUSH_CONFIGS:
                return False
            conn.execute(
                insert(a2a_push_configs).values(
                    task_id=task_id,
                    config_id=config_id,
                    config=config,
                    created_at=utcnow(),
                    hook_id="a2a-" + secrets.token_hex(6),
                    seen=self._push_start(conn, task_id, from_start),
                )
            )
        return True

    def push_configs(self, task_id: str) -> list[dict[str, Any]]:
        query = (
            select(a2a_push_configs.c.config)
            .where(a2a_push_configs.c.task_id == task_id)
            .order_by(a2a_push_configs.c.created_at, a2a_push_configs.c.config_id)
        )
        with self.db.connect() as conn:
            return [dict(r.config) for r in conn.execute(query)]

    def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """Remove a config; its deliveries not sent yet are dropped with it."""
        with self.db.begin() as conn:
            hook = select(a2a_push_configs.c.hook_id).where(
                a2a_push_configs.c.task_id == task_id, a2a_push_configs.c.config_id == config_id
            )
            conn.execute(
                delete(webhook_deliveries).where(
                    webhook_deliveries.c.webhook_id.in_(hook.scalar_subquery()),
                    webhook_deliveries.c.state == "pending",
                )
            )
            gone = conn.execute(
                delete(a2a_push_configs).where(
                    a2a_push_configs.c.task_id == task_id,
                    a2a_push_configs.c.config_id == config_id,
                )
            ).rowcount
        return bool(gone)

    # delivery (provisioner.server.webhook_dispatch) ----------------------------------------
    def push_followers(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """The push configs of these tasks that follow them: hook id, task, config, seen."""
        if not task_ids:
            return []
        c = a2a_push_configs.c
        query = (
            select(c.hook_id, c.task_id, c.config, c.seen)
            .where(c.task_id.in_(task_ids), c.hook_id.is_not(None))
            .order_by(c.created_at, c.config_id)
        )
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def save_push_seen(self, seen: dict[str, dict[str, Any]]) -> None:
        """Move configs' `seen` forward (hook id -> Seen as JSON); never back, as another
        server may have followed further. A place in commit order (with `xact`) is ahead
        of one by id only: that is a config placed in commit order for the first time."""
        c = a2a_push_configs.c
        with self.db.begin() as conn:
            for hook_id, value in seen.items():
                row = conn.execute(select(c.seen).where(c.hook_id == hook_id)).first()
                if row is None or not _ahead(value, row.seen or {}):
                    continue
                conn.execute(
                    update(a2a_push_configs).where(c.hook_id == hook_id).values(seen=value)
                )

    def _push_start(self, conn: Any, task_id: str, from_start: bool) -> dict[str, Any]:
        ordered = commit_order.commit_ordered(self.db)
        if from_start:
            return {**_START, "xact": 0 if ordered else None, "floor": 0}
        return _seen_now(conn, task_id, ordered)

    def due_push_deliveries(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """As due_deliveries, for push configs: the oldest pending delivery of each, if
        due and not leased, with the config (URL, token, authentication) and the task
        owner's role now (an owner who lost admin loses private receivers too)."""
        p = a2a_push_configs
        query = (
            oldest_due(
                now,
                p.c.config.label("push_config"),
                tasks.c.owner,
                users.c.role.label("owner_role"),
                users.c.disabled_at.label("owner_removed_at"),
                hooks=webhook_deliveries.c.webhook_id.like("a2a-%"),
            )
            .join(p, p.c.hook_id == webhook_deliveries.c.webhook_id)
            .join(tasks, tasks.c.id == p.c.task_id)
            .join(users, users.c.name == tasks.c.owner)
            .limit(limit)
        )
        with self.db.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["url"] = row["push_config"].get("url", "")
        return rows

    def prune_orphan_pushes(self) -> int:
        """Forget the deliveries of push configs that are gone with their task (a deleted
        task takes its configs along, not their deliveries, which would wait for ever)."""
        d = webhook_deliveries
        with self.db.begin() as conn:
            result = conn.execute(
                delete(d).where(
                    d.c.webhook_id.like("a2a-%"),
                    d.c.webhook_id.not_in(
                        select(a2a_push_configs.c.hook_id).where(
                            a2a_push_configs.c.hook_id.is_not(None)
                        )
                    ),
                )
            )
            return int(result.rowcount or 0)

    def push_hooks_of(self, owner: str) -> list[str]:
        """The hook ids of the push configs on `owner`'s tasks (their deliveries are
        listed with the owner's webhooks' ones)."""
        query = (
            select(a2a_push_configs.c.hook_id)
            .join(tasks, tasks.c.id == a2a_push_configs.c.task_id)
            .where(tasks.c.owner == owner, a2a_push_configs.c.hook_id.is_not(None))
        )
        with self.db.connect() as conn:
            return [r.hook_id for r in conn.execute(query)]


_START = {"event": 0, "status": None, "state": None, "a2a": None}


def _ahead(new: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether the place `new` is after `stored` (both Seen as JSON)."""
    if new.get("xact") is None or stored.get("xact") is None:
        return new.get("xact") is not None or int(new["event"]) > int(stored.get("event") or 0)
    return (int(new["xact"]), int(new["event"])) > (int(stored["xact"]), int(stored["event"]))


def _seen_now(conn: Any, task_id: str, ordered: bool) -> dict[str, Any]:
    """Where a new config starts following its task: after the task's last event, with
    the task's status and state now (the task's row is locked: nothing falls between).
    On PostgreSQL the config then follows the events after that one's id in commit
    order, from the start of that order: the ids before it are all committed, but a
    later id may have committed first."""
    mine = events.c.task_id == task_id
    newest = int(conn.execute(select(func.max(events.c.id)).where(mine)).scalar() or 0)
    row = conn.execute(select(tasks.c.status, tasks.c.state).where(tasks.c.id == task_id)).first()
    return {
        "event": newest,
        "status": row.status if row else None,
        "state": row.state if row else None,
        "a2a": None,
        "xact": 0 if ordered else None,
        "floor": newest if ordered else 0,
    }
