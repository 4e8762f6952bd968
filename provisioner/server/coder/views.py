"""Dockyard's templates, versions, presets, users and tasks as Coder serializes them
(codersdk: Template, TemplateVersion, Preset, TemplateVersionParameter, User, Task)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from provisioner import __version__
from provisioner import coder_compat as cc
from provisioner.model import Task
from provisioner.templating.catalog import Preset, Template

EPOCH = "1970-01-01T00:00:00Z"
# buildinfo's version: Coder's CLI compares major.minor with its own and only warns on a
# mismatch; the build metadata says what answers
CODER_VERSION = f"v2.29.0+dockyard.{__version__}"
ORGANIZATION_NAME = cc.DEFAULT_ORGANIZATION


def file_time(template: Template) -> str:
    """When the template's folder last changed, RFC 3339 (its created/updated time)."""
    try:
        stamp = os.stat(template.path / "template.yaml").st_mtime
    except OSError:
        return EPOCH
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def coder_name(tpl: Template) -> str:
    """The template's name as Coder clients know it (capitals allowed)."""
    return tpl.config.coder_name or tpl.name


def template_json(tpl: Template) -> dict[str, Any]:
    """codersdk.Template: the active version's id is the version `tpl` is."""
    when = file_time(tpl)
    return {
        "id": cc.template_id(tpl.name),
        "created_at": when,
        "updated_at": when,
        "organization_id": cc.organization_id(),
        "organization_name": ORGANIZATION_NAME,
        "organization_display_name": "Default",
        "organization_icon": "",
        "name": coder_name(tpl),
        "display_name": coder_name(tpl),
        "provisioner": "terraform" if tpl.config.backend == "terraform" else "docker",
        "active_version_id": cc.version_id(tpl.name, tpl.version),
        "active_user_count": 0,
        "build_time_stats": {t: {"P50": None, "P95": None} for t in ("start", "stop", "delete")},
        "description": tpl.config.description,
        "deprecated": False,
        "deprecation_message": "",
        "icon": "",
        "default_ttl_ms": 0,
        "activity_bump_ms": 0,
        "autostop_requirement": {"days_of_week": [], "weeks": 1},
        "autostart_requirement": {"days_of_week": []},
        "created_by_id": cc.user_id("dockyard"),
        "created_by_name": "dockyard",
        "allow_user_autostart": False,
        "allow_user_autostop": False,
        "allow_user_cancel_workspace_jobs": True,
        "failure_ttl_ms": 0,
        "time_til_dormant_ms": 0,
        "time_til_dormant_autodelete_ms": 0,
        "require_active_version": False,
        "max_port_share_level": "owner",
        "use_classic_parameter_flow": False,
    }


def version_json(tpl: Template, created_at: str | None, active: bool) -> dict[str, Any]:
    """codersdk.TemplateVersion of one version of a template."""
    when = created_at or file_time(tpl)
    vid = cc.version_id(tpl.name, tpl.version)
    return {
        "id": vid,
        "template_id": cc.template_id(tpl.name),
        "organization_id": cc.organization_id(),
        "created_at": when,
        "updated_at": when,
        "name": tpl.version[:12],
        "message": "active" if active else "",
        "job": {
            "id": cc.stable_id("job", tpl.name, tpl.version),
            "created_at": when,
            "started_at": when,
            "completed_at": when,
            "status": "succeeded",
            "error": "",
            "file_id": cc.stable_id("file", tpl.name, tpl.version),
            "tags": {},
            "queue_position": 0,
            "queue_size": 0,
            "organization_id": cc.organization_id(),
        },
        "readme": "",
        "created_by": {"id": cc.user_id("dockyard"), "username": "dockyard", "avatar_url": ""},
        "archived": False,
        "warnings": [],
        "has_external_agent": False,
    }


