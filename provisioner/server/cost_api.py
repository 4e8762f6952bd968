"""GET /api/v2/cost: what tasks cost, totalled and grouped (`dockyard cost`). Members see
their own tasks' cost only; admins everyone's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from provisioner.auth.tokens import Principal
from provisioner.retrying import stamp
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.spend import GROUPINGS, check_grouping, parse_since, totals
from provisioner.store.store import Store


def build_cost_router(store: Store) -> APIRouter:
    """The cost route, bound to one store."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.get("/cost")
    def cost(
        by: str | None = Query(None, max_length=16, description=f"One of {', '.join(GROUPINGS)}"),
        since: str | None = Query(
            None,
            max_length=40,
            description="Tasks created since: a span (7d, 12h, 30m, 2w) or a date (2026-11-01)",
        ),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        grouping = check_grouping(by)
        start = stamp(parse_since(since, datetime.now(UTC))) if since else None
        # a member's totals are of their own tasks: others' spending is theirs to see
        owner = None if who.is_admin else who.user
        result = totals(store.cost_rows(owner=owner, since=start), grouping)
        scope = "all" if owner is None else owner
        return {"by": grouping, "since": start, "scope": scope, **result}

    return r
