"""What the API answers with, as pydantic models, so the OpenAPI document describes every
field of a task (the engine's Task dataclass stays the one definition: the model is made
from it, minus the private fields, and a field added there shows here by itself)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from provisioner.model import PRIVATE_FIELDS, Task

# what each field means, for readers of the OpenAPI document (docs/queue.md has more)
FIELD_DOCS = {
    "id": "The task's id (a UUID)",
    "name": "Its name, unique per owner",
    "owner": "The user it belongs to",
    "status": "backlog, pending, initializing, active, paused, error, completed, failed or "
    "cancelled",
    "state": "While active: working, idle or input_required",
    "phase": "While initializing: image, create, start, setup or agent",
    "message": "What it is doing or waiting for, in words",
    "priority": "0-100, higher starts first",
    "title": "A short title (the prompt's first line unless given)",
    "tags": "Labels",
    "source": "Where it came from (cli, api, cron, webhook...), set by the server",
    "schedule_id": "The schedule that made it (source: cron)",
    "depends_on": "Ids of tasks that must complete first",
    "blocked": "True while a pending task waits for its dependencies (no place in line)",
    "action": "How it entered the queue: queue, interrupt, backlog, parallel or sprint",
    "outcome": "SUCCESS, FAILED, SKIPPED or CANCELLED, once reported",
    "error_class": "Why it failed: TRANSIENT, PERMANENT, DEPENDENCY, POLICY, TIMEOUT, UNKNOWN",
    "progress": "The latest progress note",
    "question": "What the agent asked, while it waits for an answer",
    "tokens_in": "Input tokens spent, over every turn and attempt",
    "tokens_out": "Output tokens spent, over every turn and attempt",
    "cost_usd": "Dollars spent, over every turn and attempt",
    "attempt": "Which attempt this is (1 unless retried)",
    "retries": "Automatic retries allowed after TRANSIENT and TIMEOUT errors",
    "retry_at": "When the next automatic retry starts, while the task waits in error",
}


def _task_model() -> type[BaseModel]:
    hints = typing.get_type_hints(Task)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(description=FIELD_DOCS.get(f.name)))
        for f in dataclasses.fields(Task)
        if f.name not in PRIVATE_FIELDS
    }
    # extra="allow": a field a newer engine adds is passed on, never silently dropped
    return create_model("Task", __config__=ConfigDict(extra="allow"), **fields)


TaskView = _task_model()


class TaskList(BaseModel):
    """GET /api/v2/tasks."""

    tasks: list[TaskView]  # type: ignore[valid-type]


class EpicTask(BaseModel):
    """One task of an epic, as `GET /api/v2/epics/{name}` shows it."""

    id: str
    name: str
    owner: str
    title: str
    status: str
    priority: int
    action: str
    progress: str | None = Field(description="Its latest progress note")
    message: str
    depends_on: list[str] = Field(description="Names of the tasks it runs after")
    tokens_in: int
    tokens_out: int
    cost_usd: float


class EpicView(BaseModel):
    """GET /api/v2/epics/{name}: the epic's tasks in the order they run (dependencies
    first, then oldest), its progress and its total cost."""

    name: str
    tasks: list[EpicTask]
    completed: int
    total: int
    progress: str = Field(description="`n of m completed`")
    tokens_in: int
    tokens_out: int
    cost_usd: float
