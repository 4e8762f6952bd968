"""Retention, pure: how long a finished task's stopped workspace is kept, and which are due
for removal. The engine's reconcile pass removes those (their logs and history stay).

`retention` is `keep` (the default: never removed by Dockyard) or a duration such as `24h`,
counted from when the task finished; a template's `lifecycle.retention` wins over the
server's default (`retention:` in config.yaml or DOCKYARD_RETENTION).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisioner.durations import KEEP, parse_retention
from provisioner.errors import ParameterError
from provisioner.lifecycle import TERMINAL
from provisioner.model import Task, parse_time


def removed(task: Task) -> bool:
    """Whether retention already removed the task's workspace."""
    return bool((task.workspace or {}).get("removed_at"))


@dataclass(frozen=True)
class Due:
    """A finished task whose workspace is to be removed now, and its rule."""

    task: Task
    retention: str  # as configured, e.g. 24h


def _removal_time(task: Task, default: str | None) -> tuple[datetime, str] | None:
    """When the task's workspace is due for removal, and its rule; None when never (kept,
    removed already, never started, or not finished)."""
    if task.status not in TERMINAL or not task.finished_at or not task.phases:
        return None
    if removed(task):
        return None
    rule = task.policy.get("retention") or default or KEEP
    try:
        seconds = parse_retention(rule)
    except ParameterError:
        return None  # checked when the template and the server were loaded
    if seconds is None:
        return None
    return parse_time(task.finished_at) + timedelta(seconds=seconds), str(rule)


def due_for_removal(tasks: Iterable[Task], now: datetime, default: str | None) -> list[Due]:
    """Finished tasks that had a workspace (they started at least once), not removed yet,
    finished at least their retention ago. A task's retention is its template's
    (pinned in its policy), else `default` (the server's); unparsable values keep."""
    due = []
    for task in tasks:
        when = _removal_time(task, default)
        if when is not None and when[0] <= now:
            due.append(Due(task, when[1]))
    return due


def next_removal(tasks: Iterable[Task], now: datetime, default: str | None) -> datetime | None:
    """The earliest time after `now` at which one of these tasks' workspaces falls due;
    None when none will (the engine need not look at finished tasks again until one
    more finishes)."""
    later = [
        when[0]
        for when in (_removal_time(t, default) for t in tasks)
        if when is not None and when[0] > now
    ]
    return min(later, default=None)


# A branch git failed to keep is tried again this much later (times the failures so
# far), its workspace left as it is; after KEEP_TRIES failures the workspace goes anyway.
KEEP_RETRY_S = 300.0
KEEP_TRIES = 3


def retry_keep_in(failures: int) -> float | None:
    """After `failures` failed keeps of one task's branch: seconds until retention tries
    again (its workspace stays meanwhile), or None: remove the workspace anyway, since a
    branch git can never bundle (a damaged repository) must not hold a disk forever."""
    if failures < KEEP_TRIES:
        return KEEP_RETRY_S * max(failures, 1)
    return None
