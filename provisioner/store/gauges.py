"""Counts of the whole database for the metrics endpoint: read at scrape time, so every
server sharing the database reports the same numbers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, func, select

from provisioner.capacity import LIVE
from provisioner.lifecycle import Status
from provisioner.store.schema import tasks, webhook_deliveries


class GaugesMixin:
    """GROUP BY counts of tasks, the queue, workspaces and webhook deliveries."""

    db: Engine

    def gauge_counts(self) -> dict[str, list[tuple[Any, ...]]]:
        """`tasks`: (status, state, template, n); `queue`: (target, n) of pending tasks
        free to start; `workspaces`: (node or None, n) of tasks holding a workspace;
        `deliveries`: (state, n) of webhook deliveries."""
        live = [s.value for s in LIVE]
        with self.db.connect() as conn:
            by_status = conn.execute(
                select(tasks.c.status, tasks.c.state, tasks.c.template, func.count())
                .where(tasks.c.kind == "task")
                .group_by(tasks.c.status, tasks.c.state, tasks.c.template)
            ).all()
            queue = conn.execute(
                select(tasks.c.target, func.count())
                .where(
                    and_(
                        tasks.c.status == Status.PENDING.value,
                        tasks.c.blocked.is_(False),
                        tasks.c.kind == "task",
                    )
                )
                .group_by(tasks.c.target)
            ).all()
            # the node is what the backend wrote in the workspace (a Swarm node); one
            # GROUP BY on JSON differs by database, and live tasks are few: count here
            placed: dict[str | None, int] = {}
            for (workspace,) in conn.execute(
                select(tasks.c.workspace).where(tasks.c.status.in_(live))
            ):
                node = workspace.get("node") if isinstance(workspace, dict) else None
                key = str(node)[:64] if node else None
                placed[key] = placed.get(key, 0) + 1
            deliveries = conn.execute(
                select(webhook_deliveries.c.state, func.count()).group_by(
                    webhook_deliveries.c.state
                )
            ).all()
        return {
            "tasks": [tuple(r) for r in by_status],
            "queue": [tuple(r) for r in queue],
            "workspaces": sorted(placed.items(), key=lambda kv: str(kv[0])),
            "deliveries": [tuple(r) for r in deliveries],
        }
