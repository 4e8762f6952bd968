"""When finished tasks' workspaces fall due for removal (the pure part of retention)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.retention import due_for_removal, next_removal

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def finished(name: str, ago_s: float, rule: str | None = None, **fields: object) -> Task:
    stamp = NOW.isoformat()
    task = Task(
        id=name, name=name, display_name=name, owner="ann", template="scripted",
        template_version="v1", preset=None, parameters={}, resolved={}, prompt="p",
        status=Status.COMPLETED, bridge_token="", created_at=stamp, updated_at=stamp,
    )  # fmt: skip
    task.finished_at = (NOW - timedelta(seconds=ago_s)).isoformat()
    task.phases = [{"name": "create"}]
    if rule:
        task.policy = {"retention": rule}
    for key, value in fields.items():
        setattr(task, key, value)
    return task


def test_the_next_removal_is_the_earliest_still_to_come() -> None:
    tasks = [
        finished("a", 10, "1m"),  # due in 50 s
        finished("b", 10, "30s"),  # due in 20 s
        finished("c", 120, "1m"),  # due already: not "to come"
        finished("d", 10, "keep"),
    ]
    assert next_removal(tasks, NOW, None) == NOW + timedelta(seconds=20)
    assert [d.task.name for d in due_for_removal(tasks, NOW, None)] == ["c"]


def test_no_next_removal_when_everything_is_kept_or_gone() -> None:
    tasks = [
        finished("kept", 10),  # no rule and no server default: kept
        finished("gone", 10, "1s", workspace={"removed_at": NOW.isoformat()}),
        finished("never-started", 10, "1s", phases=[]),
    ]
    assert next_removal(tasks, NOW, None) is None
    # the server's default applies to the one without a rule of its own
    assert next_removal(tasks, NOW, "1m") == NOW + timedelta(seconds=50)
