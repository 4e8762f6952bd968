"""Coder's deployment, user, organization, template and template version routes.

Dockyard has one (default) organization; every template's active version is the one
`dockyard template list` shows, and each stored version is a Coder template version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Query

from provisioner import coder_compat as cc
from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import DockyardError, TemplateNotFound
from provisioner.model import utcnow
from provisioner.server.auth import caller
from provisioner.server.coder.views import (
    CODER_VERSION,
    EPOCH,
    ORGANIZATION_NAME,
    presets_json,
    rich_parameters_json,
    template_json,
    user_json,
    version_json,
)
from provisioner.templating.catalog import Template

Route = tuple[str, str, Callable[..., Any], int]


class Versions:
    """Template versions by their Coder id: each template's active version and the
    versions stored for it."""

    def __init__(self, engine: Engine) -> None:
        self.catalog = engine.catalog

    def templates(self) -> list[Template]:
        return self.catalog.all()

    def template(self, template_id: str) -> Template:
        wanted = cc.as_uuid(template_id)
        for tpl in self.templates():
            if wanted is not None and cc.template_id(tpl.name) == wanted:
                return tpl
        raise TemplateNotFound(
            f"Template {template_id[:80]!r} not found",
            hint="list templates with: GET /api/v2/templates",
        )

    def named(self, name: str) -> Template:
        try:
            return self.catalog.get(name)
        except DockyardError:
            raise TemplateNotFound(
                f"Template {name[:80]!r} not found",
                hint="list templates with: GET /api/v2/templates",
            ) from None

    def by_name(self, name: str, version: str) -> tuple[Template, str | None, bool]:
        """A template's version by its name in Coder (our hash, a prefix of it, or a label)."""
        active = self.named(name)
        try:
            tpl = self.catalog.get(active.name, version)
        except DockyardError:
            raise TemplateNotFound(
                f"Template {name[:80]!r} has no version {version[:80]!r}",
                hint=f"list them with: dockyard template versions {active.name}",
            ) from None
        return self.version(cc.version_id(tpl.name, tpl.version))

    def version(self, version_id: str) -> tuple[Template, str | None, bool]:
        """The template version `version_id` names: (template, stored time, is active)."""
        wanted = cc.as_uuid(version_id)
        if wanted is not None:
            for tpl in self.templates():
                if cc.version_id(tpl.name, tpl.version) == wanted:
                    return tpl, None, True
                stored = self.catalog.versions.versions(tpl.name) if self.catalog.versions else []
                for info in stored:
                    if cc.version_id(tpl.name, info.version) == wanted:
                        return self.catalog.get(tpl.name, info.version), info.created_at, False
        raise TemplateNotFound(
            f"Template version {version_id[:80]!r} not found",
            hint="a template's active_version_id names its current version",
        )


def _organization(org: str) -> None:
    if org not in (ORGANIZATION_NAME, cc.organization_id()):
        raise TemplateNotFound(
            f"Organization {org[:80]!r} not found",
            hint=f"this server has one organization: {ORGANIZATION_NAME!r}",
        )


def organization_json() -> dict[str, Any]:
    return {
        "id": cc.organization_id(),
        "name": ORGANIZATION_NAME,
        "display_name": "Default",
        "description": "",
        "icon": "",
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "is_default": True,
    }


def catalog_routes(engine: Engine) -> list[Route]:
    """The routes, bound to one engine (paths below the /api/v2 prefix)."""
    versions = Versions(engine)
    store = engine.store

    def buildinfo(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {
            "external_url": "https://github.com/dockyard",
            "version": CODER_VERSION,
            "dashboard_url": "",
            "telemetry": False,
            "workspace_proxy": False,
            "agent_api_version": "2.0",
            "provisioner_api_version": "1.0",
            "upgrade_message": "",
            "deployment_id": cc.stable_id("deployment", "dockyard"),
            "webpush_public_key": "",
        }

    def entitlements(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {
            "features": {},
            "warnings": [],
            "errors": [],
            "has_license": False,
            "trial": False,
            "require_telemetry": False,
            "refreshed_at": utcnow(),
        }

    def me(who: Principal = Depends(caller)) -> dict[str, Any]:
        found = store.user(who.user) or {}
        return user_json(who.user, str(who.role), found.get("created_at"))

    def my_organizations(who: Principal = Depends(caller)) -> list[dict[str, Any]]:
        return [organization_json()]

    def organization(org: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        _organization(org)
        return organization_json()

    def templates(
        q: str | None = Query(None, max_length=512), who: Principal = Depends(caller)
    ) -> list[dict[str, Any]]:
        wanted = cc.template_filter(q)
        return [template_json(t) for t in versions.templates() if wanted.keeps(t.name, t.name)]

    def template(template_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return template_json(versions.template(template_id))

    def org_templates(org: str, who: Principal = Depends(caller)) -> list[dict[str, Any]]:
        _organization(org)
        return [template_json(t) for t in versions.templates()]

    def org_template(org: str, name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        _organization(org)
        return template_json(versions.named(name))

    def org_template_version(
        org: str, name: str, version: str, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        _organization(org)
        tpl, created_at, active = versions.by_name(name, version)
        return version_json(tpl, created_at, active)

    def template_version(version_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        tpl, created_at, active = versions.version(version_id)
        return version_json(tpl, created_at, active)

    def presets(version_id: str, who: Principal = Depends(caller)) -> list[dict[str, Any]] | None:
        tpl, _, _ = versions.version(version_id)
        return presets_json(tpl)

    def rich_parameters(version_id: str, who: Principal = Depends(caller)) -> list[dict[str, Any]]:
        tpl, _, _ = versions.version(version_id)
        return rich_parameters_json(tpl)

    return [
        ("GET", "/buildinfo", buildinfo, 200),
        ("GET", "/entitlements", entitlements, 200),
        ("GET", "/users/me", me, 200),
        ("GET", "/users/me/organizations", my_organizations, 200),
        ("GET", "/organizations/{org}", organization, 200),
        ("GET", "/organizations/{org}/templates", org_templates, 200),
        ("GET", "/organizations/{org}/templates/{name}", org_template, 200),
        (
            "GET",
            "/organizations/{org}/templates/{name}/versions/{version}",
            org_template_version,
            200,
        ),
        ("GET", "/templates", templates, 200),
        ("GET", "/templates/{template_id}", template, 200),
        ("GET", "/templateversions/{version_id}", template_version, 200),
        ("GET", "/templateversions/{version_id}/presets", presets, 200),
        ("GET", "/templateversions/{version_id}/rich-parameters", rich_parameters, 200),
    ]
