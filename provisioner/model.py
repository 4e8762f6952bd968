"""The task record as the engine and the API see it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner.lifecycle import Status


def utcnow() -> str:
    """Now, as an ISO 8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse a timestamp written by utcnow()."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def slug_from_prompt(prompt: str, max_len: int = 32) -> str:
    """A readable name stem from the first words of a prompt."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    stem = ""
    for word in words:
        candidate = f"{stem}-{word}" if stem else word
        if len(candidate) > max_len:
            break
        stem = candidate
    return stem or "task"


# use with fullmatch: `$` would also take a name ending in a newline
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# the owner of warm-pool members until a claim gives them a user (no user has this name)
POOL_OWNER = "@pool"


@dataclass
class Task:
    """One task: a prompt, the workspace it runs in, and where it is in its life."""

    id: str
    name: str
    display_name: str
    owner: str
    template: str
    template_version: str
    preset: str | None
    parameters: dict[str, Any]
    resolved: dict[str, Any]
    prompt: str
    status: Status
    bridge_token: str
    created_at: str
    updated_at: str
    priority: int = 0
    state: str | None = None
    phase: str | None = None
    message: str = ""
    error_class: str | None = None
    workspace: dict[str, Any] | None = field(default=None)
    policy: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    state_changed_at: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    kind: str = "task"  # "pool": a warm workspace waiting to be claimed by a task
    queued_at: str | None = None  # when a resume began waiting for capacity

    def public(self) -> dict[str, Any]:
        """The task as the API shows it: no token, no unredacted parameters."""
        data = asdict(self)
        for private in ("bridge_token", "resolved", "lease_owner", "lease_until"):
            data.pop(private)
        data["status"] = self.status.value
        return data
