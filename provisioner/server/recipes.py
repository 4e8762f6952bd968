"""What schedules and triggers share: the recipe each of their tasks is made from (a
template and preset, or a target; parameter values), checked when one is created and
stored with its secret parameters kept as a task's are; and the owner-scoped list and
delete of both. schedules_api.py and triggers_api.py add what is their own."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.engine.secrets import recipe_key
from provisioner.errors import Forbidden, ParameterError
from provisioner.prompts import check_strings
from provisioner.queueing import check_label
from provisioner.scheduling import check_name
from provisioner.templating.catalog import Template
from provisioner.templating.params import split_secrets
from provisioner.templating.render import select_preset

MAX_PARAMETERS_BYTES = 16 * 1024


class CreateRecipe(BaseModel):
    """The part of POST /api/v2/schedules and /triggers bodies that says what each task
    is made from."""

    name: str = Field(max_length=40, description="1-40 lowercase letters, digits, dashes")
    template: str | None = Field(None, max_length=128)
    preset: str | None = Field(None, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)
    target: str | None = Field(None, max_length=64, description="A route of the server")


def check_fields(body: CreateRecipe, kind: str, exclude: frozenset[str] = frozenset()) -> None:
    """Every string of the body plain (no control characters), and its name a name."""
    for field, value in body.model_dump(exclude=set(exclude)).items():
        check_strings(value, field)
    check_name(body.name, kind)


def check_recipe(engine: Engine, body: CreateRecipe) -> Template | None:
    """What a schedule or trigger will make tasks from, checked now rather than at its
    first run: the template and preset exist (or a target names the route), the
    parameters are small and plain. The template (None: a target's, chosen per run)."""
    template, target, parameters = body.template, body.target, body.parameters
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
    select_preset(tpl, body.preset)
    return tpl


def store_recipe(
    engine: Engine,
    kind: str,
    template: Template | None,
    body: CreateRecipe,
    fields: dict[str, Any],
    create: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Store a new schedule or trigger: `create(row)` stores the row, which is `fields`
    and the recipe. Its secret parameters (the template's `secret: true` ones) are kept
    as a task's are: in the engine's secret store, masked in the database and every
    answer. They are saved first (the scheduler may fire the row at once and must find
    them) and removed again if the row cannot be stored."""
    recipe_id = secrets.token_hex(6)
    shown, kept = split_secrets(template, body.parameters)
    key = recipe_key(kind, recipe_id)
    if kept:
        engine.secrets.save(key, kept)
    recipe = {
        "template": body.template,
        "preset": body.preset,
        "parameters": shown,
        "target": body.target,
    }
    try:
        return create({"id": recipe_id, "name": body.name, **fields, **recipe})
    except BaseException:
        engine.secrets.delete(key)
        raise


def check_listing(all: bool, who: Principal, kinds: str) -> str | None:
    """Whose schedules or triggers a list shows: the caller's, or everyone's (None), which
    only an admin may ask for."""
    if all and not who.is_admin:
        raise Forbidden(f"Only an admin may list every user's {kinds}")
    return None if all else who.user


def deleted(engine: Engine, kind: str, found: dict[str, Any], who: Principal) -> None:
    """After a schedule or trigger is deleted: its secret parameters go too, and an admin
    deleting another user's is audited."""
    engine.secrets.delete(recipe_key(kind, found["id"]))
    if found["owner"] != who.user:
        engine.store.record_audit(who.actor, f"{kind}.delete", f"{found['owner']}/{found['name']}")
