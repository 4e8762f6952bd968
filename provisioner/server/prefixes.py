"""Two APIs side by side: Dockyard's own at /api/dockyard/v1, Coder's Tasks surface at
/api/v2 and /api/experimental, and Dockyard's old /api/v2 paths kept as aliases.

Dockyard's routers are written with the `/api/v2` prefix (the one they always had), so a
route any router adds lands at both prefixes with no change of its own. Coder's surface
is a separate app (provisioner/server/coder/) asked first: a request under `/api/v2` or
`/api/experimental` that one of its routes matches by path and method goes there, every
other request to Dockyard's. So where both claim a method and path at `/api/v2` (`GET
/api/v2/tasks`, `GET /api/v2/templates`, `GET /api/v2/tasks/{user}/{task}`...), Coder's
answers; `/api/dockyard/v1` is never ambiguous. The OpenAPI document shows Dockyard's
routes at `/api/dockyard/v1` and Coder's at theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match

from provisioner.server.guard import ASGIApp, Receive, Scope, Send

DOCKYARD = "/api/dockyard/v1"  # Dockyard's own API (the CLI uses it)
LEGACY = "/api/v2"  # Dockyard's old prefix; also Coder's (theirs first)
EXPERIMENTAL = "/api/experimental"  # Coder's older home of the tasks routes
CODER_PREFIXES = (LEGACY + "/", EXPERIMENTAL + "/")


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def is_coder_path(path: str) -> bool:
    """A path of Coder's surface or of Dockyard's old aliases (both use Coder's auth forms)."""
    return path.startswith(CODER_PREFIXES)


def claimed_by(coder: FastAPI, scope: Scope) -> bool:
    """Whether one of Coder's routes answers this request (path and method)."""
    if not is_coder_path(scope["path"]):
        return False
    for route in coder.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return True
    return False


class ApiPrefixes:
    """ASGI: `/api/dockyard/v1/...` served by Dockyard's `/api/v2/...` routes; Coder's
    routes asked first under its prefixes; everything else passes to Dockyard's app."""

    def __init__(self, app: ASGIApp, coder: FastAPI) -> None:
        self.app = app
        self.coder = coder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if under(path, DOCKYARD):
                moved = LEGACY + path[len(DOCKYARD) :]
                scope = {**scope, "path": moved, "raw_path": moved.encode()}
            elif claimed_by(self.coder, scope):
                await self.coder(scope, receive, send)
                return
        await self.app(scope, receive, send)


def combined_openapi(app: FastAPI, coder: FastAPI) -> Callable[[], dict[str, Any]]:
    """app.openapi: Dockyard's routes at /api/dockyard/v1 (the /api/v2 aliases left out),
    and Coder's surface at its own paths."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = original()
        paths: dict[str, Any] = {}
        for path, ops in doc.get("paths", {}).items():
            paths[DOCKYARD + path[len(LEGACY) :] if under(path, LEGACY) else path] = ops
        theirs = coder.openapi()
        paths.update(theirs.get("paths", {}))
        doc["paths"] = paths
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in theirs.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
        app.openapi_schema = doc
        return doc

    return openapi
