"""What the A2A endpoint keeps beside a task: its context id and push notification
configs. The task itself is the one Dockyard task (tables `tasks`, `logs`, `prompts`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from provisioner.model import utcnow
from provisioner.store.schema import a2a_contexts, a2a_push_configs

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

    def put_push_config(self, task_id: str, config_id: str, config: dict[str, Any]) -> bool:
        """Store (or replace) one config; False when the task already has the most."""
        where = and_(a2a_push_configs.c.task_id == task_id)
        with self.db.begin() as conn:
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
                    task_id=task_id, config_id=config_id, config=config, created_at=utcnow()
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
        with self.db.begin() as conn:
            gone = conn.execute(
                delete(a2a_push_configs).where(
                    a2a_push_configs.c.task_id == task_id,
                    a2a_push_configs.c.config_id == config_id,
                )
            ).rowcount
        return bool(gone)
