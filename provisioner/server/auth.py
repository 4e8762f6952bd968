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
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from provisioner.auth.tokens import Principal
from provisioner.errors import Forbidden, Unauthenticated
from provisioner.server.guard import (
    ASGIApp,
    Receive,
    Refusal,
    Scope,
    Send,
    header,
    send_coder_refusal,
    send_refusal,
)
from provisioner.server.prefixes import DOCKYARD, LEGACY, claimed_by, is_coder_path
from provisioner.store.store import Store

CODER_HEADER = b"coder-session-token"
CODER_COOKIE = "coder_session_token"  # also the query parameter's name
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


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie of the request, or None."""
    raw = header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value.strip():
            return value.strip()
    return None


def query_value(scope: Scope, name: str) -> str | None:
    """One query parameter of the request, or None."""
    for key, value in parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")):
        if key == name and value.strip():
            return value.strip()
    return None


def request_token(scope: Scope) -> str | None:
    """The API token of a request: `Authorization: Bearer` everywhere; under Coder's
    prefixes also as Coder's clients send it (the `Coder-Session-Token` header, the
    `coder_session_token` cookie or query parameter). All are Dockyard tokens."""
    token = bearer(header(scope, b"authorization"))
    if token is not None or not is_coder_path(scope["path"]):
        return token
    for found in (
        header(scope, CODER_HEADER),
        cookie(scope, CODER_COOKIE),
        query_value(scope, CODER_COOKIE),
    ):
        if found and found.strip():
            return found.strip()
    return None


class Authenticator:
    """ASGI middleware: a valid API token or a 401, for every HTTP request. A refusal on
    one of Coder's routes (`coder` claims it) is written in Coder's error shape."""

    def __init__(self, app: ASGIApp, store: Store, coder: FastAPI | None = None) -> None:
        self.app = app
        self.store = store
        self.coder = coder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if signed_route(scope["method"], scope["path"]):
            await self.app(scope, receive, send)  # no principal: the route checks the HMAC
            return
        token = request_token(scope)
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
            refusal = Refusal(401, exc.message, exc.hint or HINT)
            if self.coder is not None and claimed_by(self.coder, scope):
                await send_coder_refusal(send, refusal, [CHALLENGE])
            else:
                await send_refusal(send, refusal, [CHALLENGE])
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
