"""The app of Coder's surface: its routes under /api/v2 (and the tasks routes under
/api/experimental too), with errors in Coder's shape. provisioner/server/prefixes.py asks
it first; the main app's middleware has authenticated the caller already."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from provisioner.coder_compat import QueryError
from provisioner.engine.engine import Engine
from provisioner.errors import DockyardError
from provisioner.server.auth import CHALLENGE
from provisioner.server.coder.catalog import catalog_routes
from provisioner.server.coder.tasks import task_routes
from provisioner.server.coder.views import error_json
from provisioner.server.http_errors import _capped, _status_code
from provisioner.server.prefixes import EXPERIMENTAL, LEGACY

Route = tuple[str, str, Callable[..., Any], int]  # method, path, endpoint, status code


def _add(app: FastAPI, prefix: str, routes: list[Route]) -> None:
    for method, path, endpoint, status in routes:
        app.add_api_route(
            prefix + path,
            endpoint,
            methods=[method],
            status_code=status,
            name=f"coder_{endpoint.__name__}",
            tags=["coder"],
        )


def _install_errors(app: FastAPI) -> None:
    """Coder's error body, {"message", "detail", "validations"}, with our status codes."""

    @app.exception_handler(DockyardError)
    async def _dockyard_error(_: Request, exc: DockyardError) -> JSONResponse:
        code = _status_code(exc)
        body = error_json(_capped(exc.message) or "", _capped(exc.hint) or "")
        return JSONResponse(body, code, headers=dict([CHALLENGE]) if code == 401 else None)

    @app.exception_handler(QueryError)
    async def _bad_query(_: Request, exc: QueryError) -> JSONResponse:
        field = [{"field": "q", "detail": _capped(str(exc))}]
        return JSONResponse(error_json("Invalid query.", str(exc)[:1000], field), 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(p)[:100] for p in err.get("loc", ()) if p != "body"),
                "detail": _capped(str(err.get("msg", "invalid value"))),
            }
            for err in exc.errors()[:20]
        ]
        return JSONResponse(error_json("Invalid request.", "", fields), 400)


def build_coder_app(engine: Engine) -> FastAPI:
    """Coder's routes, bound to one engine (no lifespan: the main app runs the engine)."""
    app = FastAPI(title="Dockyard (Coder surface)", openapi_url=None, docs_url=None, redoc_url=None)
    _install_errors(app)
    _add(app, LEGACY, catalog_routes(engine))
    tasks = task_routes(engine)
    _add(app, LEGACY, tasks)
    _add(app, EXPERIMENTAL, tasks)  # Coder's older home of the same routes
    return app
