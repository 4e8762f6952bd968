"""/api/v2 routes of schedules (cron): create, list (with next runs), show (with the
latest fire times), pause, resume, delete and run now.

A schedule belongs to its creator, and its tasks too: members see and change their own
only (another's answers 404); admins see everyone's (`?all=true`). The firing is the
engine's (engine/scheduler.py); these routes only change what it reads.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.engine.secrets import recipe_key
from provisioner.errors import Forbidden, ParameterError
from provisioner.prompts import check_prompt, check_strings
from provisioner.queueing import check_label
from provisioner.scheduling import (
    CATCH_UP,
    CONCURRENCY,
    Rule,
    check_choice,
    check_cron,
    check_name,
    check_timezone,
    iso,
)
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.templating.catalog import Template
from provisioner.templating.params import split_secrets
from provisioner.templating.render import select_preset

MAX_PARAMETERS_BYTES = 16 * 1024
NEXT_RUNS = 3


class CreateSchedule(BaseModel):
    """Body of POST /api/v2/schedules."""

    name: str = Field(max_length=40, description="1-40 lowercase letters, digits, dashes")
    cron: str = Field(
        max_length=120,
        description='5 fields ("0 9 * * 1-5"), or 6 with seconds last ("* * * * * */30")',
    )
    timezone: str = Field("UTC", max_length=64, description="IANA name, e.g. Europe/Berlin")
    template: str | None = Field(None, max_length=128)
    preset: str | None = Field(None, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)
    target: str | None = Field(None, max_length=64, description="A route of the server")
    prompt: str = Field(description="Each run's prompt")
    catch_up: Literal["once", "skip"] = Field(
        "once", description="Fire times missed while no server ran: run once, or skip"
    )
    concurrency: Literal["allow", "skip", "queue"] = Field(
        "skip", description="A fire time while the last run still works: allow, skip, queue"
    )


def check_recipe(
    engine: Engine,
    template: str | None,
    preset: str | None,
    target: str | None,
    parameters: dict[str, Any],
) -> Template | None:
    """What a schedule or trigger will make tasks from, checked now rather than at its
    first run: the template and preset exist (or a target names the route), the
    parameters are small and plain. The template (None: a target's, chosen per run)."""
    check_strings(parameters, "parameters")
    if len(json.dumps(parameters)) > MAX_PARAMETERS_BYTES:
        raise ParameterError(f"The parameters are larger than {MAX_PARAMETERS_BYTES >> 10} KiB")
    check_label(target, "target")
    if target is not None and target not in engine.admissions.targets:
        raise ParameterError(
            f"No target {target[:64]!r}", hint="list targets with: dockyard target list"
        )
    if template is None:
        if target is None:
            raise ParameterError("Give a template (--template) or a target (--target)")
        return None
    tpl = engine.catalog.get(template)
    select_preset(tpl, preset)
    return tpl


def store_with_secrets(
    engine: Engine,
    kind: str,
    template: Template | None,
    parameters: dict[str, Any],
    create: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Store a new schedule or trigger whose secret parameters (the template's `secret:
    true` ones) are kept as a task's are: in the engine's secret store, masked in the
    database and every answer. `create(id, shown parameters)` stores the row; the
    secrets are saved first (the scheduler may fire the row at once and must find them)
    and removed again if the row cannot be stored."""
    recipe_id = secrets.token_hex(6)
    shown, kept = split_secrets(template, parameters)
    key = recipe_key(kind, recipe_id)
    if kept:
        engine.secrets.save(key, kept)
    try:
        return create(recipe_id, shown)
    except BaseException:
        engine.secrets.delete(key)
        raise


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
        for field, value in body.model_dump().items():
            check_strings(value, field)
        check_name(body.name, "schedule")
        cron = check_cron(body.cron)
        check_timezone(body.timezone)
        check_choice(body.catch_up, CATCH_UP, "catch_up")
        check_choice(body.concurrency, CONCURRENCY, "concurrency")
        prompt = check_prompt(body.prompt)
        if not prompt.strip():
            raise ParameterError("The prompt is empty", hint="give each run something to do")
        tpl = check_recipe(engine, body.template, body.preset, body.target, body.parameters)

        def create(schedule_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
            return store.create_schedule(
                {
                    "id": schedule_id,
                    "owner": who.user,
                    "name": body.name,
                    "cron": cron,
                    "timezone": body.timezone,
                    "template": body.template,
                    "preset": body.preset,
                    "parameters": parameters,
                    "target": body.target,
                    "prompt": prompt,
                    "catch_up": body.catch_up,
                    "concurrency": body.concurrency,
                    "created_by": who.actor,
                }
            )

        made = store_with_secrets(engine, "schedule", tpl, body.parameters, create)
        return view(made)

    @r.get("/schedules")
    def list_schedules(
        all: bool = Query(False, description="Every user's schedules (admins only)"),
        who: Principal = Depends(caller),
    ) -> Any:
        if all and not who.is_admin:
            raise Forbidden("Only an admin may list every user's schedules")
        return {"schedules": [view(s) for s in store.schedules_of(None if all else who.user)]}

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
        engine.secrets.delete(recipe_key("schedule", found["id"]))
        if found["owner"] != who.user:
            store.record_audit(who.actor, "schedule.delete", f"{found['owner']}/{found['name']}")
        return view(found)

    @r.post("/schedules/{ref}/run", status_code=201)
    def run_now(ref: str, who: Principal = Depends(caller)) -> Any:
        found = store.schedule(ref, who)
        return store.get(engine.scheduler.run_now(found, who.actor)).public()

    return r
