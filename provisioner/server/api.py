"""The REST API, modelled on Coder's /api/v2/tasks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from provisioner import __version__
from provisioner.auth.tokens import Principal
from provisioner.capacity import Usage
from provisioner.engine.engine import Engine
from provisioner.errors import (
    BackendUnavailable,
    BridgeFailure,
    DockyardError,
    Forbidden,
    ParameterError,
    PayloadTooLarge,
    TaskConflict,
    TaskNotFound,
    TemplateError,
    Unauthenticated,
)
from provisioner.lifecycle import TERMINAL, Status
from provisioner.model import Task
from provisioner.server import inputs
from provisioner.server.auth import CHALLENGE, admin_only, caller
from provisioner.server.logjson import entries_json, page_json
from provisioner.store.store import Store
from provisioner.templating.catalog import Template
from provisioner.templating.delete import delete_versions
from provisioner.templating.push import MAX_ARCHIVE_BYTES, push_archive


class CreateTask(BaseModel):
    """Body of POST /api/v2/tasks."""

    template: str = Field(description="Template name")
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


class SendInput(BaseModel):
    """Body of POST /api/v2/tasks/{task}/send."""

    input: str = Field(description="The follow-up prompt")


# the longest a status or prompt long-poll (`?wait=`) holds a request, in seconds
MAX_WAIT = 30.0
# how often a long-poll re-reads the database when nothing in this process woke it
WAIT_RECHECK = 0.025
WAKE_RECHECK = 0.005
# a prompt is waited on while it is in one of these; the task's status ends the wait too
PROMPT_PENDING = frozenset({"queued", "delivered"})
STOPPED_WAITING = frozenset({Status.PAUSED, Status.ERROR, Status.FAILED, Status.CANCELLED})

T = TypeVar("T")

# the largest row id a database holds (64-bit); a larger `after` would not fit a query
MAX_ROW_ID = 2**63 - 1
# longest `detail` an error answer carries: a message quoting a huge value stays readable
MAX_DETAIL = 1000


class ErrorBody(BaseModel):
    """Every error answer: what happened, and what to do about it."""

    detail: str | list[dict[str, Any]] = Field(
        description="The message; for a malformed request, one item per bad field"
    )
    hint: str | None = Field(None, description="What to do about it")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why}
    for code, why in [
        (400, "Malformed request, or a value that is not allowed"),
        (401, "No API token, or one that is unknown, expired or revoked"),
        (403, "The caller's role does not allow this"),
        (404, "No such task, template, user or token (or not the caller's)"),
        (409, "The task or name is in a state that does not allow this"),
        (413, "The request or a prompt is larger than allowed"),
    ]
}


def _capped(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_DETAIL:
        return text
    return text[: MAX_DETAIL - 40] + f"... ({len(text) - MAX_DETAIL + 40} more characters)"


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # only where and what: the raw input may be huge or not even encodable
    return [
        {
            "loc": [str(p)[:100] for p in err.get("loc", ())],
            "msg": _capped(str(err.get("msg", "invalid value"))),
            "type": str(err.get("type", ""))[:100],
        }
        for err in exc.errors()[:20]
    ]


def _status_code(exc: DockyardError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, BackendUnavailable):
        return 503
    if isinstance(exc, TaskConflict):
        return 409
    if isinstance(exc, TemplateError):
        return 400
    if isinstance(exc, BridgeFailure):
        return 502
    return 500


async def _read_archive(request: Request) -> bytes:
    """An uploaded template archive, refused as soon as it passes MAX_ARCHIVE_BYTES (an
    endless upload was read into memory whole before its size was checked)."""
    too_big = TemplateError(f"template archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ARCHIVE_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ARCHIVE_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _template_json(tpl: Template) -> dict[str, Any]:
    default = tpl.default_preset()
    return {
        "name": tpl.name,
        "description": tpl.config.description,
        "version": tpl.version,
        "backend": tpl.config.backend,
        "parameters": [p.model_dump() for p in tpl.config.parameters],
        "presets": sorted(tpl.presets),
        "default_preset": default.name if default else None,
        "path": str(tpl.path),
    }


def _preset_json(tpl: Template) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "template": tpl.name,
            "description": p.config.description,
            "default": p.config.default,
            "parameters": p.config.parameters,
        }
        for p in sorted(tpl.presets.values(), key=lambda p: p.name)
    ]


def _read_logs(store: Store, task_id: str, after: int, limit: int) -> tuple[str, int | None]:
    """Entries after `after` as a JSON array, and the id of the last one (None: none)."""
    written = store.log_rows_json(task_id, after, limit)
    if written is not None:
        text, ids = written
        return text, ids[-1] if ids else None
    rows = store.log_rows(task_id, after, limit)
    return entries_json(rows), rows[-1][0] if rows else None


async def _wait_for_logs(
    store: Store, task_id: str, after: int, limit: int, wait: float
) -> tuple[str, int | None]:
    """_read_logs, long-polling up to `wait` s; woken as soon as lines are stored."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:  # called from the follower's thread
        loop.call_soon_threadsafe(arrived.set)

    store.log_listeners.add(wake)
    try:
        deadline = loop.time() + wait
        while True:
            arrived.clear()
            entries, last_id = await run_in_threadpool(_read_logs, store, task_id, after, limit)
            remaining = deadline - loop.time()
            if last_id is not None or remaining <= 0:
                return entries, last_id
            # Other processes sharing the database do not wake us: re-check now and then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), min(remaining, 1.0))
    finally:
        store.log_listeners.discard(wake)


