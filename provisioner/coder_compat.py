"""Coder's Tasks API in Dockyard's terms: stable ids, the status mapping and query filters.

Pure: no I/O. The routes in provisioner/server/coder/ use it; docs/coder-migration.md
documents the same mapping.
"""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass

# Coder's ids are UUIDs; Dockyard's templates, versions and presets are names and content
# hashes. Each gets a UUIDv5 of what names it, so the same template version has the same
# id on every server start, on every server, with nothing stored.
NAMESPACE = uuid.UUID("6f1c2f52-7d0e-4c4a-9a43-1f3b0f2e9d11")
ME = "me"
DEFAULT_ORGANIZATION = "default"


def stable_id(kind: str, *parts: str) -> str:
    """A UUIDv5 of `kind` and its naming parts (NUL-separated: no two tuples collide)."""
    return str(uuid.uuid5(NAMESPACE, "\0".join((kind, *parts))))


def organization_id() -> str:
    return stable_id("organization", DEFAULT_ORGANIZATION)


def template_id(name: str) -> str:
    return stable_id("template", name)


def version_id(template: str, version: str) -> str:
    return stable_id("template-version", template, version)


def preset_id(template: str, version: str, preset: str) -> str:
    return stable_id("preset", template, version, preset)


def user_id(name: str) -> str:
    return stable_id("user", name)


def workspace_id(task_id: str) -> str:
    return stable_id("workspace", task_id)


def as_uuid(text: str) -> str | None:
    """`text` as a canonical UUID string, or None when it is not one."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        return None


# Coder's task statuses (codersdk.TaskStatus) and agent states (codersdk.TaskState)
CODER_STATUSES = ("pending", "initializing", "active", "paused", "unknown", "error")
CODER_STATES = ("working", "idle", "complete", "failed")

# Dockyard status -> Coder status. A terminal task's workspace is stopped (paused, in
# Coder's words); its state says how it ended.
_STATUS = {
    "backlog": "pending",
    "pending": "pending",
    "claimed": "pending",
    "offered": "pending",
    "initializing": "initializing",
    "active": "active",
    "paused": "paused",
    "error": "error",
    "completed": "paused",
    "failed": "error",
    "cancelled": "paused",
}
# Dockyard status -> Coder state where the status decides it (else: the agent's state)
_STATE = {
    "initializing": "working",
    "paused": "idle",
    "error": "idle",
    "completed": "complete",
    "failed": "failed",
    "cancelled": "idle",
}
# the agent's states in Dockyard -> Coder's (a question waits for input: idle)
_AGENT_STATE = {"working": "working", "idle": "idle", "input_required": "idle"}


def coder_status(status: str) -> str:
    """Coder's status of a task in Dockyard `status` ("unknown" for anything new)."""
    return _STATUS.get(status, "unknown")


def coder_state(status: str, state: str | None) -> str | None:
    """Coder's `current_state.state`, or None (no state yet: `current_state` is null)."""
    if status in _STATE:
        return _STATE[status]
    if status == "active":
        return _AGENT_STATE.get(state or "", "working")
    return None


def dockyard_statuses(coder: str) -> list[str]:
    """The Dockyard statuses a Coder status filter means (empty for an unknown one)."""
    return sorted(s for s, c in _STATUS.items() if c == coder)


class QueryError(ValueError):
    """A `q=` filter that cannot be read."""


_KEY = re.compile(r"[a-z][a-z_-]{0,31}")


def parse_query(q: str | None) -> dict[str, str]:
    """Coder's search query (`owner:"me" status:active has-ai-task:true`) as {key: value}.

    Words without a key are kept under "name" (Coder's default search field)."""
    if not q or not q.strip():
        return {}
    try:
        words = shlex.split(q, posix=True)
    except ValueError as exc:
        raise QueryError(f"Cannot read the query {q[:100]!r}: {exc}") from None
    found: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition(":")
        if not sep:
            key, value = "name", word
        key = key.strip().lower()
        if not _KEY.fullmatch(key):
            raise QueryError(f"Unknown query key {key[:40]!r} in {q[:100]!r}")
        found[key] = value.strip().strip('"')
    return found


@dataclass(frozen=True)
class TemplateFilter:
    """What `GET /api/v2/templates?q=` keeps."""

    exact_name: str | None = None
    name: str | None = None  # a substring, case-insensitive
    has_ai_task: bool | None = None
    deprecated: bool | None = None

    def keeps(self, name: str, display_name: str, has_ai_task: bool = True) -> bool:
        if self.exact_name is not None and name.lower() != self.exact_name.lower():
            return False
        if self.name is not None:
            needle = self.name.lower()
            if needle not in name.lower() and needle not in display_name.lower():
                return False
        if self.has_ai_task is not None and has_ai_task != self.has_ai_task:
            return False
        return not self.deprecated  # Dockyard templates are never deprecated


def _boolean(key: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise QueryError(f"{key} takes true or false, not {value[:40]!r}")


def template_filter(q: str | None) -> TemplateFilter:
    """The template filter of a `q=` query; keys Coder knows that mean nothing here
    (organization, authorized_user...) are accepted and ignored."""
    found = parse_query(q)
    ai = found.get("has-ai-task", found.get("has_ai_task"))
    deprecated = found.get("deprecated")
    return TemplateFilter(
        exact_name=found.get("exact_name"),
        name=found.get("name"),
        has_ai_task=_boolean("has-ai-task", ai) if ai is not None else None,
        deprecated=_boolean("deprecated", deprecated) if deprecated is not None else None,
    )


@dataclass(frozen=True)
class TaskFilter:
    """What `GET /api/v2/tasks?q=` keeps."""

    owner: str | None = None  # a user name, "me", or None: the caller's own
    statuses: tuple[str, ...] | None = None  # Dockyard statuses; None: any


def task_filter(q: str | None) -> TaskFilter:
    """The task filter of a `q=` query (`owner:"me" status:"active"`)."""
    found = parse_query(q)
    statuses: tuple[str, ...] | None = None
    if "status" in found:
        wanted = found["status"].lower()
        if wanted not in CODER_STATUSES:
            raise QueryError(
                f"Unknown task status {wanted[:40]!r} (one of: {', '.join(CODER_STATUSES)})"
            )
        statuses = tuple(dockyard_statuses(wanted))
    return TaskFilter(owner=found.get("owner"), statuses=statuses)
