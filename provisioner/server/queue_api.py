"""/api/v2 routes of the queue: the targets of the server's config with their load, and the
waiting tasks in admission order with what each waits for (computed here, where the
order is decided, rather than guessed by clients)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from provisioner.auth.tokens import Principal
from provisioner.capacity import CAPACITY, TARGET, Hold, Usage, hold_message, plan
from provisioner.engine.engine import Engine
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES

# what a waiting task waits for, as GET /queue says it
DEPENDENCIES = "dependencies"
STARTING = "nothing"  # a slot is free for it: it starts with the next pass
BACKLOG = "backlog"
WORKER = "worker"  # a queue-only task: a worker claims it (or accepts its offer)


class TargetView(BaseModel):
    """A target of the server's config, with its load."""

    model_config = ConfigDict(extra="allow")
    name: str
    template: str | None = Field(description="The template its tasks run (null: workers)")
    preset: str | None = Field(description="Its preset (null: the template's default)")
    max_concurrent: int | None = Field(description="Most of its tasks live at once (null: none)")
    codebases: list[str] = Field(description="The codebases it serves (--codebase)")
    workers: bool = Field(False, description="Its tasks are claimed by workers, not run")
    running: int = Field(description="Its tasks initializing or active, parallel ones too")
    counted: int = Field(description="Of those, the ones counted against max_concurrent")
    waiting: int = Field(description="Its tasks pending")


class UnservedView(BaseModel):
    codebase: str
    waiting: int = Field(description="Tasks waiting for a target serving it")


class TargetsReply(BaseModel):
    """GET /api/v2/targets."""

    targets: list[TargetView]
    unserved: list[UnservedView] = Field(description="Codebases tasks wait for, none serves")


class QueueEntry(BaseModel):
    """A waiting task, where it stands and why (another user's: without name or details)."""

    model_config = ConfigDict(extra="allow")
    position: int | None = Field(
        description="1-based place in admission order; null: not in line (waiting for its "
        "dependencies, or in the backlog)"
    )
    id: str
    name: str | None
    owner: str | None
    status: str = Field(description="pending or backlog")
    priority: int
    action: str
    target: str | None
    codebase: str | None
    template: str | None = Field(description="null: not routed yet (its codebase unserved)")
    waiting_since: str
    waiting_for: str = Field(
        description="capacity, target, codebase, dependencies, backlog, worker (a queue-only "
        "task waiting to be claimed) or nothing (starting)"
    )
    reason: str = Field(description="What it waits for, in words")
    message: str | None
    tags: list[str]
    epic: str | None


class QueueReply(BaseModel):
    """GET /api/v2/queue."""

    queue: list[QueueEntry]
    capacity: str = Field(description="How many workspaces are in use, against the limit")


def _targets_json(engine: Engine, usage: Usage) -> dict[str, Any]:
    rows = []
    for target in engine.admissions.targets.values():
        live = [s for s in usage.live if s.kind == "task" and s.target == target.name]
        rows.append(
            {
                **target.public(),
                "running": len(live),  # initializing or active, parallel ones included
                "counted": usage.target_live.get(target.name, 0),  # against max_concurrent
                "waiting": sum(1 for s in usage.queue if s.target == target.name),
            }
        )
    unserved: dict[str, int] = {}
    for slot in usage.queue:
        if slot.unserved and slot.codebase is not None:
            unserved[slot.codebase] = unserved.get(slot.codebase, 0) + 1
    return {
        "targets": rows,
        # codebases tasks wait for that no target serves
        "unserved": [{"codebase": c, "waiting": n} for c, n in sorted(unserved.items())],
    }


