"""/api/v2 routes of schedules (cron): create, list (with next runs), show (with the
latest fire times), pause, resume, delete and run now.

A schedule belongs to its creator, and its tasks too: members see and change their own
only (another's answers 404); admins see everyone's (`?all=true`). The firing is the
engine's (engine/scheduler.py); these routes only change what it reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import ParameterError
from provisioner.prompts import check_prompt
from provisioner.scheduling import (
    CATCH_UP,
    CONCURRENCY,
    Rule,
    check_choice,
    check_cron,
    check_timezone,
    iso,
)
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.server.recipes import (
    CreateRecipe,
    check_fields,
    check_listing,
    check_recipe,
    deleted,
    store_recipe,
)

NEXT_RUNS = 3


class CreateSchedule(CreateRecipe):
    """Body of POST /api/v2/schedules."""

    cron: str = Field(
        max_length=120,
        description='5 fields ("0 9 * * 1-5"), or 6 with seconds last ("* * * * * */30")',
    )
    timezone: str = Field("UTC", max_length=64, description="IANA name, e.g. Europe/Berlin")
    prompt: str = Field(description="Each run's prompt")
    catch_up: Literal["once", "skip"] = Field(
        "once", description="Fire times missed while no server ran: run once, or skip"
    )
    concurrency: Literal["allow", "skip", "queue"] = Field(
        "skip", description="A fire time while the last run still works: allow, skip, queue"
    )


def next_runs(schedule: dict[str, Any], now: datetime, count: int = NEXT_RUNS) -> list[str]:
    """The next fire times (none while paused)."""
    if schedule["paused"]:
        return []
    rule = Rule(schedule["cron"], schedule["timezone"], schedule["catch_up"])
    return [iso(t) for t in rule.times(now, None, count)]


def build_schedules_router(engine: Engine) -> APIRouter:
    """Schedule routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    def view(schedule: dict[str, Any]) -> dict[str, Any]:
        return {**schedule, "next_runs": next_runs(schedule, datetime.now(UTC))}

    @r.post("/schedules", status_code=201)
    def create_schedule(body: CreateSchedule, who: Principal = Depends(caller)) -> Any:
        check_fields(body, "schedule")
        cron = check_cron(body.cron)
        check_timezone(body.timezone)
        check_choice(body.catch_up, CATCH_UP, "catch_up")
        check_choice(body.concurrency, CONCURRENCY, "concurrency")
        prompt = check_prompt(body.prompt)
        if not prompt.strip():
            raise ParameterError("The prompt is empty", hint="give each run something to do")
        tpl = check_recipe(engine, body)
        fields = {
            "owner": who.user,
            "cron": cron,
            "timezone": body.timezone,
            "prompt": prompt,
            "catch_up": body.catch_up,
            "concurrency": body.concurrency,
            "created_by": who.actor,
        }
        return view(store_recipe(engine, "schedule", tpl, body, fields, store.create_schedule))

    @r.get("/schedules")
    def list_schedules(
        all: bool = Query(False, description="Every user's schedules (admins only)"),
        who: Principal = Depends(caller),
    ) -> Any:
        owner = check_listing(all, who, "schedules")
        return {"schedules": [view(s) for s in store.schedules_of(owner)]}

    @r.get("/schedules/{ref}")
    def get_schedule(ref: str, who: Principal = Depends(caller)) -> Any:
        found = store.schedule(ref, who)
        return {**view(found), "fires": store.fires(found["id"])}

    @r.post("/schedules/{ref}/pause")
    def pause_schedule(ref: str, who: Principal = Depends(caller)) -> Any:
        return view(store.pause_schedule(store.schedule(ref, who)["id"], True))

    @r.post("/schedules/{ref}/resume")
    def resume_schedule(ref: str, who: Principal = Depends(caller)) -> Any:
        return view(store.pause_schedule(store.schedule(ref, who)["id"], False))

    @r.delete("/schedules/{ref}")
    def delete_schedule(ref: str, who: Principal = Depends(caller)) -> Any:
        found = store.schedule(ref, who)
        store.delete_schedule(found["id"])
        deleted(engine, "schedule", found, who)
        return view(found)

    @r.post("/schedules/{ref}/run", status_code=201)
    def run_now(ref: str, who: Principal = Depends(caller)) -> Any:
        found = store.schedule(ref, who)
        return store.get(engine.scheduler.run_now(found, who.actor)).public()

    return r
