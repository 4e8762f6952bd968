"""Claims of queue-only tasks and the workers that make them: the pure decisions.

A target of the config with `workers: true` has no template: its tasks are never
provisioned. A worker (a named program with a token, or any authenticated caller)
claims one: `pending -> claimed` under a lease (`claim_until`) it renews; it may start
it (`claimed -> active/working`) and ends it like any task. A lease that runs out puts
the task back to `pending`, its attempt counted. The store makes each claim a
compare-and-set, so of N concurrent claimers exactly one wins.

CodeTether's routing: a registered worker's `next` claim takes the best pending task
whose codebase it registered (`global` is a codebase like any other), or a task of the
registration codebase `__pending__` (any worker), or a task without a codebase; and only
tasks of the targets it registered (none registered: any workers target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from provisioner.errors import ParameterError
from provisioner.lifecycle import Status
from provisioner.model import NAME_RE, Task, parse_time
from provisioner.queueing import REGISTRATION_CODEBASE, check_codebase, check_label

DEFAULT_LEASE_S = 300.0
MIN_LEASE_S = 5.0
MAX_LEASE_S = 24 * 3600.0
MAX_SESSION_LEN = 128
MAX_WORKER_CODEBASES = 200
MAX_WORKER_TARGETS = 200
# a worker not heard from for this long is shown dead (it claims nothing meanwhile)
DEFAULT_WORKER_TTL_S = 90.0
WAITING_FOR_WORKER = "waiting for a worker to claim it"
# how long an offer to one worker stands before the task goes back to the pool
DEFAULT_OFFER_S = 120.0
# the statuses a claim holds a task in (its lease runs in both)
HELD = frozenset({Status.CLAIMED, Status.ACTIVE})


def parse_lease(value: object) -> float:
    """The lease in seconds a claimer asks for: a finite number in range (default 300)."""
    if value is None:
        return DEFAULT_LEASE_S
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParameterError(
            f"Invalid lease_s {str(value)[:20]!r}: a number of seconds, "
            f"{MIN_LEASE_S:g} to {MAX_LEASE_S:g}"
        )
    if not MIN_LEASE_S <= value <= MAX_LEASE_S:
        raise ParameterError(
            f"Invalid lease_s {value:g}: from {MIN_LEASE_S:g} to {MAX_LEASE_S:g} seconds"
        )
    return float(value)


def check_session(value: object) -> str:
    """A claimer's session id: 1-128 plain characters (letters, digits, . _ : / -)."""
    if not isinstance(value, str) or not value:
        raise ParameterError("session_id is required: a name for the claiming session")
    if len(value) > MAX_SESSION_LEN or not all(c.isalnum() or c in "._:/-@" for c in value):
        raise ParameterError(
            f"Invalid session_id {value[:40]!r}: 1-{MAX_SESSION_LEN} letters, digits "
            "and . _ : / - @"
        )
    return value


def stamp(moment: datetime) -> str:
    """A time as utcnow() writes it (so stamps compare as strings)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lease_end(now: datetime, lease_s: float) -> str:
    return stamp(now + timedelta(seconds=lease_s))


def expired(task: Task, now: datetime) -> bool:
    """A queue-only task whose claim lease has run out (it goes back to pending)."""
    if not task.queue_only or task.status not in HELD or task.claim_until is None:
        return False
    return parse_time(task.claim_until) <= now


def offer_expired(task: Task, now: datetime) -> bool:
    """An offer not accepted in time (the task goes back to the pool)."""
    if task.status != Status.OFFERED or task.offer_until is None:
        return False
    return parse_time(task.offer_until) <= now


def to_offer(ready: Iterable[Task]) -> list[Task]:
    """The ready pending tasks created to be offered to a worker (not offered yet)."""
    return [t for t in ready if t.queue_only and t.status == Status.PENDING and t.offer_to]


@dataclass(frozen=True)
class Worker:
    """A registered worker: its owner, what it takes work for, when it was last heard."""

    name: str
    owner: str
    codebases: tuple[str, ...]
    targets: tuple[str, ...]
    registered_at: str
    last_seen: str

    def public(self, now: datetime, ttl_s: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "codebases": list(self.codebases),
            "targets": list(self.targets),
            "registered_at": self.registered_at,
            "last_seen": self.last_seen,
            "alive": alive(self, now, ttl_s),
        }


def alive(worker: Worker, now: datetime, ttl_s: float) -> bool:
    """Heard from within `ttl_s` seconds."""
    return (now - parse_time(worker.last_seen)).total_seconds() < ttl_s


def check_registration(
    name: object, codebases: object, targets: object, known_targets: Mapping[str, Any]
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A worker's name, codebases and targets, checked (targets must be workers targets
    of the config: `known_targets`)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ParameterError(
            f"Invalid worker name {str(name)[:40]!r}: 1-64 lowercase letters, digits and "
            "dashes, starting with a letter or digit"
        )
    cbs = _names(codebases, "codebases", MAX_WORKER_CODEBASES)
    for cb in cbs:
        check_codebase(cb)
    tgs = _names(targets, "targets", MAX_WORKER_TARGETS)
    for t in tgs:
        check_label(t, "target")
        if t not in known_targets:
            known = ", ".join(sorted(known_targets)) or "none are configured"
            raise ParameterError(
                f"Unknown workers target {t!r} (targets with workers: true: {known})"
            )
    return name, cbs, tgs


def _names(value: object, what: str, most: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"Invalid {what}: a list of names")
    if len(value) > most:
        raise ParameterError(f"Too many {what} ({len(value)}): at most {most}")
    return tuple(dict.fromkeys(value))


def serves(worker: Worker, task: Task) -> bool:
    """Whether `worker` may take `task` by routing (CodeTether): its target, its codebase."""
    if worker.targets and task.target not in worker.targets:
        return False
    if task.codebase is None or task.codebase == REGISTRATION_CODEBASE:
        return True
    return task.codebase in worker.codebases


def candidates(worker: Worker, pending: Iterable[Task]) -> list[Task]:
    """The claimable tasks `worker` serves, best first: priority, then longest waiting."""
    found = [
        t
        for t in pending
        if t.queue_only and t.status == Status.PENDING and not t.blocked and serves(worker, t)
    ]
    return sorted(found, key=lambda t: (-t.priority, t.queued_at or t.created_at))


def held_message(task: Task) -> str:
    """Why a claim of a task someone holds fails, naming the holder."""
    who = task.session_id or task.claimed_by or "another session"
    return f"task {task.name} is already claimed by {who}"


def not_claimable(task: Task) -> str | None:
    """Why `task` cannot be claimed now (None: it can), besides its dependencies."""
    if not task.queue_only:
        return (
            f"task {task.name} is not a queue-only task: it runs in a workspace "
            "(only tasks of a target with workers: true are claimed)"
        )
    if task.status in HELD:
        return held_message(task)
    if task.status == Status.OFFERED:
        return f"task {task.name} is offered to worker {task.offer_to} until {task.offer_until}"
    if task.status != Status.PENDING:
        return f"task {task.name} is {task.status.value}: only a pending task can be claimed"
    return None
