"""Authentication of every request, and the role each route asks for.

Every path, the OpenAPI document included, needs `Authorization: Bearer <token>` or the
dashboard's session cookie (see sessions.py; a state change with the cookie must carry
the CSRF header too), but a trigger's delivery, signed instead (SIGNED_ROUTE): the ASGI
middleware below checks it before routing, so no route can forget to, and a caller
without a valid credential never gets its body read. Only the sign-in page, its static
assets and the sign-in call are served without one. Routes then ask for the caller
(`caller`) and, for admin acts, `admin_only`. Workspaces hold only their bridge token,
which is not an API token: a workspace cannot call this API. A task's own token (held by
the server for the task's MCP relay, auth/scope.py) reaches a few routes only.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from provisioner.auth.scope import REFUSAL, REFUSAL_HINT, task_may_call
from provisioner.auth.tokens import Principal, Role
from provisioner.errors import Forbidden, Unauthenticated
from provisioner.previews import is_preview_path
from provisioner.server import sessions
from provisioner.server.guard import (
    ASGIApp,
    Receive,
    Refusal,
    Scope,
    Send,
    header,
    refuse_websocket,
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

HINT_METRICS = "use a member's or an admin's token for anything else"
SCRAPE = {("GET", "/metrics"), ("HEAD", "/metrics")}


COOKIE = sessions.SESSION_COOKIE
CSRF_REFUSED = "A request made with the dashboard's session must carry its CSRF token"
CSRF_HINT = "reload the dashboard; scripts use Authorization: Bearer <token> instead"


async def _redirect(send: Send, location: str) -> None:
    """A browser opening a page without a session goes to the sign-in page."""
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


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
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        path = scope["path"]
        # a WebSocket's scope has no method: its handshake is a GET, and it changes state
        # (a shell), so it counts as one that is not "safe" for the CSRF check below
        method = scope.get("method", "WEBSOCKET")
        if sessions.is_public(path):
            await self.app(scope, receive, send)
            return
        if signed_route(method, path):
            await self.app(scope, receive, send)  # no principal: the route checks the HMAC
            return
        if is_preview_path(path):
            # a preview grant is the credential here, checked by its route; no token or
            # session is looked at (a previewed app never acts as the dashboard's user)
            await self.app(scope, receive, send)
            return
        token = request_token(scope)
        # a token wins; the dashboard's session cookie is the browser's credential
        session = None if token else cookie(scope, COOKIE)
        try:
            if token is None and session is None:
                raise Unauthenticated("This server needs an API token", hint=HINT)
            principal = await run_in_threadpool(self.store.authenticate, token or session or "")
        except Unauthenticated as exc:
            target = f"{method} {path}"
            await run_in_threadpool(
                self.store.record_audit,
                "anonymous",
                "auth.failed",
                target,
                exc.message,
                client_address(scope),
            )
            if path in sessions.PAGE_PATHS and method in sessions.SAFE_METHODS:
                await _redirect(send, "/login")
                return
            refusal = Refusal(401, exc.message, exc.hint or HINT)
            if scope["type"] == "websocket":
                await refuse_websocket(scope, send, refusal, [CHALLENGE])
            elif self.coder is not None and claimed_by(self.coder, scope):
                await send_coder_refusal(send, refusal, [CHALLENGE])
            else:
                await send_refusal(send, refusal, [CHALLENGE])
            return
        if principal.task_id is not None and not task_may_call(method, path):
            await send_refusal(send, Refusal(403, REFUSAL, REFUSAL_HINT))
            return
        if principal.role == Role.METRICS and (method, path) not in SCRAPE:
            # a scraper's token leaks more easily than a person's: it reads metrics only
            await send_refusal(
                send, Refusal(403, "A metrics token may only read GET /metrics", HINT_METRICS)
            )
            return
        if (
            session is not None
            and method not in sessions.SAFE_METHODS
            and not sessions.csrf_ok(session, header(scope, sessions.CSRF_HEADER.encode()))
        ):
            await run_in_threadpool(
                self.store.record_audit,
                principal.actor,
                "auth.csrf",
                f"{method} {path}",
                "a session request without its CSRF token",
                client_address(scope),
            )
            await send_refusal(send, Refusal(403, CSRF_REFUSED, CSRF_HINT))
            return
        scope.setdefault("state", {})["principal"] = principal
        # a browser's session rather than a token: a preview opened with it gets a grant
        scope["state"]["by_session"] = session is not None
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
