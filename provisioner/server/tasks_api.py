"""/api/v2 routes of tasks: create, list, show (long-poll), events, logs, prompts, send,
pause, resume and delete. Members see only their own tasks (find_task)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from provisioner.auth.scope import in_scope
from provisioner.auth.tokens import Principal
from provisioner.bridge.runtime.wire import DELIVERED, QUEUED
from provisioner.engine.engine import Engine
from provisioner.errors import Forbidden, ParameterError, TaskNotFound, TemplateError
from provisioner.lifecycle import Status
from provisioner.model import QueueFields, Task
from provisioner.prompts import check_strings
from provisioner.queueing import (
    DEFAULT_PRIORITY,
    MAX_DEPENDENCIES,
    MAX_RETRIES,
    MAX_TAGS,
    check_label,
    parse_completion,
)
from provisioner.server import inputs
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES, MAX_ROW_ID
from provisioner.server.logjson import entries_json, page_json
from provisioner.server.views import EpicView, TaskList, TaskView
from provisioner.server.waiting import MAX_WAIT, wait_for
from provisioner.store.store import Store


class CreateTask(BaseModel):
    """Body of POST /api/v2/tasks."""

    template: str | None = Field(
        None, description="Template name (may be left out when `target` names a route)"
    )
    preset: str | None = Field(None, description="Preset name; the default preset if absent")
    prompt: str = Field(description="The task's first input to the agent")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Overrides")
    name: str | None = Field(None, description="Task name; derived from the prompt if absent")
    template_version: str | None = Field(
        None, description="A stored version (hash, prefix or label); the active one if absent"
    )
    owner: str | None = Field(
        None, description="Create it for this user (admins only); the caller if absent"
    )
    title: str | None = Field(None, description="Short title; the prompt's first line if absent")
    priority: int | str = Field(
        DEFAULT_PRIORITY, description="0-100 (higher first) or low, normal, high (25/50/75)"
    )
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    task_type: str | None = Field(None, description="Free: bug, feature, review...")
    epic: str | None = Field(None, description="A name grouping tasks")
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="Task refs (names or ids) that must complete first",
    )
    on_dependency_failure: Literal["fail", "wait"] = Field(
        "fail", description="When a dependency fails or is cancelled: fail too, or keep waiting"
    )
    action: Literal["queue", "interrupt", "backlog", "parallel", "sprint"] = Field(
        "queue", description="How it enters the queue"
    )
    target: str | None = Field(None, description="A named route of the server's config")
    codebase: str | None = Field(None, description="Route to the target serving this codebase")
    parent: str | None = Field(None, description="Fork from this task (its disk and session)")
    offer_to: str | None = Field(
        None, description="Offer it (a queue-only task) to this registered worker"
    )
    retries: int | None = Field(
        None,
        ge=0,
        le=MAX_RETRIES,
        strict=True,  # `true` is not 1 retry
        description="Automatic retries on TRANSIENT and TIMEOUT errors (default: the "
        "template's lifecycle.retries)",
    )


class CompleteTask(BaseModel):
    """Body of POST /api/v2/tasks/{task}/complete."""

    outcome: Literal["SUCCESS", "FAILED", "SKIPPED", "CANCELLED"]
    error_code: str | None = None
    error_class: (
        Literal["TRANSIENT", "PERMANENT", "DEPENDENCY", "POLICY", "TIMEOUT", "UNKNOWN"] | None
    ) = None
    output: str | None = None
    tokens_in: int | None = Field(None, ge=0)
    tokens_out: int | None = Field(None, ge=0)
    cost_usd: float | None = Field(None, ge=0)
    model: str | None = None


class ProgressNote(BaseModel):
    """Body of POST /api/v2/tasks/{task}/progress."""

    note: str = Field(description="What the task has done so far, in a line or two")


class ChangeTask(BaseModel):
    """Body of PATCH /api/v2/tasks/{task}: what may change after creation."""

    model_config = ConfigDict(extra="forbid")

    priority: int | str = Field(description="0-100 (higher first) or low, normal, high (25/50/75)")
    reason: str | None = Field(None, description="Why, for the task's history")


class Promote(BaseModel):
    """Body of POST /api/v2/tasks/{task}/promote (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, description="Why, for the task's history")


class SendInput(BaseModel):
    """Body of POST /api/v2/tasks/{task}/send."""

    input: str = Field(description="The follow-up prompt")


# a prompt is waited on while it is in one of these; the task's status ends the wait too
PROMPT_PENDING = frozenset({QUEUED, DELIVERED})
STOPPED_WAITING = frozenset({Status.PAUSED, Status.ERROR, Status.FAILED, Status.CANCELLED})


