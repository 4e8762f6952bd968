"""The task lifecycle: statuses, states, phases and the one pure state machine.

Every status change in Dockyard goes through `check_transition`; the store applies it
with compare-and-set, so the machine here is the single source of what may happen.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from provisioner.errors import IllegalTransition


class Status(StrEnum):
    """Where a task is in its life."""

    BACKLOG = "backlog"  # parked; not scheduled until moved to pending
    PENDING = "pending"  # accepted; waiting for capacity or a worker (new, or a resume)
    # a queue-only task a worker holds under a lease (claimed_by, session_id, claim_until)
    CLAIMED = "claimed"
    # a queue-only task offered to one worker (Agent Swarm): it accepts (claimed) or
    # rejects, or the offer runs out (back to pending)
    OFFERED = "offered"
    INITIALIZING = "initializing"  # workspace being provisioned; `phase` says which step
    ACTIVE = "active"  # agent running; `state` says working or idle
    PAUSED = "paused"  # workspace stopped, disk kept; resumable
    ERROR = "error"  # provisioning or agent failure; resumable
    COMPLETED = "completed"  # terminal: the agent reported success
    FAILED = "failed"  # terminal: the agent or policy reported failure
    CANCELLED = "cancelled"  # terminal: the user stopped it


class State(StrEnum):
    """What the agent is doing while the task is active."""

    WORKING = "working"  # taking or processing input
    IDLE = "idle"  # quiet and waiting for input, after it took the last prompt
    # the agent asked a question (`dockyard-task ask`) and waits for the user's answer
    INPUT_REQUIRED = "input_required"


class Phase(StrEnum):
    """The provisioning step while the task is initializing."""

    IMAGE = "image"
    CREATE = "create"
    START = "start"
    SETUP = "setup"
    AGENT = "agent"


class ErrorClass(StrEnum):
    """Why a task is in error, so callers know whether trying again can help."""

    TRANSIENT = "TRANSIENT"  # may pass on retry (daemon briefly away, conflict)
    PERMANENT = "PERMANENT"  # will fail the same way (bad template, agent exit code)
    TIMEOUT = "TIMEOUT"  # a phase or operation ran out of time
    DEPENDENCY = "DEPENDENCY"  # a task it depends on failed or was cancelled
    POLICY = "POLICY"  # refused by a rule (a limit, a permission, a review)
    UNKNOWN = "UNKNOWN"


# only these are worth trying again by themselves (a retry policy never repeats the rest)
RETRYABLE = frozenset({ErrorClass.TRANSIENT, ErrorClass.TIMEOUT})


class Outcome(StrEnum):
    """How a task ended, as whoever finished it reported (CacheBash's outcomes)."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


def outcome_status(outcome: Outcome) -> Status:
    """The terminal status an outcome ends a task in (the outcome itself is kept)."""
    return {
        Outcome.SUCCESS: Status.COMPLETED,
        Outcome.FAILED: Status.FAILED,
        Outcome.SKIPPED: Status.CANCELLED,
        Outcome.CANCELLED: Status.CANCELLED,
    }[outcome]


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.BACKLOG: frozenset({Status.PENDING, Status.FAILED, Status.CANCELLED}),
    # to claimed: a worker claims a queue-only task (never to completed: no work done)
    Status.PENDING: frozenset(
        {
            Status.INITIALIZING,
            Status.CLAIMED,
            Status.OFFERED,
            Status.BACKLOG,
            Status.FAILED,
            Status.CANCELLED,
        }
    ),
    # to claimed: accepted; to pending: rejected, or the offer ran out
    Status.OFFERED: frozenset({Status.CLAIMED, Status.PENDING, Status.FAILED, Status.CANCELLED}),
    # to pending: released, or its lease expired; to active: the worker started it; or it
    # ends straight from the claim
    Status.CLAIMED: frozenset(
        {Status.PENDING, Status.ACTIVE, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
    ),
    Status.INITIALIZING: frozenset(
        {Status.ACTIVE, Status.ERROR, Status.PAUSED, Status.PENDING, Status.CANCELLED}
    ),
    Status.ACTIVE: frozenset(
        {Status.PAUSED, Status.ERROR, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
    ),
    # to pending: a resume that waits for a free workspace slot
    Status.PAUSED: frozenset(
        {Status.INITIALIZING, Status.PENDING, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
    ),
    Status.ERROR: frozenset(
        {Status.INITIALIZING, Status.PENDING, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
    ),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}

# Moves only a retry may make (`task retry`, or a retry policy): a failed task queued again
# as its next attempt. Completed and cancelled stay final, whatever the action.
RETRY = "retry"
_RETRY_ONLY: dict[Status, frozenset[Status]] = {Status.FAILED: frozenset({Status.PENDING})}

# Moves only an expired claim lease makes: a queue-only task its worker started, and then
# stopped renewing, goes back to the pool (a workspace task never goes active -> pending).
EXPIRE = "expire"
_EXPIRE_ONLY: dict[Status, frozenset[Status]] = {Status.ACTIVE: frozenset({Status.PENDING})}

# Specific reasons for the moves people actually attempt, so the error says what to do.
_WHY_NOT: dict[tuple[Status, Status], str] = {
    (Status.PENDING, Status.PAUSED): "it has not started yet; delete it instead",
    (Status.ACTIVE, Status.INITIALIZING): "it is already running; there is nothing to resume",
    (Status.BACKLOG, Status.PAUSED): "it has not started yet",
    (Status.PENDING, Status.COMPLETED): "nobody has claimed or started it; it did no work",
    (Status.CLAIMED, Status.INITIALIZING): "a worker holds it; it is never provisioned",
    (Status.OFFERED, Status.COMPLETED): "it is only offered; the worker must accept it first",
    (Status.OFFERED, Status.ACTIVE): "it is only offered; the worker must accept it first",
    (Status.CLAIMED, Status.PAUSED): "a worker holds it; only a workspace can be paused",
}


def can_transition(current: Status, target: Status, *, action: str | None = None) -> bool:
    """True when the lifecycle allows moving from `current` to `target` (by `action`:
    only a retry takes a failed task back to pending, only an expired claim lease an
    active queue-only task)."""
    if target in _ALLOWED[current]:
        return True
    if action == EXPIRE:
        return target in _EXPIRE_ONLY.get(current, frozenset())
    return action == RETRY and target in _RETRY_ONLY.get(current, frozenset())


def check_transition(current: Status, target: Status, *, action: str | None = None) -> None:
    """Raise IllegalTransition with a specific message unless the move is allowed."""
    if can_transition(current, target, action=action):
        return
    verb = action or f"move to {target.value}"
    if current == Status.FAILED and target == Status.PENDING:
        reason = f"it has failed; queue it again with: dockyard task {RETRY}"
    elif current in TERMINAL:
        reason = f"it has ended ({current.value}); create a new task instead"
    elif current == target:
        reason = f"it is already {current.value}"
    else:
        reason = _WHY_NOT.get((current, target)) or f"a {current.value} task cannot {verb}"
    raise IllegalTransition(f"Cannot {verb}: {reason}")


def state_applies(status: Status) -> bool:
    """Only an active task has a working/idle state."""
    return status == Status.ACTIVE


def phase_applies(status: Status) -> bool:
    """Only an initializing task has a provisioning phase."""
    return status == Status.INITIALIZING


def advance_phases(
    phases: list[dict[str, Any]], phase: str | None, now: datetime
) -> list[dict[str, Any]]:
    """Close the open phase (its duration measured up to `now`) and open `phase`, if any."""
    result = [dict(p) for p in phases]
    if result and result[-1].get("duration_s") is None:
        started = datetime.fromisoformat(str(result[-1]["started_at"]).replace("Z", "+00:00"))
        result[-1]["duration_s"] = round(max((now - started).total_seconds(), 0.0), 3)
    if phase is not None:
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        result.append({"phase": phase, "started_at": stamp, "duration_s": None})
    return result