def _entry(
    place: int | None,
    task: Task,
    waiting_for: str,
    reason: str,
    mine: bool,
) -> dict[str, Any]:
    # a member sees where others' tasks stand, not what they are or whose
    return {
        "position": place,  # 1-based place in admission order; null: not in line
        "id": task.id,
        "name": task.name if mine else None,
        "owner": task.owner if mine else None,
        "status": task.status.value,
        "priority": task.priority,
        "action": task.action,
        "target": task.target,
        "codebase": task.codebase,
        "template": task.template or None,
        "waiting_since": task.queued_at or task.created_at,
        "waiting_for": waiting_for,  # capacity, target, codebase, dependencies, backlog...
        # another user's dependencies are named in its reason: not shown to a member
        "reason": reason if mine or waiting_for != DEPENDENCIES else "waiting for dependencies",
        "message": task.message if mine else None,
        "tags": task.tags if mine else [],
        "epic": task.epic if mine else None,
    }


def _why(usage: Usage, hold: Hold | None, task: Task) -> tuple[str, str]:
    if hold is None:
        return STARTING, "starting: a slot is free"
    reason = hold_message(usage, hold, resuming=bool(task.phases))
    if hold.why in (CAPACITY, TARGET) and task.message.endswith("to pause"):
        reason = task.message  # an interrupt that found no task to preempt says so
    return hold.why, reason  # capacity, target or codebase


def queue_json(
    engine: Engine, who: Principal, target: str | None, tag: str | None, epic: str | None
) -> dict[str, Any]:
    """In line first (by place), then those waiting for dependencies (no place in line:
    they take none until their dependencies complete), then one's own backlog."""
    store = engine.store
    usage = engine.capacity()
    holds = plan(usage)
    waiting = store.tasks_by_ids(s.id for s in usage.queue if s.kind == "task")
    entries = []
    for place, slot in enumerate(usage.queue, start=1):
        task = waiting.get(slot.id)
        if task is None:
            continue  # a warm-pool member (they come after every task), or just deleted
        why, reason = _why(usage, holds.get(slot.id), task)
        mine = who.is_admin or task.owner == who.user
        entries.append(_entry(place, task, why, reason, mine))
    pending = store.list_tasks([Status.PENDING, Status.OFFERED])
    # queue-only tasks take no place in line: they wait for a worker to claim them
    for task in sorted(pending, key=lambda t: (-t.priority, t.queued_at or t.created_at)):
        if task.queue_only and not task.blocked:
            mine = who.is_admin or task.owner == who.user
            entries.append(_entry(None, task, WORKER, task.message, mine))
    apart = [t for t in pending if t.blocked]
    for task in sorted(apart, key=lambda t: (-t.priority, t.queued_at or t.created_at)):
        mine = who.is_admin or task.owner == who.user
        # its message names the dependencies it waits for (the engine keeps it current)
        entries.append(_entry(None, task, DEPENDENCIES, task.message, mine))
    backlog = store.list_tasks([Status.BACKLOG])
    for task in sorted(backlog, key=lambda t: (-t.priority, t.created_at)):
        if who.is_admin or task.owner == who.user:  # not in line: only one's own is shown
            entries.append(_entry(None, task, BACKLOG, task.message, True))
    if target is not None:
        entries = [e for e in entries if e["target"] == target]
    if tag is not None:
        entries = [e for e in entries if tag in e["tags"]]
    if epic is not None:
        entries = [e for e in entries if e["epic"] == epic]
    return {"queue": entries, "capacity": usage.summary()}


def build_queue_router(engine: Engine) -> APIRouter:
    """Target and queue routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.get("/targets", response_model=TargetsReply)
    def targets(who: Principal = Depends(caller)) -> dict[str, Any]:
        return _targets_json(engine, engine.capacity())

    @r.get("/queue", response_model=QueueReply)
    def queue(
        target: str | None = Query(None, max_length=64, description="Only this target's"),
        tag: str | None = Query(None, max_length=64, description="Only tasks with this tag"),
        epic: str | None = Query(None, max_length=64, description="Only this epic's"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        return queue_json(engine, who, target, tag, epic)

    return r