async def _wait_for(
    store: Store, read: Callable[[], T], done: Callable[[T], bool], wait: float
) -> T:
    """`read()` (in a thread) until `done` says so or `wait` s have passed; the last read.

    Woken at once when this process stores log lines (a prompt taken or an agent's answer
    comes with some), and re-reading every WAIT_RECHECK s for everything else."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:  # called from the follower's thread
        loop.call_soon_threadsafe(woken.set)

    store.log_listeners.add(wake)
    try:
        deadline = loop.time() + wait
        recheck = WAIT_RECHECK
        while True:
            woken.clear()
            value = await run_in_threadpool(read)
            remaining = deadline - loop.time()
            if remaining <= 0 or done(value):
                return value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, recheck))
            # the follower stores a taken prompt's line first and its state just after:
            # after a wake, look again soon
            recheck = WAKE_RECHECK if woken.is_set() else WAIT_RECHECK
    finally:
        store.log_listeners.discard(wake)


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
        "pending_prompts": [_prompt_json(p) for p in waiting if p["state"] == "queued"],
    }
    return page_json(entries, rest)


def find_task(store: Store, who: Principal, ref: str) -> Task:
    """The task `ref` names, as `who` may see it: members only their own (others' are
    not found, never forbidden, so their names do not leak); admins their own first,
    then anyone's."""
    if not who.is_admin:
        return store.get(ref, owner=who.user)
    try:
        return store.get(ref, owner=who.user)
    except TaskNotFound:
        return store.get(ref)


def _capacity_json(usage: Usage, store: Store, who: Principal) -> dict[str, Any]:
    # a member sees where others' tasks stand in the queue, not what they are called
    names = {
        t.id: t
        for t in store.list_tasks([Status.PENDING], kind=None)
        if who.is_admin or t.owner == who.user
    }
    return {
        "limit": usage.limit,  # null: unlimited
        "in_use": usage.in_use,  # workspaces initializing or active
        "tasks": usage.tasks,
        "pool": usage.pool,  # warm-pool members among in_use
        "available": usage.available,  # null: unlimited
        "waiting": usage.waiting,  # user tasks pending (warm-pool members not counted)
        "summary": usage.summary(),
        # pending tasks and warm-pool members, first to start first
        "queue": [
            {
                "id": slot.id,
                "name": names[slot.id].name if slot.id in names else None,
                "kind": slot.kind,
                "priority": slot.priority,
                "waiting_since": slot.waiting_since,
                "message": names[slot.id].message if slot.id in names else None,
            }
            for slot in usage.queue
        ],
    }


