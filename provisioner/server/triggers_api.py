"""/api/dockyard/v1 (and /api/v2) routes of triggers (inbound webhooks): manage them with
a token, and the one route a sender calls without one, `POST .../triggers/{name}`, whose
signature is its credential (the Authenticator lets exactly that method and path
through; see auth.py).

A delivery is checked in this order, each step recorded in the trigger's deliveries:
size (413), the source and trigger's recent bad deliveries (429, unchecked: see
provisioner/trigger_limits.py), signature (401, `rejected`; past a few a minute summed up
in one `limited` row per flood), JSON (400), its delivery id (seen before: `replayed`, 200,
nothing made), the filter (`filtered`, 200), the prompt (422 if it cannot render), then
the task (`accepted`, 201). The secret is never logged nor answered.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.engine.secrets import recipe_key
from provisioner.errors import DockyardError, ParameterError, TemplateError
from provisioner.model import QueueFields
from provisioner.server.auth import caller, client_address
from provisioner.server.http_errors import ERROR_RESPONSES, ErrorBody
from provisioner.server.prefixes import DOCKYARD
from provisioner.server.recipes import (
    CreateRecipe,
    check_fields,
    check_listing,
    check_recipe,
    deleted,
    store_recipe,
)
from provisioner.templating.params import with_secrets
from provisioner.trigger_limits import BadDeliveries
from provisioner.triggers import (
    FORMS,
    MAX_BODY,
    MAX_TEMPLATE,
    check_delivery,
    check_filter,
    check_prompt_template,
    context,
    passes,
    render_prompt,
)
from provisioner.webhooks import check_secret, new_secret

log = logging.getLogger(__name__)


class CreateTrigger(CreateRecipe):
    """Body of POST /api/v2/triggers."""

    secret: str | None = Field(
        None, description="Signing secret (16-256 printable characters); made if absent"
    )
    form: Literal["github-issue", "github-comment", "generic"] = Field(
        "generic", description="A ready-made prompt template and filter"
    )
    prompt_template: str | None = Field(
        None, max_length=MAX_TEMPLATE, description="Jinja over payload, event, delivery"
    )
    filter: str | None = Field(
        None, max_length=MAX_TEMPLATE, description="A Jinja expression; false: filtered"
    )


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(status_code=status, content=body)


def build_triggers_router(engine: Engine, limiter: BadDeliveries | None = None) -> APIRouter:
    """Trigger routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store
    bad = limiter or BadDeliveries()

    @r.post("/triggers", status_code=201)
    def create_trigger(body: CreateTrigger, who: Principal = Depends(caller)) -> Any:
        check_fields(body, "trigger", exclude=frozenset({"secret"}))
        form = FORMS[body.form]
        prompt_template = check_prompt_template(body.prompt_template or form.prompt_template)
        filter_text = check_filter(body.filter if body.filter is not None else form.filter)
        tpl = check_recipe(engine, body)
        # tried on the form's sample: a template that cannot render is refused now
        sample = context(form.sample, form.event, "sample", body.name)
        try:
            passes(filter_text, sample)
            if body.prompt_template is None:  # one's own may name fields samples lack
                render_prompt(prompt_template, sample)
        except TemplateError as exc:
            raise ParameterError(f"Tried on a sample {body.form} delivery: {exc.message}") from None
        made = body.secret is None
        secret = new_secret() if made else check_secret(body.secret or "")

        fields = {
            "owner": who.user,
            "secret": secret,
            "form": body.form,
            "prompt_template": prompt_template,
            "filter": filter_text,
            "created_by": who.actor,
        }
        trigger = store_recipe(engine, "trigger", tpl, body, fields, store.create_trigger)
        trigger["path"] = f"{DOCKYARD}/triggers/{body.name}"
        # a secret the server made is shown this once; one the caller gave, never
        return {**trigger, "secret": secret} if made else trigger

    @r.get("/triggers")
    def list_triggers(
        all: bool = Query(False, description="Every user's triggers (admins only)"),
        who: Principal = Depends(caller),
    ) -> Any:
        return {"triggers": store.triggers_of(check_listing(all, who, "triggers"))}

    @r.get("/triggers/{name}")
    def get_trigger(name: str, who: Principal = Depends(caller)) -> Any:
        return store.trigger(name, who)

    @r.delete("/triggers/{name}")
    def delete_trigger(name: str, who: Principal = Depends(caller)) -> Any:
        found = store.trigger(name, who)
        store.delete_trigger(found["id"])
        deleted(engine, "trigger", found, who)
        return found

    @r.get("/triggers/{name}/deliveries")
    def trigger_deliveries(
        name: str, limit: int = Query(100, ge=1, le=1000), who: Principal = Depends(caller)
    ) -> Any:
        found = store.trigger(name, who)
        return {"deliveries": store.trigger_deliveries(found["id"], limit)}

    @r.post(
        "/triggers/{name}",
        status_code=201,
        summary="Deliver an event (signed; no API token)",
        responses={
            200: {"description": "Replayed or filtered: nothing made"},
            401: {"model": ErrorBody, "description": "No signature, or a wrong one"},
            413: {"model": ErrorBody, "description": "Body larger than 1 MiB"},
            422: {"model": ErrorBody, "description": "The prompt could not be rendered"},
            429: {"model": ErrorBody, "description": "Too many bad signatures lately"},
            503: {"model": ErrorBody, "description": "The task could not be created now"},
        },
    )
    async def deliver(name: str, request: Request) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return _too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _too_large()
        headers = {k.lower(): v for k, v in request.headers.items()}
        remote = client_address(request.scope)
        return await run_in_threadpool(receive, name, headers, bytes(body), remote)

    def summarize(trigger_id: str, name: str, now: float) -> None:
        """Write the trigger's flood summary row, when one is due (one row per flood)."""
        flood = bad.due(name, now)
        if flood is None:
            return
        row_id = flood.row_id
        try:
            if row_id is None:
                row_id = store.record_trigger_delivery(
                    trigger_id, outcome="limited", reason=flood.summary(), remote="(many)"
                )
                log.warning("trigger %s: a flood of badly signed deliveries", name)
            else:
                store.settle_trigger_delivery(row_id, "limited", flood.summary())
        finally:
            bad.written(flood, row_id)

    def receive(name: str, headers: dict[str, str], body: bytes, remote: str) -> Any:
        now = time.monotonic()
        wait = bad.source_blocked(remote, now)
        if wait:
            return _limited(f"from {remote}", wait)
        trigger = store.trigger_row(name) if len(name) <= 40 else None
        if trigger is None:
            bad.unknown(remote, now)
            return _answer(404, {"detail": f"No trigger {name[:40]!r}", "hint": None})
        wait = bad.trigger_blocked(name, remote, now)
        if wait:
            summarize(trigger["id"], name, now)
            return _limited(f"to {name}", wait)
        checked = check_delivery(trigger["secret"], headers, body, time.time())
        record = store.record_trigger_delivery
        if checked.ok and store.user_removed(trigger["owner"]):
            reason = f"the trigger's owner {trigger['owner']} was removed"
            record(trigger["id"], outcome="rejected", reason=reason, remote=remote)
            return _answer(403, {"detail": f"Delivery refused: {reason}", "hint": None})
        if not checked.ok:
            if bad.failed(name, remote, checked.reason, now):
                record(trigger["id"], outcome="rejected", reason=checked.reason, remote=remote)
                log.info("trigger %s: delivery from %s rejected: %s", name, remote, checked.reason)
            else:
                summarize(trigger["id"], name, now)
            return _answer(401, {"detail": f"Delivery refused: {checked.reason}", "hint": None})
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            reason = "the body is not JSON (set the sender's content type to application/json)"
            record(trigger["id"], outcome="rejected", reason=reason, remote=remote)
            return _answer(400, {"detail": f"Delivery refused: {reason}", "hint": None})
        row_id = record(
            trigger["id"],
            delivery_id=checked.delivery_id,
            event=checked.event,
            outcome="received",
            remote=remote,
        )
        if row_id is None:
            reason = f"delivery {checked.delivery_id} was received before"
            record(trigger["id"], event=checked.event, outcome="replayed", reason=reason,
                   remote=remote)  # fmt: skip
            return _answer(200, {"outcome": "replayed", "detail": reason})
        ctx = context(payload, checked.event, checked.delivery_id, name)
        settle = store.settle_trigger_delivery
        try:
            if not passes(trigger["filter"], ctx):
                settle(row_id, "filtered", "the filter is false for this delivery")
                return _answer(200, {"outcome": "filtered"})
            prompt = render_prompt(trigger["prompt_template"], ctx)
        except TemplateError as exc:
            settle(row_id, "rejected", exc.message, free_id=True)
            return _answer(422, {"detail": f"Delivery refused: {exc.message}", "hint": None})
        actor = f"trigger:{name}"
        try:
            task = engine.create_task(
                template=trigger["template"],
                preset=trigger["preset"],
                prompt=prompt,
                parameters=with_secrets(
                    dict(trigger["parameters"] or {}),
                    engine.secrets.load(recipe_key("trigger", trigger["id"])),
                ),
                name=None,
                owner=trigger["owner"],
                actor=actor,
                queue=QueueFields(source="webhook", target=trigger["target"]),
            )
        except DockyardError as exc:
            # nothing was made: the sender's redelivery of this id may try again
            settle(row_id, "rejected", exc.message, free_id=True)
            raise
        what = f"delivery {checked.delivery_id or '(no id)'} of trigger {name}"
        store.record(task.id, "trigger", actor=actor, reason=f"{checked.event or 'event'}: {what}")
        settle(row_id, "accepted", "", task.id)
        return _answer(201, {"outcome": "accepted", "task": {"id": task.id, "name": task.name}})

    return r


def _limited(what: str, wait: float) -> JSONResponse:
    reply = _answer(
        429,
        {
            "detail": f"Too many deliveries with a bad signature {what} in the last minute",
            "hint": "check the secret the sender signs with; this eases within a minute",
        },
    )
    reply.headers["retry-after"] = str(max(1, int(wait + 0.999)))
    return reply


def _too_large() -> JSONResponse:
    return _answer(
        413, {"detail": f"The delivery is larger than {MAX_BODY >> 10} KiB", "hint": None}
    )
