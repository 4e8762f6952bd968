"""/api/v2 routes of webhook subscriptions and their deliveries.

A subscription belongs to its creator: members see, remove and get events of their own
tasks only (another user's subscription answers 404); admins may subscribe to every
task (`all`) and see everyone's subscriptions (`?all=true`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal
from provisioner.errors import Forbidden, ParameterError
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.server.tasks_api import find_task
from provisioner.server.webhook_dispatch import Resolver, checked_addresses, resolve
from provisioner.store.store import Store
from provisioner.webhooks import (
    EVENT_NAMES,
    MAX_URL,
    Settings,
    check_secret,
    check_url,
    new_secret,
    parse_events,
)


class CreateWebhook(BaseModel):
    """Body of POST /api/v2/webhooks."""

    url: str = Field(
        description=f"http(s) URL of the receiver, at most {MAX_URL} characters, without "
        "credentials; it must resolve to public addresses"
    )
    events: list[str] = Field(
        description="Event names: " + ", ".join(EVENT_NAMES), max_length=len(EVENT_NAMES)
    )
    secret: str | None = Field(
        None, description="Signing secret (16-256 printable characters); made if absent"
    )
    task: str | None = Field(None, description="Only this task's events (a name or id)")
    all: bool = Field(False, description="Every user's tasks (admins only)")


def build_webhooks_router(
    store: Store, settings: Settings, resolver: Resolver = resolve
) -> APIRouter:
    """Routes of webhooks, bound to one store and the server's webhook settings."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.post("/webhooks", status_code=201)
    def create_webhook(body: CreateWebhook, who: Principal = Depends(caller)) -> dict[str, Any]:
        names = parse_events(body.events)
        target = check_url(body.url)
        if body.all and body.task is not None:
            raise ParameterError("Give either a task or all, not both")
        if body.all and not who.is_admin:
            raise Forbidden(
                "Only an admin may subscribe to every user's tasks",
                hint="leave out --all to get your own tasks' events",
            )
        task_id = find_task(store, who, body.task).id if body.task is not None else None
        checked_addresses(target, settings.allow_private, who.is_admin, resolver)
        made = body.secret is None
        secret = new_secret() if made else check_secret(body.secret or "")
        hook = store.create_webhook(
            who.user, body.url, names, secret, task_id=task_id, all_tasks=body.all
        )
        # a secret the server made is shown this once; one the caller gave, never
        return {**hook, "secret": secret} if made else hook

    @r.get("/webhooks")
    def list_webhooks(
        all: bool = Query(False, description="Every user's webhooks (admins only)"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        if all and not who.is_admin:
            raise Forbidden("Only an admin may list every user's webhooks")
        return {"webhooks": store.webhooks_of(None if all else who.user)}

    # declared before /webhooks/{webhook_id}, which would take "deliveries" as an id
    @r.get("/webhooks/deliveries")
    def all_deliveries(
        failed: bool = Query(False, description="Only failed ones (or failing, still retried)"),
        limit: int = Query(100, ge=1, le=1000),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        # the A2A push notifications of the caller's tasks too (webhook_id "a2a-...")
        ids = [h["id"] for h in store.webhooks_of(who.user)] + store.push_hooks_of(who.user)
        return {"deliveries": store.deliveries(ids, failed=failed, limit=limit)}

    @r.get("/webhooks/{webhook_id}")
    def get_webhook(webhook_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return store.webhook(webhook_id, who)

    @r.delete("/webhooks/{webhook_id}")
    def remove_webhook(webhook_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        hook = store.remove_webhook(webhook_id, who)
        if hook["owner"] != who.user:
            store.record_audit(who.actor, "webhook.remove", f"{hook['owner']}/{webhook_id}")
        return hook

    @r.get("/webhooks/{webhook_id}/deliveries")
    def deliveries(
        webhook_id: str,
        failed: bool = Query(False, description="Only failed ones (or failing, still retried)"),
        limit: int = Query(100, ge=1, le=1000),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        hook = store.webhook(webhook_id, who)
        return {"deliveries": store.deliveries([hook["id"]], failed=failed, limit=limit)}

    return r