def build_router(engine: Engine, home: str) -> APIRouter:
    """All /api/v2 routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    @r.get("/health")
    def health(who: Principal = Depends(caller)) -> dict[str, Any]:
        docker: dict[str, Any] = {"ok": True, "error": None}
        try:
            engine.backend.ping()
        except DockyardError as exc:
            docker = {"ok": False, "error": str(exc)}
        return {"ok": True, "version": __version__, "docker": docker, "home": home}

    @r.get("/templates")
    def list_templates(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"templates": [_template_json(t) for t in engine.catalog.all()]}

    @r.get("/templates/{name}")
    def get_template(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return _template_json(engine.catalog.get(name))

    @r.get("/templates/{name}/versions")
    def template_versions(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        active = engine.catalog.get(name)
        store = engine.catalog.versions
        stored = store.versions(name) if store else []
        rows = [
            {
                "version": v.version,
                "label": v.label,
                "created_at": v.created_at,
                "pushed": v.pushed,
                "active": v.version == active.version,
            }
            for v in stored
        ]
        if not any(r["active"] for r in rows):
            # The folder on disk, not yet used by any task: a version all the same.
            rows.append(
                {
                    "version": active.version,
                    "label": None,
                    "created_at": None,
                    "pushed": False,
                    "active": True,
                }
            )
        return {"template": name, "versions": rows}

    @r.post("/templates", status_code=201)
    async def push_template(
        request: Request, label: str | None = None, who: Principal = Depends(admin_only)
    ) -> dict[str, Any]:
        body = await _read_archive(request)
        info, tpl = await run_in_threadpool(push_archive, engine.catalog, body, label)
        await run_in_threadpool(
            store.record_audit, who.actor, "template.push", f"{tpl.name}@{tpl.version}", label or ""
        )
        return {**_template_json(tpl), "label": info.label, "pushed": True}

    @r.delete("/templates/{name}")
    def delete_template(name: str, who: Principal = Depends(admin_only)) -> dict[str, Any]:
        live = engine.store.list_tasks(kind=None)
        deleted = delete_versions(engine.catalog, live, name)
        store.record_audit(who.actor, "template.delete", name, ", ".join(deleted))
        return {"template": name, "deleted": deleted}

    @r.delete("/templates/{name}/versions/{version}")
    def delete_template_version(
        name: str, version: str, who: Principal = Depends(admin_only)
    ) -> dict[str, Any]:
        live = engine.store.list_tasks(kind=None)
        deleted = delete_versions(engine.catalog, live, name, version)
        store.record_audit(who.actor, "template.delete", f"{name}@{version}", ", ".join(deleted))
        return {"template": name, "deleted": deleted}

    @r.get("/templates/{name}/presets")
    def template_presets(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"presets": _preset_json(engine.catalog.get(name))}

    @r.get("/presets")
    def list_presets(
        template: str | None = None, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        tpls = [engine.catalog.get(template)] if template else engine.catalog.all()
        return {"presets": [p for t in tpls for p in _preset_json(t)]}

    @r.post("/tasks", status_code=201)
    def create_task(body: CreateTask, who: Principal = Depends(caller)) -> dict[str, Any]:
        prompt = inputs.create_prompt(body)
        owner = who.user
        if body.owner is not None and body.owner != who.user:
            if not who.is_admin:
                raise Forbidden("Only an admin may create tasks for another user")
            if store.user(body.owner) is None:
                raise ParameterError(f"No user {body.owner[:40]!r} to own the task")
            owner = body.owner
        task = engine.create_task(
            owner=owner,
            actor=who.actor,
            template=body.template,
            preset=body.preset,
            prompt=prompt,
            parameters=body.parameters,
            name=body.name,
            template_version=body.template_version,
        )
        if owner != who.user:
            store.record_audit(who.actor, "task.create", f"{owner}/{task.name}", task.id)
        return task.public()

    @r.get("/tasks")
    def list_tasks(
        status: str | None = None,
        all: bool = Query(False, description="Every user's tasks (admins only)"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        if all and not who.is_admin:
            raise Forbidden("Only an admin may list every user's tasks")
        statuses = None
        if status:
            try:
                statuses = [Status(s.strip()) for s in status.split(",")]
            except ValueError as exc:
                valid = ", ".join(s.value for s in Status)
                raise TemplateError(f"Unknown status {status!r} (one of: {valid})") from exc
        owner = None if all else who.user
        return {"tasks": [t.public() for t in store.list_tasks(statuses, owner=owner)]}

    @r.get("/pools")
    def pools(who: Principal = Depends(caller)) -> dict[str, Any]:
        members = [t for t in store.list_tasks(kind="pool") if t.status not in TERMINAL]
        return {
            "members": [m.public() for m in members],
            "capacity": _capacity_json(engine.capacity(), store, who),
        }

    @r.get("/capacity")
    def capacity(who: Principal = Depends(caller)) -> dict[str, Any]:
        return _capacity_json(engine.capacity(), store, who)

    @r.get("/tasks/{ref}")
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
            public = await _wait_for(
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
        ref: str,
        after: int = Query(0, ge=0, le=MAX_ROW_ID),
        wait: float = Query(0, ge=0, le=60),
        limit: int = Query(10000, ge=1, le=100000),
        who: Principal = Depends(caller),
    ) -> Response:
        task = await run_in_threadpool(find_task, store, who, ref)
        entries, last_id = await _wait_for_logs(store, task.id, after, limit, wait)
        last = after if last_id is None else last_id
        body = await run_in_threadpool(_logs_page, store, task.id, entries, last)
        return Response(body, media_type="application/json")

    @r.get("/tasks/{ref}/prompts")
    def task_prompts(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = find_task(store, who, ref)
        return {"prompts": [_prompt_json(p) for p in store.prompts(task.id)]}

    @r.get("/tasks/{ref}/prompts/{prompt_id}")
    async def task_prompt(
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
            prompt, _ = await _wait_for(store, read, done, wait)
        if prompt is None or prompt["task_id"] != task.id:
            raise TaskNotFound(f"Task {task.name} has no prompt {prompt_id!r}")
        return _prompt_json(prompt)

    def act_on(who: Principal, ref: str, action: str) -> Task:
        """The task an act names; an admin acting on another's task is audited."""
        task = find_task(store, who, ref)
        if task.owner != who.user:
            store.record_audit(who.actor, action, f"{task.owner}/{task.name}", task.id)
        return task

    @r.post("/tasks/{ref}/send")
    def send(ref: str, body: SendInput, who: Principal = Depends(caller)) -> dict[str, Any]:
        text = inputs.send_input(body)
        task = act_on(who, ref, "task.send")
        return engine.send(task.id, text, actor=who.actor)

    @r.post("/tasks/{ref}/pause")
    def pause(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.pause")
        return engine.pause(task.id, actor=who.actor).public()

    @r.post("/tasks/{ref}/resume")
    def resume(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.resume")
        return engine.resume(task.id, actor=who.actor).public()

    @r.delete("/tasks/{ref}")
    def delete(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        task = act_on(who, ref, "task.delete")
        task = engine.delete(task.id, actor=who.actor)
        return {"ok": True, "id": task.id, "name": task.name}

    return r


def install_error_handler(app: FastAPI) -> None:
    """Our errors become `{"detail", "hint"}` with a fitting status code."""

    @app.exception_handler(DockyardError)
    async def _dockyard_error(_: Request, exc: DockyardError) -> JSONResponse:
        code = _status_code(exc)
        headers = dict([CHALLENGE]) if code == 401 else None
        return JSONResponse(
            status_code=code,
            content={"detail": _capped(exc.message), "hint": _capped(exc.hint)},
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # a malformed body or query is the caller's mistake: 400, like our own checks
        return JSONResponse(status_code=400, content={"detail": _validation_detail(exc)})
