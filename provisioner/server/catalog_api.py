"""/api/v2 routes of the catalog (templates, presets), the server's health, warm pools
and capacity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from provisioner import __version__
from provisioner.auth.tokens import Principal
from provisioner.capacity import Usage
from provisioner.engine.engine import Engine
from provisioner.errors import DockyardError, TemplateError
from provisioner.lifecycle import TERMINAL, Status
from provisioner.server.auth import admin_only, caller
from provisioner.server.drain_api import drain_json
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.store.store import Store
from provisioner.templating.activate import activate_version
from provisioner.templating.catalog import Template
from provisioner.templating.delete import delete_versions
from provisioner.templating.push import MAX_ARCHIVE_BYTES, push_archive


async def _read_archive(request: Request) -> bytes:
    """An uploaded template archive, refused as soon as it passes MAX_ARCHIVE_BYTES (an
    endless upload was read into memory whole before its size was checked)."""
    too_big = TemplateError(f"template archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ARCHIVE_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ARCHIVE_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _template_json(tpl: Template) -> dict[str, Any]:
    default = tpl.default_preset()
    return {
        "name": tpl.name,
        "description": tpl.config.description,
        "version": tpl.version,
        "backend": tpl.config.backend,
        "parameters": [p.model_dump() for p in tpl.config.parameters],
        "presets": sorted(tpl.presets),
        "default_preset": default.name if default else None,
        "path": str(tpl.path),
    }


def _preset_json(tpl: Template) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "template": tpl.name,
            "description": p.config.description,
            "default": p.config.default,
            "parameters": p.config.parameters,
        }
        for p in sorted(tpl.presets.values(), key=lambda p: p.name)
    ]


def _capacity_json(usage: Usage, store: Store, who: Principal) -> dict[str, Any]:
    # a member sees where others' tasks stand in the queue, not what they are called
    names = {
        t.id: t
        for t in store.list_tasks([Status.PENDING], kind=None)
        if who.is_admin or t.owner == who.user
    }
    return {
        "limit": usage.limit,  # null: unlimited
        "in_use": usage.in_use,  # workspaces initializing or active
        "tasks": usage.tasks,
        "pool": usage.pool,  # warm-pool members among in_use
        "available": usage.available,  # null: unlimited
        "waiting": usage.waiting,  # user tasks pending (warm-pool members not counted)
        "summary": usage.summary(),
        # pending tasks and warm-pool members, first to start first
        "queue": [
            {
                "id": slot.id,
                "name": names[slot.id].name if slot.id in names else None,
                "kind": slot.kind,
                "priority": slot.priority,
                "waiting_since": slot.waiting_since,
                "message": names[slot.id].message if slot.id in names else None,
            }
            for slot in usage.queue
        ],
    }


def build_catalog_router(engine: Engine, home: str) -> APIRouter:
    """Catalog, health, pool and capacity routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    @r.get("/health")
    def health(who: Principal = Depends(caller)) -> dict[str, Any]:
        docker: dict[str, Any] = {"ok": True, "error": None}
        try:
            engine.backend.ping()
        except DockyardError as exc:
            docker = {"ok": False, "error": str(exc)}
        return {
            "ok": True,
            "version": __version__,
            "docker": docker,
            "home": home,
            "drain": drain_json(store, engine.draining.state(), show_who=who.is_admin),
        }

    @r.get("/templates")
    def list_templates(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"templates": [_template_json(t) for t in engine.catalog.all()]}

    @r.get("/templates/{name}")
    def get_template(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return _template_json(engine.catalog.get(name))

    @r.get("/templates/{name}/versions")
    def template_versions(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        active = engine.catalog.get(name)
        name = active.name
        store = engine.catalog.versions
        stored = store.versions(name) if store else []
        rows = [
            {
                "version": v.version,
                "label": v.label,
                "created_at": v.created_at,
                "pushed": v.pushed,
                "active": v.version == active.version,
            }
            for v in stored
        ]
        disk = engine.catalog.on_disk(name)
        if disk is not None and all(r["version"] != disk.version for r in rows):
            # The folder on disk as it is now, not stored yet (no task used it): a version
            # all the same, active unless a push replaced it, and one to activate again.
            rows.append(
                {
                    "version": disk.version,
                    "label": None,
                    "created_at": None,
                    "pushed": False,
                    "active": disk.version == active.version,
                }
            )
        return {"template": name, "versions": rows}

    @r.post("/templates", status_code=201)
    async def push_template(
        request: Request, label: str | None = None, who: Principal = Depends(admin_only)
    ) -> dict[str, Any]:
        body = await _read_archive(request)
        info, tpl = await run_in_threadpool(push_archive, engine.catalog, body, label)
        await run_in_threadpool(
            store.record_audit, who.actor, "template.push", f"{tpl.name}@{tpl.version}", label or ""
        )
        return {**_template_json(tpl), "label": info.label, "pushed": True}

    @r.post("/templates/{name}/versions/{version}/activate")
    def activate_template_version(
        name: str, version: str, who: Principal = Depends(admin_only)
    ) -> dict[str, Any]:
        """Make a version the one new tasks get (admins); tasks that run keep theirs.
        `version`: a hash, a unique prefix of it, or a label; the folder on disk's too."""
        done = activate_version(engine.catalog, name, version)
        target = f"{done.template.name}@{done.template.version}"
        store.record_audit(who.actor, "template.activate", target, "")
        return {**_template_json(done.template), "label": done.label, "already": done.already}

    def routed_by(name: str) -> list[str]:
        return [t.name for t in engine.admissions.targets.values() if t.template == name]

    @r.delete("/templates/{name}")
    def delete_template(name: str, who: Principal = Depends(admin_only)) -> dict[str, Any]:
        live = engine.store.list_tasks(kind=None)
        deleted = delete_versions(engine.catalog, live, name, routed_by=routed_by(name))
        store.record_audit(who.actor, "template.delete", name, ", ".join(deleted))
        return {"template": name, "deleted": deleted}

    @r.delete("/templates/{name}/versions/{version}")
    def delete_template_version(
        name: str, version: str, who: Principal = Depends(admin_only)
    ) -> dict[str, Any]:
        live = engine.store.list_tasks(kind=None)
        deleted = delete_versions(engine.catalog, live, name, version, routed_by(name))
        store.record_audit(who.actor, "template.delete", f"{name}@{version}", ", ".join(deleted))
        return {"template": name, "deleted": deleted}

    @r.get("/templates/{name}/presets")
    def template_presets(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"presets": _preset_json(engine.catalog.get(name))}

    @r.get("/presets")
    def list_presets(
        template: str | None = None, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        tpls = [engine.catalog.get(template)] if template else engine.catalog.all()
        return {"presets": [p for t in tpls for p in _preset_json(t)]}

    @r.get("/pools")
    def pools(who: Principal = Depends(caller)) -> dict[str, Any]:
        members = [t for t in store.list_tasks(kind="pool") if t.status not in TERMINAL]
        return {
            "members": [m.public() for m in members],
            "capacity": _capacity_json(engine.capacity(), store, who),
        }

    @r.get("/capacity")
    def capacity(who: Principal = Depends(caller)) -> dict[str, Any]:
        found = _capacity_json(engine.capacity(), store, who)
        # while draining nothing is admitted, whatever the free slots
        return {**found, "draining": engine.draining.state().draining}

    return r
