"""Coder's task routes: list, create, show, delete, send, input, logs, pause, resume.

`{user}` is `me`, a user name or a user's Coder id; `{task}` a task's id or name. A
member reaches only their own tasks: another user's are not found (404), as in
Dockyard's own API. Every act goes through the engine, so it is an event like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from provisioner import coder_compat as cc
from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import Forbidden, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import QueueFields, Task
from provisioner.prompts import check_prompt, check_strings
from provisioner.server.auth import caller
from provisioner.server.coder.catalog import Versions
from provisioner.server.coder.views import task_json
from provisioner.store.first_input import replace_first_input

Route = tuple[str, str, Callable[..., Any], int]

# bounds of a task's name and display name (Dockyard's name rules apply after)
MAX_NAME, MAX_DISPLAY_NAME = 64, 128
# the most log entries one GET .../logs returns, from the first (Coder has no paging;
# Dockyard's own GET /api/dockyard/v1/tasks/{ref}/logs?after= pages through all of them)
MAX_LOG_ENTRIES = 20000


class CreateTaskRequest(BaseModel):
    """codersdk.CreateTaskRequest."""

    model_config = ConfigDict(extra="ignore")  # Coder's clients may send fields we lack

    template_version_id: str = Field(max_length=64)
    template_version_preset_id: str | None = Field(None, max_length=64)
    input: str
    name: str | None = Field(None, max_length=MAX_NAME)
    display_name: str | None = Field(None, max_length=MAX_DISPLAY_NAME)


class TaskInput(BaseModel):
    """codersdk.TaskSendRequest and codersdk.UpdateTaskInputRequest."""

    model_config = ConfigDict(extra="ignore")

    input: str


def _not_found(user: str, ref: str) -> TaskNotFound:
    return TaskNotFound(
        f"Task {ref[:80]!r} of {user[:40]!r} not found",
        hint="list your tasks with: GET /api/v2/tasks",
    )


def task_routes(engine: Engine) -> list[Route]:
    """The routes, bound to one engine (paths below the /api/v2 or /api/experimental
    prefix)."""
    store = engine.store
    versions = Versions(engine)

    def owner_of(who: Principal, user: str) -> str:
        """The user name `{user}` means; a member naming anyone else finds nothing."""
        if user == cc.ME or user == who.user or cc.as_uuid(user) == cc.user_id(who.user):
            return who.user
        if not who.is_admin:
            raise TaskNotFound(f"No user {user[:40]!r}", hint="use `me` for yourself")
        if store.user(user) is not None:
            return user
        wanted = cc.as_uuid(user)
        for row in store.users():
            if wanted is not None and cc.user_id(row["name"]) == wanted:
                return str(row["name"])
        raise TaskNotFound(f"No user {user[:40]!r}", hint="use `me` for yourself")

    def find(who: Principal, user: str, ref: str, act: str | None = None) -> Task:
        owner = owner_of(who, user)
        if len(ref) > 128:
            raise _not_found(user, ref)
        try:
            task = store.get(ref, owner=owner)
        except TaskNotFound:
            raise _not_found(user, ref) from None
        if act is not None and task.owner != who.user:
            store.record_audit(who.actor, act, f"{task.owner}/{task.name}", task.id)
        return task

    def list_tasks(
        q: str | None = Query(None, max_length=512), who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        wanted = cc.task_filter(q)
        statuses = [Status(s) for s in wanted.statuses] if wanted.statuses is not None else None
        owner: str | None
        if wanted.owner in (None, ""):
            owner = None if who.is_admin else who.user
        else:
            try:
                owner = owner_of(who, str(wanted.owner))
            except TaskNotFound:
                return {"tasks": [], "count": 0}  # Coder: nobody's tasks to see
        if statuses == []:
            return {"tasks": [], "count": 0}
        found = [task_json(t) for t in store.list_tasks(statuses, owner=owner)]
        return {"tasks": found, "count": len(found)}

    def create_task(
        user: str, body: CreateTaskRequest, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        check_strings(body.model_dump(), "body")
        prompt = check_prompt(body.input, "the input")
        if user == cc.ME or user == who.user or cc.as_uuid(user) == cc.user_id(who.user):
            owner = who.user
        elif not who.is_admin:
            raise Forbidden("Only an admin may create tasks for another user")
        else:
            owner = owner_of(who, user)
        tpl, _, _ = versions.version(body.template_version_id)
        preset = None
        if body.template_version_preset_id:
            wanted = cc.as_uuid(body.template_version_preset_id)
            preset = next(
                (
                    p.name
                    for p in tpl.presets.values()
                    if cc.preset_id(tpl.name, tpl.version, p.name) == wanted
                ),
                None,
            )
            if preset is None:
                raise ParameterError(
                    f"Template version has no preset {body.template_version_preset_id!r}",
                    hint="list them with: GET /api/v2/templateversions/{id}/presets",
                )
        task = engine.create_task(
            owner=owner,
            actor=who.actor,
            queue=QueueFields(title=body.display_name, source="api"),
            template=tpl.name,
            preset=preset,
            prompt=prompt,
            parameters={},
            name=body.name or None,
            template_version=tpl.version,
        )
        if owner != who.user:
            store.record_audit(who.actor, "task.create", f"{owner}/{task.name}", task.id)
        return task_json(task)

    def get_task(user: str, task: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return task_json(find(who, user, task))

    def delete_task(user: str, task: str, who: Principal = Depends(caller)) -> Response:
        found = find(who, user, task, "task.delete")
        engine.delete(found.id, actor=who.actor)
        return Response(status_code=202)

    def send(
        user: str,
        task: str,
        body: TaskInput,
        resume: bool = Query(True, description="Resume a paused task to take it"),
        who: Principal = Depends(caller),
    ) -> Response:
        text = check_prompt(body.input, "the input")
        found = find(who, user, task, "task.send")
        status = found.status
        if not resume and status in (Status.PAUSED, Status.PENDING, Status.INITIALIZING):
            raise TaskConflict(
                f"Task {found.name} is {status.value}: it cannot take input now",
                hint="send without resume=false to have it queued (and resumed), or "
                "wait until it is active",
            )
        engine.send(found.id, text, actor=who.actor)
        return Response(status_code=204)

    def update_input(
        user: str, task: str, body: TaskInput, who: Principal = Depends(caller)
    ) -> Response:
        text = check_prompt(body.input, "the input")
        found = find(who, user, task, "task.input")
        if not replace_first_input(store, found.id, text, actor=who.actor):
            raise TaskConflict(
                f"Task {found.name} has started: its first input can no longer change",
                hint="send a follow-up instead: POST .../send",
            )
        return Response(status_code=204)

    def logs(user: str, task: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        found = find(who, user, task)
        rows = store.log_rows(found.id, 0, MAX_LOG_ENTRIES)
        # (id, seq, type, content, time, prompt_id, source, delivery); system lines
        # (provisioning) are output to Coder, which knows only input and output
        entries = [
            {
                "id": row[0],
                "content": row[3],
                "type": "input" if row[2] == "input" else "output",
                "time": row[4],
            }
            for row in rows
        ]
        return {"logs": entries}

    def pause(user: str, task: str, who: Principal = Depends(caller)) -> Response:
        found = find(who, user, task, "task.pause")
        engine.pause(found.id, actor=who.actor)
        return _build_answer(found)

    def resume_task(user: str, task: str, who: Principal = Depends(caller)) -> Response:
        found = find(who, user, task, "task.resume")
        engine.resume(found.id, actor=who.actor)
        return _build_answer(found)

    return [
        ("GET", "/tasks", list_tasks, 200),
        ("POST", "/tasks/{user}", create_task, 201),
        ("GET", "/tasks/{user}/{task}", get_task, 200),
        ("DELETE", "/tasks/{user}/{task}", delete_task, 202),
        ("POST", "/tasks/{user}/{task}/send", send, 204),
        ("PATCH", "/tasks/{user}/{task}/input", update_input, 204),
        ("GET", "/tasks/{user}/{task}/logs", logs, 200),
        ("POST", "/tasks/{user}/{task}/pause", pause, 202),
        ("POST", "/tasks/{user}/{task}/resume", resume_task, 202),
    ]


def _build_answer(task: Task) -> Response:
    """codersdk.PauseTaskResponse (and resume's): the build that stops or starts it."""
    build = cc.stable_id("workspace-build", task.id, str(task.updated_at))
    body = json.dumps({"workspace_build_id": build})
    return Response(body, status_code=202, media_type="application/json")
