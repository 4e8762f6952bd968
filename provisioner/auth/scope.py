"""What a task's own token may reach (pure, no I/O).

A task's token (Principal.task_id set) is the credential behind the in-workspace MCP
relay: it acts as the task's owner, but only on that task and the tasks it created
(created_by `task:ID`), and only through the routes an agent needs to fan work out and
wait on it. Everything else (users, tokens, webhooks, workers and claims, the queue
views, drain, A2A, admin acts) is refused with a 403 before routing, so no route added
later can be reached by a task's token unless it is listed here.
"""

from __future__ import annotations

import re
from typing import Protocol

from provisioner.auth.tokens import Principal

_REF = r"[^/]+"
# Dockyard's own API (server/prefixes.py). Its /api/v2 aliases and Coder's surface there
# and at /api/experimental are closed to task tokens: that surface does not know scopes
_API = "/api/dockyard/v1"
# (method, path) a task's token may call; everything else is a 403
_ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (method, re.compile(pattern.replace("/api/v2", _API)))
    for method, pattern in (
        # the MCP client's session (GET: its event stream, DELETE: its end) as well
        ("POST", r"/mcp"),
        ("GET", r"/mcp"),
        ("DELETE", r"/mcp"),
        ("GET", r"/api/v2/health"),
        ("GET", r"/api/v2/me"),
        ("GET", r"/api/v2/templates"),
        ("GET", rf"/api/v2/templates/{_REF}(/presets|/versions)?"),
        ("GET", r"/api/v2/presets"),
        ("GET", r"/api/v2/targets"),
        ("POST", r"/api/v2/tasks"),
        ("GET", r"/api/v2/tasks"),
        ("GET", rf"/api/v2/tasks/{_REF}(/events|/logs|/prompts|/prompts/{_REF})?"),
        ("PATCH", rf"/api/v2/tasks/{_REF}"),
        ("DELETE", rf"/api/v2/tasks/{_REF}"),
        ("POST", rf"/api/v2/tasks/{_REF}/(send|pause|resume|complete|progress|retry|promote)"),
    )
)

REFUSAL = (
    "A task's token acts only on its task and the tasks it creates: create, read, steer "
    "and complete them (the routes of /mcp and /api/dockyard/v1/tasks)"
)
REFUSAL_HINT = "use a user's API token for anything else (dockyard token create)"


class HasCreator(Protocol):
    id: str
    created_by: str | None


def task_may_call(method: str, path: str) -> bool:
    """Whether a task's token may call `method path` (the path without its query)."""
    path = path.rstrip("/") or "/"
    return any(m == method and p.fullmatch(path) for m, p in _ALLOWED)


def creator_of(task_id: str) -> str:
    """The created_by of a task that the task `task_id` created with its token."""
    return f"task:{task_id}"


def in_scope(who: Principal, task: HasCreator) -> bool:
    """Whether `who` may see `task` as far as a task's token goes (any other caller: yes;
    owners and roles are checked apart)."""
    if who.task_id is None:
        return True
    return task.id == who.task_id or task.created_by == creator_of(who.task_id)