def parameter_value(value: Any) -> str:
    """A preset's value as Coder holds parameter values: a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def preset_json(tpl: Template, preset: Preset) -> dict[str, Any]:
    """codersdk.Preset: Go's field names as they are (no json tags: PascalCase)."""
    prebuilds = preset.config.prebuilds
    return {
        "ID": cc.preset_id(tpl.name, tpl.version, preset.name),
        "Name": preset.name,
        "Parameters": [
            {"Name": name, "Value": parameter_value(value)}
            for name, value in sorted(preset.config.parameters.items())
        ]
        or None,
        "Default": preset.config.default,
        "DesiredPrebuildInstances": prebuilds if prebuilds else None,
        "Description": preset.config.description,
        "Icon": "",
    }


def presets_json(tpl: Template) -> list[dict[str, Any]] | None:
    """A version's presets; Go encodes an empty (nil) list as null."""
    found = [preset_json(tpl, p) for p in sorted(tpl.presets.values(), key=lambda p: p.name)]
    return found or None


_PARAM_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "bool": "bool",
    "list": "list(string)",
    "choice": "string",
}


def rich_parameters_json(tpl: Template) -> list[dict[str, Any]]:
    """codersdk.TemplateVersionParameter of each template parameter."""
    rows = []
    for p in tpl.config.parameters:
        kind = _PARAM_TYPES.get(str(p.type), "string")
        rows.append(
            {
                "name": p.name,
                "display_name": p.name,
                "description": p.description,
                "description_plaintext": p.description,
                "type": kind,
                "form_type": "dropdown" if p.options else "input",
                "mutable": True,
                "default_value": "" if p.secret else parameter_value(p.default),
                "icon": "",
                "options": [
                    {
                        "name": parameter_value(o),
                        "description": "",
                        "value": parameter_value(o),
                        "icon": "",
                    }
                    for o in p.options or []
                ],
                "required": p.required,
                "ephemeral": False,
            }
        )
    return rows


def user_json(name: str, role: str, created_at: str | None = None) -> dict[str, Any]:
    """codersdk.User of a Dockyard user."""
    roles = [{"name": "owner", "display_name": "Owner"}] if role == "admin" else []
    return {
        "id": cc.user_id(name),
        "username": name,
        "name": name,
        "email": f"{name}@dockyard.invalid",
        "avatar_url": "",
        "created_at": created_at or EPOCH,
        "updated_at": created_at or EPOCH,
        "last_seen_at": created_at or EPOCH,
        "status": "active",
        "login_type": "token",
        "theme_preference": "",
        "organization_ids": [cc.organization_id()],
        "roles": roles,
    }


def _workspace_status(status: str) -> str:
    return {
        "backlog": "pending",
        "pending": "pending",
        "claimed": "pending",
        "offered": "pending",
        "initializing": "starting",
        "active": "running",
        "error": "failed",
    }.get(status, "stopped")


def task_json(task: Task) -> dict[str, Any]:
    """codersdk.Task of a Dockyard task (see coder_compat for the status mapping)."""
    status = task.status.value
    state = cc.coder_state(status, task.state)
    message = task.question or task.message or ""
    current = (
        None
        if state is None
        else {
            "timestamp": task.state_changed_at or task.updated_at,
            "state": state,
            "message": message,
            "uri": "",
        }
    )
    has_workspace = task.workspace is not None or status not in ("backlog", "pending")
    return {
        "id": task.id,
        "organization_id": cc.organization_id(),
        "owner_id": cc.user_id(task.owner),
        "owner_name": task.owner,
        "owner_avatar_url": "",
        "name": task.name,
        "display_name": task.title or task.display_name or task.name,
        "template_id": cc.template_id(task.template),
        "template_version_id": cc.version_id(task.template, task.template_version),
        "template_name": task.template,
        "template_display_name": task.template,
        "template_icon": "",
        "workspace_id": cc.workspace_id(task.id) if has_workspace else None,
        "workspace_name": task.name,
        "workspace_status": _workspace_status(status),
        "workspace_build_number": task.attempt,
        "workspace_agent_id": None,
        "workspace_agent_lifecycle": None,
        "workspace_agent_health": None,
        "workspace_app_id": None,
        "initial_prompt": task.prompt,
        "status": cc.coder_status(status),
        "current_state": current,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def error_json(message: str, detail: str = "", validations: Any = None) -> dict[str, Any]:
    """codersdk.Response: Coder's error body."""
    return {"message": message, "detail": detail, "validations": validations or []}
