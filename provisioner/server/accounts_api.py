"""/api/v2 routes of users, API tokens and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal, Role, expiry, parse_lifetime
from provisioner.errors import Forbidden
from provisioner.server.api import ERROR_RESPONSES, MAX_ROW_ID
from provisioner.server.auth import admin_only, caller
from provisioner.store.store import Store


class CreateUser(BaseModel):
    """Body of POST /api/v2/users."""

    name: str = Field(description="1-32 lowercase letters, digits, '-' or '_'")
    role: Role = Field(
        Role.MEMBER, description="admin, member, or metrics (reads GET /metrics only)"
    )


class CreateToken(BaseModel):
    """Body of POST /api/v2/tokens."""

    name: str = Field("cli", description="What the token is for, e.g. the machine using it")
    expires: str | None = Field(
        None, description="Lifetime such as 30d, 12h, 90m, 2w; never expires if absent"
    )
    user: str | None = Field(None, description="Whose token (admins only); the caller's if absent")


def build_accounts_router(store: Store) -> APIRouter:
    """Routes of users, tokens and audit, bound to one store."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.get("/me")
    def me(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"user": who.user, "role": who.role.value, "token_id": who.token_id}

    @r.get("/users")
    def list_users(who: Principal = Depends(admin_only)) -> dict[str, Any]:
        return {"users": store.users()}

    @r.post("/users", status_code=201)
    def create_user(body: CreateUser, who: Principal = Depends(admin_only)) -> dict[str, Any]:
        user = store.create_user(body.name, body.role)
        store.record_audit(who.actor, "user.create", body.name, f"role {body.role.value}")
        return user

    @r.delete("/users/{name}")
    def remove_user(name: str, who: Principal = Depends(admin_only)) -> dict[str, Any]:
        store.remove_user(name)
        store.record_audit(who.actor, "user.remove", name)
        return {"ok": True, "name": name}

    @r.get("/tokens")
    def list_tokens(
        all: bool = Query(False, description="Every user's tokens (admins only)"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        if all and not who.is_admin:
            raise Forbidden("Only an admin may list every user's tokens")
        return {"tokens": store.tokens_of(None if all else who.user)}

    @r.post("/tokens", status_code=201)
    def create_token(body: CreateToken, who: Principal = Depends(caller)) -> dict[str, Any]:
        user = body.user or who.user
        if user != who.user and not who.is_admin:
            raise Forbidden("Only an admin may make tokens for another user")
        lifetime = parse_lifetime(body.expires) if body.expires is not None else None
        token, record = store.create_token(user, body.name, expiry(lifetime))
        store.record_audit(who.actor, "token.create", f"{user}/{record['id']}", body.name)
        # the only time the token itself is shown: the store keeps its hash
        return {**record, "token": token}

    @r.delete("/tokens/{token_id}")
    def revoke_token(token_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        record = store.revoke_token(token_id, who)
        store.record_audit(who.actor, "token.revoke", f"{record['user']}/{token_id}")
        return record

    @r.get("/audit")
    def audit(
        after: int = Query(0, ge=0, le=MAX_ROW_ID),
        limit: int = Query(1000, ge=1, le=10000),
        who: Principal = Depends(admin_only),
    ) -> dict[str, Any]:
        return {"entries": store.audit_entries(after, limit)}

    return r
