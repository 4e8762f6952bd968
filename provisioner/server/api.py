"""The REST API, modelled on Coder's /api/v2/tasks: its routers, one per resource.

catalog_api (templates, presets, health, pools, capacity), tasks_api (tasks), queue_api
(targets, the queue in admission order), drain_api (drain, undrain), cost_api (cost
totals), schedules_api (cron), triggers_api (inbound webhooks), repo_api (a task's
repository: diff, bundle, push), and
accounts_api (users, tokens, audit; mounted by main.create_app); http_errors says how any
of them answers a failure.
"""

from __future__ import annotations

from fastapi import APIRouter

from provisioner.engine.engine import Engine
from provisioner.server.catalog_api import build_catalog_router
from provisioner.server.claims_api import build_claims_router
from provisioner.server.cost_api import build_cost_router
from provisioner.server.drain_api import build_drain_router
from provisioner.server.http_errors import ERROR_RESPONSES, MAX_ROW_ID, install_error_handler
from provisioner.server.proxy_api import build_proxy_router
from provisioner.server.queue_api import build_queue_router
from provisioner.server.repo_api import build_repo_router
from provisioner.server.schedules_api import build_schedules_router
from provisioner.server.tasks_api import build_tasks_router
from provisioner.server.triggers_api import build_triggers_router
from provisioner.server.workspace_api import build_workspace_router

__all__ = ["ERROR_RESPONSES", "MAX_ROW_ID", "build_router", "install_error_handler"]


def build_router(engine: Engine, home: str) -> APIRouter:
    """The catalog and task routes under /api/v2, bound to one engine."""
    router = APIRouter()
    router.include_router(build_catalog_router(engine, home))
    router.include_router(build_tasks_router(engine))
    router.include_router(build_claims_router(engine))
    router.include_router(build_cost_router(engine.store))
    router.include_router(build_queue_router(engine))
    router.include_router(build_drain_router(engine))
    router.include_router(build_schedules_router(engine))
    router.include_router(build_triggers_router(engine))
    router.include_router(build_repo_router(engine))
    # exec/shell, cp, download; port-forward and previews (docs/workspace-access.md)
    router.include_router(build_workspace_router(engine))
    router.include_router(build_proxy_router(engine))
    return router