def _read_logs(store: Store, task_id: str, after: int, limit: int) -> tuple[str, int | None]:
    """Entries after `after` as a JSON array, and the id of the last one (None: none)."""
    written = store.log_rows_json(task_id, after, limit)
    if written is not None:
        text, ids = written
        return text, ids[-1] if ids else None
    rows = store.log_rows(task_id, after, limit)
    return entries_json(rows), rows[-1][0] if rows else None


async def _wait_for_logs(
    store: Store,
    task_id: str,
    after: int,
    limit: int,
    wait: float,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> tuple[str, int | None]:
    """_read_logs, long-polling up to `wait` s; woken as soon as lines are stored here.
    Other processes sharing the database do not wake us: re-checked every second."""
    return await wait_for(
        store,
        lambda: _read_logs(store, task_id, after, limit),
        lambda page: page[1] is not None,
        wait,
        recheck=LOGS_RECHECK,
        gone=gone,
    )


# a logs long-poll is woken by this process's follower; lines from another server sharing
# the database are found by looking again this often
LOGS_RECHECK = 1.0


def task_etag(public: dict[str, Any]) -> str:
    """A short fingerprint of a task as the API shows it: `since` of a status long-poll."""
    text = json.dumps(public, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _prompt_json(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": p["id"],
        "content": p["content"],
        "state": p["state"],
        "created_at": p["created_at"],
        "delivered_at": p["delivered_at"],
        "taken_at": p["taken_at"],
        "reason": p.get("reason"),  # why it failed
    }


def _logs_page(store: Store, task_id: str, entries: str, last_id: int) -> bytes:
    """GET .../logs as JSON bytes (a flood's page holds thousands of entries)."""
    current = store.get(task_id)
    waiting = store.prompts(task_id)
    rest = {
        "last_id": last_id,
        "status": current.status.value,
        "state": current.state,
        # sent but not yet typed into the agent: not in the transcript yet
        "pending_prompts": [_prompt_json(p) for p in waiting if p["state"] == QUEUED],
    }
    return page_json(entries, rest)


def source_of(request: Request) -> str:
    """Where a request came from, as the task's `source`: the CLI says who it is in its
    User-Agent; anything else is the API. Never taken from the body."""
    agent = request.headers.get("user-agent", "")
    return "cli" if agent.startswith("dockyard-cli/") else "api"


def find_task(store: Store, who: Principal, ref: str) -> Task:
    """The task `ref` names, as `who` may see it: members only their own (others' are
    not found, never forbidden, so their names do not leak); admins their own first,
    then anyone's."""
    if who.task_id is not None:
        # a task's token: its task and the tasks it created; others are not found
        task = store.get(ref, owner=who.user)
        if not in_scope(who, task):
            raise TaskNotFound(f"No task {ref[:80]!r}", hint="list tasks: dockyard task list")
        return task
    if not who.is_admin:
        return store.get(ref, owner=who.user)
    try:
        return store.get(ref, owner=who.user)
    except TaskNotFound:
        return store.get(ref)


def audit_act(store: Store, who: Principal, task: Task, action: str) -> None:
    """Record `action` in the audit log when `who` (an admin) acts on another user's task."""
    if task.owner != who.user:
        store.record_audit(who.actor, action, f"{task.owner}/{task.name}", task.id)


def task_to_act_on(store: Store, who: Principal, ref: str, action: str) -> Task:
    """The task an act names (find_task); an admin acting on another's task is audited."""
    task = find_task(store, who, ref)
    audit_act(store, who, task, action)
    return task


def check_scoped_refs(store: Store, who: Principal, refs: list[str | None]) -> None:
    """A task's token names only tasks in its scope as a new task's parent or
    dependencies (any other name is unknown to it, as everywhere)."""
    if who.task_id is None:
        return
    for ref in refs:
        if ref is None:
            continue
        try:
            find_task(store, who, ref)
        except TaskNotFound:
            raise ParameterError(
                f"Unknown task {ref[:80]!r}: a task's token names only its task and the "
                "tasks it created"
            ) from None


def build_tasks_router(engine: Engine) -> APIRouter:
    """Task routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    @r.post("/tasks", status_code=201, response_model=TaskView)
    def create_task(
        body: CreateTask, request: Request, response: Response, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        prompt = inputs.create_prompt(body)
        check_scoped_refs(store, who, [body.parent, *body.depends_on])
        owner = who.user
        if body.owner is not None and body.owner != who.user:
            if not who.is_admin:
                raise Forbidden("Only an admin may create tasks for another user")
            if store.user(body.owner) is None:
                raise ParameterError(f"No user {body.owner[:40]!r} to own the task")
            owner = body.owner
        queue = QueueFields(
            title=body.title,
            priority=body.priority,  # type: ignore[arg-type]  # checked by parse_priority
            tags=tuple(body.tags),
            task_type=body.task_type,
            epic=body.epic,
            source=source_of(request),
            depends_on=tuple(body.depends_on),
            on_dependency_failure=body.on_dependency_failure,
            action=body.action,
            target=body.target,
            codebase=body.codebase,
            parent=body.parent,
            retries=body.retries,
            offer_to=body.offer_to,
        )
        template, version = body.template, body.template_version
        if template is None and body.parent is not None:
            # a fork runs its parent's template, the version it pinned unless told otherwise
            try:
                parent = store.get(body.parent, owner=owner)
            except TaskNotFound:
                raise ParameterError(
                    f"Unknown parent {body.parent[:80]!r}: no task of yours by that name or id"
                ) from None
            template, version = parent.template, version or parent.template_version
        task = engine.create_task(
            owner=owner,
            actor=who.actor,
            queue=queue,
            template=template,
            preset=body.preset,
            prompt=prompt,
            parameters=body.parameters,
            name=body.name,
            template_version=version,
        )
        if owner != who.user:
            store.record_audit(who.actor, "task.create", f"{owner}/{task.name}", task.id)
        public = task.public()
        # as GET /tasks/{id} tags it: `create --wait` long-polls from here, no GET first
        response.headers["ETag"] = task_etag(public)
        return public

    @r.get("/tasks", response_model=TaskList)
    def list_tasks(
        status: str | None = Query(None, max_length=200),
        all: bool = Query(False, description="Every user's tasks (admins only)"),
        tag: str | None = Query(None, max_length=64),
        target: str | None = Query(None, max_length=64),
        epic: str | None = Query(None, max_length=64),
        owner: str | None = Query(None, max_length=64, description="This user's (admins only)"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        if (all or (owner is not None and owner != who.user)) and not who.is_admin:
            raise Forbidden("Only an admin may list every user's tasks")
        statuses = None
        if status:
            try:
                statuses = [Status(s.strip()) for s in status.split(",")]
            except ValueError as exc:
                valid = ", ".join(s.value for s in Status)
                raise TemplateError(f"Unknown status {status!r} (one of: {valid})") from exc
        if owner is None and not all:
            owner = who.user
        found = store.list_tasks(statuses, owner=owner, tag=tag, target=target, epic=epic)
        return {"tasks": [t.public() for t in found if in_scope(who, t)]}

    @r.get("/tasks/{ref}", response_model=TaskView)
    async def get_task(
        ref: str,
        response: Response,
        wait: float = Query(
            0, ge=0, le=MAX_WAIT, description="Seconds to hold the answer until it differs"
        ),
        since: str | None = Query(
            None,
            max_length=64,
            description="The ETag of the task as last seen: with `wait`, answer once it changed",
        ),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        # the ETag is of the task as shown; a long-poll answers once it is another one
        public = (await run_in_threadpool(find_task, store, who, ref)).public()
        if wait and since is not None and task_etag(public) == since:
            task_id = public["id"]
            public = await wait_for(
                store,
                lambda: store.get(task_id).public(),
                lambda current: task_etag(current) != since,
                wait,
            )
        response.headers["ETag"] = task_etag(public)
        return public

    @r.get("/tasks/{ref}/events")
    def task_events(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = find_task(store, who, ref)
        return {"events": store.events(task.id)}

    @r.get("/tasks/{ref}/logs", response_model=None)
    async def task_logs(
        request: Request,
        ref: str,
        after: int = Query(0, ge=0, le=MAX_ROW_ID),
        wait: float = Query(0, ge=0, le=60),
        limit: int = Query(10000, ge=1, le=100000),
        who: Principal = Depends(caller),
    ) -> Response:
        task = await run_in_threadpool(find_task, store, who, ref)
        entries, last_id = await _wait_for_logs(
            store, task.id, after, limit, wait, request.is_disconnected
        )
        last = after if last_id is None else last_id
        body = await run_in_threadpool(_logs_page, store, task.id, entries, last)
        return Response(body, media_type="application/json")

    @r.get("/tasks/{ref}/prompts")
    def task_prompts(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = find_task(store, who, ref)
        return {"prompts": [_prompt_json(p) for p in store.prompts(task.id)]}

    @r.get("/tasks/{ref}/prompts/{prompt_id}")
    async def task_prompt(
        request: Request,
        ref: str,
        prompt_id: str,
        wait: float = Query(
            0,
            ge=0,
            le=MAX_WAIT,
            description="Seconds to hold the answer while the prompt is queued or delivered "
            "(it ends early when the task is paused, errored, failed or cancelled)",
        ),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        task = await run_in_threadpool(find_task, store, who, ref)

        def read() -> tuple[dict[str, Any] | None, Status]:
            return store.prompt(prompt_id), store.get(task.id).status

        def done(seen: tuple[dict[str, Any] | None, Status]) -> bool:
            prompt, status = seen
            if prompt is None or prompt["task_id"] != task.id:
                return True
            return prompt["state"] not in PROMPT_PENDING or status in STOPPED_WAITING

        prompt, _ = await run_in_threadpool(read)
        if wait and not done((prompt, task.status)):
            prompt, _ = await wait_for(store, read, done, wait, gone=request.is_disconnected)
        if prompt is None or prompt["task_id"] != task.id:
            raise TaskNotFound(f"Task {task.name} has no prompt {prompt_id!r}")
        return _prompt_json(prompt)

    def act_on(who: Principal, ref: str, action: str) -> Task:
        return task_to_act_on(store, who, ref, action)

    @r.post("/tasks/{ref}/send")
    def send(ref: str, body: SendInput, who: Principal = Depends(caller)) -> dict[str, Any]:
        text = inputs.send_input(body)
        task = act_on(who, ref, "task.send")
        return engine.send(task.id, text, actor=who.actor)

    @r.post("/tasks/{ref}/pause", response_model=TaskView)
    def pause(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.pause")
        return engine.pause(task.id, actor=who.actor).public()

    @r.post("/tasks/{ref}/resume", response_model=TaskView)
    def resume(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.resume")
        return engine.resume(task.id, actor=who.actor).public()

    @r.post("/tasks/{ref}/complete", response_model=TaskView)
    def complete(ref: str, body: CompleteTask, who: Principal = Depends(caller)) -> dict[str, Any]:
        for field, value in body.model_dump().items():
            check_strings(value, field)
        completion = parse_completion(body.model_dump())
        try:
            task = act_on(who, ref, "task.complete")
        except TaskNotFound:
            # the holder of a claim ends the queue-only task it claimed
            task = engine.claimable(ref, who.user)
            if task.claimed_by != who.user:
                raise
        return engine.complete(task.id, completion, actor=who.actor).public()

    @r.post("/tasks/{ref}/retry", response_model=TaskView)
    def retry(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Queue a failed or errored task again, at once, as its next attempt."""
        task = act_on(who, ref, "task.retry")
        return engine.retries.retry(task, actor=who.actor).public()

    @r.post("/tasks/{ref}/progress", response_model=TaskView)
    def progress(ref: str, body: ProgressNote, who: Principal = Depends(caller)) -> dict[str, Any]:
        check_strings(body.note, "note")
        task = act_on(who, ref, "task.progress")
        return engine.progress(task.id, body.note, actor=who.actor).public()

    @r.patch("/tasks/{ref}", response_model=TaskView)
    def change(ref: str, body: ChangeTask, who: Principal = Depends(caller)) -> dict[str, Any]:
        check_strings(body.model_dump(), "body")
        task = act_on(who, ref, "task.priority")
        changed = engine.set_priority(task.id, body.priority, actor=who.actor, reason=body.reason)
        return changed.public()

    @r.post("/tasks/{ref}/promote", response_model=TaskView)
    def promote(
        ref: str, body: Promote | None = None, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        reason = body.reason if body is not None else None
        check_strings(reason, "reason")
        task = act_on(who, ref, "task.promote")
        return engine.promote(task.id, actor=who.actor, reason=reason).public()

    @r.get("/epics/{name}", response_model=EpicView)
    def epic(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        check_label(name, "epic")
        # members see their own tasks of the epic; admins everyone's
        return engine.epic(name, None if who.is_admin else who.user)

    @r.get("/events")
    def all_events(
        since: int = Query(0, ge=0, le=MAX_ROW_ID, description="Events after this id"),
        task: str | None = Query(None, max_length=128, description="One task's (a ref)"),
        actor: str | None = Query(None, max_length=64, description="One actor's (user:NAME...)"),
        limit: int = Query(500, ge=1, le=5000),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        task_id = find_task(store, who, task).id if task is not None else None
        owner = None if who.is_admin else who.user
        page = store.events_page(since, limit, task_id=task_id, actor=actor, owner=owner)
        next_since = page[-1]["id"] if page else since
        return {"events": page, "next_since": next_since}

    @r.delete("/tasks/{ref}")
    def delete(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.delete")
        task = engine.delete(task.id, actor=who.actor)
        return {"ok": True, "id": task.id, "name": task.name}

    return r
