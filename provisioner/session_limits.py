"""Interactive sessions into workspaces (`task exec`/`task shell` streams and
`task port-forward` connections): how many may be open at once, per task and per user,
and which tasks have one open now (pure: a lock and counters, no I/O).

Why a bound: each session holds a thread reading its output and a connection to the
workspace; a script opening shells in a loop would otherwise exhaust the server. Why the
open sessions matter to the engine: a shell is its user working in the workspace, so a
task with one open is not idle (no idle auto-pause), and its idle clock starts again when
the last one closes.

The counts are of this server process: with several servers sharing a database each
holds its own (the bound is per server; see docs/workspace-access.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from provisioner.errors import TooManySessions

DEFAULT_PER_TASK = 8
DEFAULT_PER_USER = 32
MAX_LIMIT = 10_000
KINDS = ("exec", "port-forward", "preview")


class SessionLimitError(ValueError):
    """A `sessions:` section of config.yaml that is not valid."""


@dataclass(frozen=True)
class SessionLimits:
    per_task: int = DEFAULT_PER_TASK
    per_user: int = DEFAULT_PER_USER


def parse_settings(section: Any, where: str) -> SessionLimits:
    """config.yaml's `sessions: {per_task, per_user}` (absent: the defaults)."""
    if section is None:
        return SessionLimits()
    if not isinstance(section, dict):
        raise SessionLimitError(f"{where} must be a mapping, e.g. {{per_task: 8, per_user: 32}}")
    unknown = set(section) - {"per_task", "per_user"}
    if unknown:
        raise SessionLimitError(f"{where}: unknown keys {sorted(unknown)} (per_task, per_user)")
    values = []
    for key, default in (("per_task", DEFAULT_PER_TASK), ("per_user", DEFAULT_PER_USER)):
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
            raise SessionLimitError(
                f"{where}.{key} must be a whole number 1-{MAX_LIMIT}, got {value!r}"
            )
        values.append(value)
    return SessionLimits(per_task=values[0], per_user=values[1])


HINT = (
    "close a session of yours (an open `task shell`, `task exec` or `task port-forward`), "
    "or have the server's admin raise `sessions: {{per_task: N, per_user: N}}` in "
    "config.yaml (now {per_task} and {per_user})"
)


def refusal(
    limits: SessionLimits, task_name: str, user: str, task_open: int, user_open: int
) -> TooManySessions | None:
    """Why one more session may not open (None: it may)."""
    hint = HINT.format(per_task=limits.per_task, per_user=limits.per_user)
    if task_open >= limits.per_task:
        return TooManySessions(
            f"Task {task_name} already has {task_open} open sessions, the most a task may "
            f"have at once (sessions.per_task = {limits.per_task})",
            hint=hint,
        )
    if user_open >= limits.per_user:
        return TooManySessions(
            f"{user} already has {user_open} open sessions, the most a user may have at "
            f"once (sessions.per_user = {limits.per_user})",
            hint=hint,
        )
    return None


class OpenSessions:
    """The sessions open now in this process, per task and per user, and when each task's
    last one closed (the idle clock's new start)."""

    def __init__(self, limits: SessionLimits | None = None, clock: Any = time.time) -> None:
        self.limits = limits or SessionLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}
        self._users: dict[str, int] = {}
        self._closed_at: dict[str, float] = {}

    def acquire(self, task_id: str, task_name: str, user: str) -> None:
        """Count one more session, or raise TooManySessions (nothing counted)."""
        with self._lock:
            refused = refusal(
                self.limits,
                task_name,
                user,
                self._tasks.get(task_id, 0),
                self._users.get(user, 0),
            )
            if refused is not None:
                raise refused
            self._tasks[task_id] = self._tasks.get(task_id, 0) + 1
            self._users[user] = self._users.get(user, 0) + 1

    def release(self, task_id: str, user: str) -> None:
        with self._lock:
            for counts, key in ((self._tasks, task_id), (self._users, user)):
                left = counts.get(key, 0) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)
            if task_id not in self._tasks:
                self._closed_at[task_id] = self._clock()

    @contextmanager
    def held(self, task_id: str, task_name: str, user: str) -> Iterator[None]:
        """One session for the block; released however it ends (a client killed too)."""
        self.acquire(task_id, task_name, user)
        try:
            yield
        finally:
            self.release(task_id, user)

    def open_for(self, task_id: str) -> int:
        with self._lock:
            return self._tasks.get(task_id, 0)

    def open_for_user(self, user: str) -> int:
        with self._lock:
            return self._users.get(user, 0)

    def last_closed(self, task_id: str) -> float | None:
        """Epoch seconds when the task's last session closed (None: none closed here)."""
        with self._lock:
            return self._closed_at.get(task_id)

    def forget(self, task_id: str) -> None:
        """A deleted task's bookkeeping goes (its sessions, if any, end with it)."""
        with self._lock:
            self._closed_at.pop(task_id, None)


def idle_since(state_changed_at: float, last_closed: float | None) -> float:
    """When the idle clock started: the later of the agent going idle and the task's
    last session closing."""
    return max(state_changed_at, last_closed or 0.0)
