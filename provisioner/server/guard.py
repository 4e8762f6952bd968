"""Checks every request passes before any route sees it: the Host it names, where a
browser says it comes from, its content type and its size. Pure functions, plus the ASGI
wrapper that applies them.

Why each matters, with bearer tokens already required:
- Host: a DNS-rebinding page reaches a loopback server under the attacker's name; a name
  this server does not answer to is refused.
- Origin: a page on another site must never change anything here, even if a browser one
  day attaches a credential; a state change with a foreign Origin is refused.
- Content type: the three types a browser may send cross-site without asking first
  (text/plain, forms) are never what our API takes.
- Size: nothing is read past a limit, and a body must say its length up front.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from provisioner.previews import is_preview_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# what a browser sends cross-site without a preflight; our API never takes these
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
MAX_BODY = 8 * 1024 * 1024  # a JSON request: a prompt is far smaller
MAX_UPLOAD = 64 * 1024 * 1024  # a template archive (its own 50 MiB limit says more)
UPLOAD_PATHS = frozenset({"/api/v2/templates", "/api/dockyard/v1/templates"})
# `task cp` into a workspace: a tar (its own limits on content are in provisioner.access)
FILES_PATH = re.compile(r"^/api/(?:v2|dockyard/v1)/tasks/[^/]+/files$")
MAX_FILES_UPLOAD = 512 * 1024 * 1024 + 16 * 1024 * 1024  # content plus tar headers


@dataclass(frozen=True)
class Refusal:
    """Why a request is turned away, as an HTTP status and a message with a hint."""

    status: int
    detail: str
    hint: str | None = None


def split_host(value: str) -> tuple[str, str | None]:
    """(`host`, `port`) of a Host header or an Origin's netloc; IPv6 brackets removed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return value, None
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_host(header: str | None, allowed: Iterable[str]) -> Refusal | None:
    """A Host naming this server: any IP literal, a loopback name or a configured name.

    An IP literal cannot be a rebinding attack (the attacker's page would have to be
    served from our own address), so only DNS names need to be known.
    """
    if not header:
        return Refusal(400, "The request has no Host header")
    host, _ = split_host(header)
    names = {n.lower().rstrip(".") for n in allowed}
    if "*" in names or _is_ip(host) or host.rstrip(".") in LOOPBACK_NAMES | names:
        return None
    return Refusal(
        421,
        f"This server does not answer to the name {host[:100]!r}",
        "an admin can allow it: dockyard server --allowed-host NAME (or DOCKYARD_ALLOWED_HOSTS)",
    )


def check_origin(method: str, origin: str | None, host: str | None) -> Refusal | None:
    """A state change from a page of another origin is refused; CLIs send no Origin."""
    if method in SAFE_METHODS or origin is None:
        return None
    parts = urlsplit(origin)
    if origin == "null" or not parts.netloc or host is None:
        return Refusal(403, "Cross-origin requests may not change anything here")
    oh, op = split_host(parts.netloc)
    hh, hp = split_host(host)
    default = "443" if parts.scheme == "https" else "80"  # either side may leave it out
    if oh != hh or (op or default) != (hp or default):
        return Refusal(403, f"Cross-origin request from {origin[:100]} refused")
    return None


def check_body(
    method: str, path: str, content_type: str | None, length: str | None, chunked: bool
) -> Refusal | None:
    """The content type and declared size of a request's body."""
    if method in SAFE_METHODS:
        return None
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in SIMPLE_TYPES:
        return Refusal(
            415,
            f"Content type {kind} is not accepted",
            "send JSON (application/json), a template as application/gzip, or files as "
            "application/x-tar",
        )
    limit = MAX_UPLOAD if path in UPLOAD_PATHS else MAX_BODY
    if method == "PUT" and FILES_PATH.match(path):
        limit = MAX_FILES_UPLOAD
    if chunked:
        return Refusal(411, "A request body must state its length (Content-Length)")
    if length is not None:
        if not length.isdigit():
            return Refusal(400, "Content-Length is not a number")
        if int(length) > limit:
            return Refusal(
                413, f"The request body is {int(length)} bytes; the limit here is {limit} bytes"
            )
    return None


async def send_refusal(
    send: Send, refusal: Refusal, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Answer with our usual error body: {"detail", "hint"}."""
    body = json.dumps({"detail": refusal.detail, "hint": refusal.hint}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def refuse_websocket(
    scope: Scope, send: Send, refusal: Refusal, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Turn a WebSocket handshake away with an HTTP answer (status and our error body)
    where the server can send one, else with a close (a 403 to the client)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps({"detail": refusal.detail, "hint": refusal.hint}).encode()
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers),
        ]
        await send(
            {"type": "websocket.http.response.start", "status": refusal.status, "headers": raw}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": refusal.detail[:120]})


async def send_coder_refusal(
    send: Send, refusal: Refusal, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """A refusal on one of Coder's routes, in Coder's error shape: {"message", "detail",
    "validations"} (codersdk.Response)."""
    body = json.dumps(
        {"message": refusal.detail, "detail": refusal.hint or "", "validations": []}
    ).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """One request header as text (latin-1, as HTTP sends them), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestGuard:
    """ASGI middleware: Host, Origin, content type and size checked before anything else."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed_hosts = frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # a WebSocket changes things (a shell): its Host and Origin are checked as a
            # POST's would be (a page elsewhere cannot open one into a workspace)
            host = header(scope, b"host")
            # a preview's own page is sandboxed (Origin: null): the grant in its path is
            # the credential, which no page elsewhere knows
            origin = None if is_preview_path(scope["path"]) else header(scope, b"origin")
            refusal = check_host(host, self.allowed_hosts) or check_origin("POST", origin, host)
            if refusal is not None:
                await refuse_websocket(scope, send, refusal)
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        host = header(scope, b"host")
        encoding = (header(scope, b"transfer-encoding") or "").lower()
        # a previewed app takes what it takes (forms too, from its sandboxed page):
        # the grant in the path is the credential, so neither check protects anything
        preview = is_preview_path(scope["path"])
        refusal = (
            check_host(host, self.allowed_hosts)
            or check_origin(method, None if preview else header(scope, b"origin"), host)
            or check_body(
                method,
                scope["path"],
                None if preview else header(scope, b"content-type"),
                header(scope, b"content-length"),
                "chunked" in encoding,
            )
        )
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        await self.app(scope, receive, send)
