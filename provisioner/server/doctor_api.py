"""GET /api/dockyard/v1/doctor (and its /api/v2 alias): `dockyard doctor`'s checks of
the server's own machine (admins).

A remote server's Docker, disk, images, CA bundle and database can only be looked at
where it runs; the CLI adds its own checks of the address and the token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from provisioner.auth.tokens import Principal
from provisioner.doctor import diagnose
from provisioner.doctor.checks import worst
from provisioner.server.auth import admin_only
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.store.store import Store


def build_doctor_router(store: Store, home: Path) -> APIRouter:
    """The doctor route, bound to this server's home and database."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.get("/doctor")
    async def doctor(_: Principal = Depends(admin_only)) -> Any:
        # probes block (Docker, the network, a container run): off the event loop
        results = await run_in_threadpool(diagnose, home, store.url)
        return {"worst": worst(results).value, "checks": [r.as_json() for r in results]}

    return r
