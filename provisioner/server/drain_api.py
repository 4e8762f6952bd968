"""/api/v2 routes of the server's graceful shutdown: drain and undrain (admins only).

A drain is stored (shared by every server on the database, kept across restarts) and
carried out by every engine's reconcile pass; these routes only change it and say where
it stands. `GET /api/v2/health` and `/capacity` show it to everyone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal
from provisioner.draining import DEFAULT_GRACE_S, Drain, summary
from provisioner.durations import parse_duration
from provisioner.engine.engine import Engine
from provisioner.lifecycle import Status
from provisioner.prompts import check_strings
from provisioner.server.auth import admin_only
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.store.store import Store


class DrainRequest(BaseModel):
    """Body of POST /api/v2/drain."""

    grace: str = Field(
        f"{DEFAULT_GRACE_S:g}s",
        max_length=16,
        description="How long working tasks may take to go idle before they are paused "
        "anyway (a duration: 30s, 5m, 1h; 0s pauses them at once)",
    )


def drain_json(store: Store, drain: Drain, *, show_who: bool = True) -> dict[str, Any]:
    """The drain state with how far it has got: counts only, and the admin who asked
    only for admins (health is for everyone)."""
    live = store.list_tasks([Status.ACTIVE, Status.INITIALIZING])
    found = summary(drain, live)
    if not show_who:
        found["by"] = None
    return found


def build_drain_router(engine: Engine) -> APIRouter:
    """Drain and undrain, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    @r.post("/drain")
    def drain(body: DrainRequest | None = None, who: Principal = Depends(admin_only)) -> Any:
        grace = (body or DrainRequest()).grace
        check_strings(grace, "grace")
        grace_s = parse_duration(grace, "grace")
        state = engine.draining.drain(actor=who.actor, grace_s=grace_s)
        store.record_audit(who.actor, "server.drain", "", f"grace {grace}")
        return drain_json(store, state)

    @r.post("/undrain")
    def undrain(who: Principal = Depends(admin_only)) -> Any:
        state, resumed = engine.draining.undrain(actor=who.actor)
        store.record_audit(who.actor, "server.undrain", "", f"{len(resumed)} resumed")
        return {
            **drain_json(store, state),
            "resumed": [{"id": t.id, "name": t.name, "owner": t.owner} for t in resumed],
        }

    return r
