"""The app of Coder's surface: its routes under /api/v2 and /api/experimental, with
errors in Coder's shape. provisioner/server/prefixes.py asks it first."""

from __future__ import annotations

from fastapi import FastAPI

from provisioner.engine.engine import Engine


def build_coder_app(engine: Engine) -> FastAPI:
    """Coder's routes, bound to one engine (no lifespan: the main app runs the engine)."""
    app = FastAPI(title="Dockyard (Coder surface)", openapi_url=None, docs_url=None, redoc_url=None)
    return app
