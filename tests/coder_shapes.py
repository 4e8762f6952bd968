"""Coder's API shapes, written from Coder's documentation and codersdk (the Go types'
json tags), as fixtures the contract tests hold Dockyard's answers to.

A shape maps each key to the JSON types it may hold ("uuid" and "time" are strings of
that form; a nested dict is an object of that shape; a one-item list is an array of it).
Keys Coder sends that Dockyard leaves out would fail the check: every key listed here is
required.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

UUID, TIME, STR, INT, BOOL, NULL = "uuid", "time", "str", "int", "bool", "null"

TEMPLATE = {
    "id": UUID,
    "name": STR,
    "display_name": STR,
    "organization_id": UUID,
    "active_version_id": UUID,
    "description": STR,
    "icon": STR,
    "deprecated": BOOL,
    "created_at": TIME,
    "updated_at": TIME,
    "provisioner": STR,
    "active_user_count": INT,
}

TEMPLATE_VERSION = {
    "id": UUID,
    "template_id": UUID,
    "organization_id": UUID,
    "name": STR,
    "created_at": TIME,
    "updated_at": TIME,
    "message": STR,
    "readme": STR,
    "archived": BOOL,
    "job": {"id": UUID, "status": STR},
}

# codersdk.Preset has no json tags: Go writes the field names as they are
PRESET = {
    "ID": UUID,
    "Name": STR,
    "Parameters": ([{"Name": STR, "Value": STR}], NULL),
    "Default": BOOL,
    "DesiredPrebuildInstances": (INT, NULL),
    "Description": STR,
    "Icon": STR,
}

RICH_PARAMETER = {
    "name": STR,
    "description": STR,
    "type": STR,
    "mutable": BOOL,
    "default_value": STR,
    "required": BOOL,
    "options": [{"name": STR, "value": STR}],
}

BUILDINFO = {"external_url": STR, "version": STR, "dashboard_url": STR, "agent_api_version": STR}
ENTITLEMENTS = {
    "features": dict,
    "warnings": list,
    "errors": list,
    "has_license": BOOL,
    "trial": BOOL,
    "require_telemetry": BOOL,
}
USER = {
    "id": UUID,
    "username": STR,
    "email": STR,
    "created_at": TIME,
    "status": STR,
    "organization_ids": [UUID],
    "roles": list,
}

TASK_STATE = {"timestamp": TIME, "state": STR, "message": STR, "uri": STR}
TASK = {
    "id": UUID,
    "organization_id": UUID,
    "owner_id": UUID,
    "owner_name": STR,
    "name": STR,
    "display_name": STR,
    "template_id": UUID,
    "template_version_id": UUID,
    "template_name": STR,
    "workspace_id": (UUID, NULL),
    "workspace_name": STR,
    "initial_prompt": STR,
    "status": STR,
    "current_state": (TASK_STATE, NULL),
    "created_at": TIME,
    "updated_at": TIME,
}
TASK_LIST = {"tasks": [TASK], "count": INT}
TASK_LOGS = {"logs": [{"id": INT, "content": STR, "type": STR, "time": TIME}]}
ERROR = {"message": STR, "detail": STR, "validations": list}
PAUSE = {"workspace_build_id": UUID}

TASK_STATUSES = {"pending", "initializing", "active", "paused", "unknown", "error"}
TASK_STATES = {"working", "idle", "complete", "failed"}

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _one(value: Any, shape: Any, where: str) -> str | None:
    """Why `value` is not of `shape`, or None."""
    if isinstance(shape, tuple):
        reasons = [_one(value, s, where) for s in shape]
        return None if None in reasons else next(r for r in reasons if r)
    if shape == NULL:
        return None if value is None else f"{where}: {value!r} is not null"
    if shape in (STR, UUID, TIME):
        if not isinstance(value, str):
            return f"{where}: {value!r} is not a string"
        if shape == UUID:
            try:
                uuid.UUID(value)
            except ValueError:
                return f"{where}: {value!r} is not a UUID"
        if shape == TIME:
            if not _TIME.fullmatch(value):
                return f"{where}: {value!r} is not an RFC 3339 time"
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        return None
    if shape == INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{where}: {value!r} is not an integer"
    if shape == BOOL:
        return None if isinstance(value, bool) else f"{where}: {value!r} is not a boolean"
    if shape in (dict, list):
        return None if isinstance(value, shape) else f"{where}: {value!r} is not a {shape}"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where}: {value!r} is not an array"
        for i, item in enumerate(value):
            reason = _one(item, shape[0], f"{where}[{i}]")
            if reason:
                return reason
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where}: {value!r} is not an object"
        for key, inner in shape.items():
            if key not in value:
                return f"{where}: no key {key!r} (has {sorted(value)})"
            reason = _one(value[key], inner, f"{where}.{key}")
            if reason:
                return reason
        return None
    raise AssertionError(f"unknown shape {shape!r}")


def check_shape(value: Any, shape: Any, what: str = "$") -> None:
    """Fail with the first place `value` departs from `shape`."""
    reason = _one(value, shape, what)
    assert reason is None, reason
