"""Authentication of every request, and the role each route asks for.

Every path, the OpenAPI document included, needs `Authorization: Bearer <token>` (but a
trigger's delivery, signed instead: SIGNED_ROUTE): the
ASGI middleware below checks it before routing, so no route can forget to, and a caller
without a valid token never gets its body read. Routes then ask for the caller
(`caller`) and, for admin acts, `admin_only`. Workspaces hold only their bridge token,
which is not an API token: a workspace cannot call this API.
"""

from __future__ import annotations

import re

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from provisioner.auth.tokens import Principal
from provisioner.errors import Forbidden, Unauthenticated
from provisioner.server.guard import ASGIApp, Receive, Refusal, Scope, Send, header, send_refusal
from provisioner.server.prefixes import DOCKYARD, LEGACY
from provisioner.store.store import Store

CHALLENGE = ("www-authenticate", 'Bearer realm="dockyard"')
HINT = (
    "send Authorization: Bearer <token>; the CLI does so after `dockyard login URL` "
    "or with DOCKYARD_TOKEN set (an admin makes tokens: dockyard token create)"
)


# The one route a caller reaches without a token: a trigger's delivery, whose HMAC
# signature is its credential (checked by the route, server/triggers_api.py). Only POST,
# only this exact shape: the trigger's other routes (GET, DELETE, deliveries) need one.
SIGNED_ROUTE = re.compile(
    rf"(?:{re.escape(DOCKYARD)}|{re.escape(LEGACY)})/triggers/[a-z0-9][a-z0-9-]{{0,39}}"
)


def signed_route(method: str, path: str) -> bool:
    """True for the request a trigger's signature authenticates instead of a token."""
    return method == "POST" and SIGNED_ROUTE.fullmatch(path) is not None


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class Authenticator:
    """ASGI middleware: a valid API token or a 401, for every HTTP request."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if signed_route(scope["method"], scope["path"]):
            await self.app(scope, receive, send)  # no principal: the route checks the HMAC
            return
        token = bearer(header(scope, b"authorization"))
        try:
            if token is None:
                raise Unauthenticated("This server needs an API token", hint=HINT)
            principal = await run_in_threadpool(self.store.authenticate, token)
        except Unauthenticated as exc:
            target = f"{scope['method']} {scope['path']}"
            await run_in_threadpool(
                self.store.record_audit,
                "anonymous",
                "auth.failed",
                target,
                exc.message,
                client_address(scope),
            )
            await send_refusal(send, Refusal(401, exc.message, exc.hint or HINT), [CHALLENGE])
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def caller(request: Request) -> Principal:
    """The authenticated caller of this request (the middleware put it there)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # only if the middleware was not installed
        raise Unauthenticated("This server needs an API token", hint=HINT)
    return principal


def admin_only(who: Principal = Depends(caller)) -> Principal:
    """The caller, who must be an admin."""
    if not who.is_admin:
        raise Forbidden("Only an admin may do this", hint="ask an admin of this server")
    return who
