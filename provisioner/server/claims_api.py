"""/api/v2 routes of claims and workers: claim a queue-only task (exactly one of
concurrent claimers wins; the others get a 409 naming the holder), renew its lease,
start it; register workers, keep them alive, and let one claim the next task it serves.

Any authenticated caller may claim a queue-only task (CacheBash's rule): by id, or by a
name no two users share. Another user's workspace task stays a 404, as everywhere."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.prompts import check_strings
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.server.views import TaskView

LEASE = "The lease in seconds (5 to 86400, default 300): renew it before it runs out"


class ClaimBody(BaseModel):
    """Body of POST /api/v2/tasks/{ref}/claim (and .../claim/renew, /workers/{name}/next)."""

    model_config = ConfigDict(extra="forbid")

    # Any: checked by provisioner.claiming, so a bad value says what is wanted (400)
    session_id: Any = Field(description="The claiming session (its renewals must name it)")
    lease_s: Any = Field(None, description=LEASE)


class StartBody(BaseModel):
    """Body of POST /api/v2/tasks/{ref}/start."""

    model_config = ConfigDict(extra="forbid")

    session_id: Any = Field(description="The session holding the claim")


class RejectBody(BaseModel):
    """Body of POST /api/v2/tasks/{ref}/offer/reject (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=512, description="Why, for the history")


class RegisterWorker(BaseModel):
    """Body of POST /api/v2/workers."""

    model_config = ConfigDict(extra="forbid")

    name: Any = Field(description="1-64 lowercase letters, digits and dashes")
    codebases: Any = Field(
        None, description="Codebases it takes tasks for (`global` allowed; `__pending__` too)"
    )
    targets: Any = Field(None, description="Workers targets it serves (none: all of them)")


class WorkerView(BaseModel):
    name: str
    owner: str
    codebases: list[str]
    targets: list[str]
    registered_at: str
    last_seen: str
    alive: bool = Field(description="Heard from (a heartbeat, a claim) within its time to live")


class WorkersReply(BaseModel):
    workers: list[WorkerView]


class NextReply(BaseModel):
    task: TaskView | None = Field(  # type: ignore[valid-type]
        description="The task claimed; null: none it serves is waiting"
    )


def build_claims_router(engine: Engine) -> APIRouter:
    """Claim and worker routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)

    @r.post("/tasks/{ref}/claim", response_model=TaskView)
    def claim(ref: str, body: ClaimBody, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Claim a queue-only task: pending -> claimed, under a lease. 409 when someone
        holds it (naming the session) or it waits for its dependencies (naming them)."""
        task = engine.claim(
            ref,
            user=who.user,
            session_id=body.session_id,
            lease_s=body.lease_s,
            admin=who.is_admin,
        )
        return task.public()

    @r.post("/tasks/{ref}/claim/renew", response_model=TaskView)
    def renew(ref: str, body: ClaimBody, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Extend the lease the caller's session holds (a heartbeat of the claim)."""
        task = engine.renew_claim(
            ref,
            user=who.user,
            session_id=body.session_id,
            lease_s=body.lease_s,
            admin=who.is_admin,
        )
        return task.public()

    @r.post("/tasks/{ref}/start", response_model=TaskView)
    def start(ref: str, body: StartBody, who: Principal = Depends(caller)) -> dict[str, Any]:
        """claimed -> active (working): the holder began. Optional: a claim may be
        completed at once."""
        task = engine.start_claimed(
            ref, user=who.user, session_id=body.session_id, admin=who.is_admin
        )
        return task.public()

    @r.post("/tasks/{ref}/offer/accept", response_model=TaskView)
    def accept(ref: str, body: ClaimBody, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Accept an offer made to one of the caller's workers: offered -> claimed."""
        task = engine.accept_offer(
            ref,
            user=who.user,
            session_id=body.session_id,
            lease_s=body.lease_s,
            admin=who.is_admin,
        )
        return task.public()

    @r.post("/tasks/{ref}/offer/reject", response_model=TaskView)
    def reject(
        ref: str, body: RejectBody | None = None, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        """Decline an offer made to one of the caller's workers: back to pending."""
        reason = body.reason if body else None
        check_strings(reason, "reason")
        return engine.reject_offer(ref, user=who.user, reason=reason, admin=who.is_admin).public()

    @r.post("/workers", response_model=WorkerView)
    def register(body: RegisterWorker, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Register a worker (owned by the caller), or update the caller's worker."""
        engine.register_worker(body.name, body.codebases, body.targets, owner=who.user)
        return _view(engine, str(body.name), who)

    @r.get("/workers", response_model=WorkersReply)
    def list_workers(who: Principal = Depends(caller)) -> dict[str, Any]:
        """The caller's workers (an admin: everyone's), each alive or not."""
        return {"workers": engine.workers_view(None if who.is_admin else who.user)}

    @r.post("/workers/{name}/heartbeat", response_model=WorkerView)
    def heartbeat(name: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        engine.heartbeat(name, who.user)
        return _view(engine, name, who)

    @r.post("/workers/{name}/next", response_model=NextReply)
    def claim_next(name: str, body: ClaimBody, who: Principal = Depends(caller)) -> dict[str, Any]:
        """Claim the best pending task the worker serves (its codebases and targets),
        highest priority first; `task` null when none waits. Also its heartbeat."""
        task = engine.claim_next(
            name, user=who.user, session_id=body.session_id, lease_s=body.lease_s
        )
        return {"task": task.public() if task else None}

    return r


def _view(engine: Engine, name: str, who: Principal) -> dict[str, Any]:
    engine.worker_of(name, who.user, admin=who.is_admin)
    return next(w for w in engine.workers_view(None) if w["name"] == name)
