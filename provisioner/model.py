"""The task record as the engine and the API see it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner.errors import ParameterError
from provisioner.lifecycle import Status
from provisioner.queueing import (
    ACTIONS,
    DEFAULT_PRIORITY,
    DEPENDENCY_POLICIES,
    MAX_DEPENDENCIES,
    SOURCES,
    check_choice,
    check_codebase,
    check_label,
    check_retries,
    check_tags,
    parse_priority,
)


def utcnow() -> str:
    """Now, as an ISO 8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse a timestamp written by utcnow()."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def slug_from_prompt(prompt: str, max_len: int = 32) -> str:
    """A readable name stem from the first words of a prompt."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    stem = ""
    for word in words:
        candidate = f"{stem}-{word}" if stem else word
        if len(candidate) > max_len:
            break
        stem = candidate
    return stem or "task"


# never shown by the API: the bridge's credential, unredacted parameters, the lease
PRIVATE_FIELDS = ("bridge_token", "resolved", "lease_owner", "lease_until")

# use with fullmatch: `$` would also take a name ending in a newline
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# the owner of warm-pool members until a claim gives them a user (no user has this name)
POOL_OWNER = "@pool"


@dataclass
class Task:
    """One task: a prompt, the workspace it runs in, and where it is in its life."""

    id: str
    name: str
    display_name: str
    owner: str
    template: str
    template_version: str
    preset: str | None
    parameters: dict[str, Any]
    resolved: dict[str, Any]
    prompt: str
    status: Status
    bridge_token: str
    created_at: str
    updated_at: str
    priority: int = 50  # 0-100, higher first
    state: str | None = None
    phase: str | None = None
    message: str = ""
    error_class: str | None = None
    workspace: dict[str, Any] | None = field(default=None)
    policy: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    state_changed_at: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    kind: str = "task"  # "pool": a warm workspace waiting to be claimed by a task
    queued_at: str | None = None  # when a resume began waiting for capacity
    # the queue (issue: priorities, routing, dependencies, outcomes, cost)
    title: str = ""  # short; the prompt's first line unless given
    tags: list[str] = field(default_factory=list)
    task_type: str | None = None  # free: bug, feature, review...
    epic: str | None = None  # a name grouping tasks
    source: str = "api"  # where it came from (cli, api, agent...): set by the server
    created_by: str | None = None  # the actor who created it
    depends_on: list[str] = field(default_factory=list)  # task ids that must complete first
    on_dependency_failure: str = "fail"  # fail | wait
    # pending, but waiting for its dependencies: no place in the capacity queue meanwhile
    blocked: bool = False
    action: str = "queue"  # queue | interrupt | backlog | parallel | sprint
    target: str | None = None  # a named route of the server's config
    codebase: str | None = None
    parent_id: str | None = None  # forked from this task
    retries: int = 0  # automatic retries allowed (TRANSIENT and TIMEOUT errors only)
    attempt: int = 1
    retry_at: str | None = None  # when the next automatic retry may start
    outcome: str | None = None  # SUCCESS | FAILED | SKIPPED | CANCELLED once reported
    error_code: str | None = None
    output: str | None = None  # the result text reported with the outcome
    progress: str | None = None  # the latest progress note
    question: str | None = None  # what the agent asked, while it waits for an answer
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    finished_at: str | None = None
    # claims (queue-only tasks of a `workers: true` target; see provisioner.claiming)
    queue_only: bool = False
    claimed_by: str | None = None  # the user holding the claim
    session_id: str | None = None  # the claimer's session (its renewals must name it)
    worker: str | None = None  # the registered worker that claimed it, if any
    claim_until: str | None = None  # the lease: back to pending unless renewed by then
    offer_to: str | None = None  # the worker it is offered to (once ready) until accepted
    offer_until: str | None = None  # the offer's end: back to the pool unless accepted
    schedule_id: str | None = None  # the schedule that made it (source: cron)
    # the repository (the `repo` parameter): the commit the task branch started from, and
    # the newest checkpoint Dockyard committed on it
    base_commit: str | None = None
    checkpoint_commit: str | None = None
    node: str | None = None  # the cluster node its disk lives on (swarm backend)

    def queue_fields(self) -> dict[str, Any]:
        """What the task queue adds to a task, as stored (for a claimed warm workspace)."""
        return {name: getattr(self, name) for name in QUEUE_FIELDS}

    def public(self) -> dict[str, Any]:
        """The task as the API shows it: no token, no unredacted parameters."""
        data = asdict(self)
        for private in PRIVATE_FIELDS:
            data.pop(private)
        data["status"] = self.status.value
        return data


# the queue's fields a task gets at creation (a warm workspace claimed takes them too)
QUEUE_FIELDS = (
    "priority",
    "title",
    "tags",
    "task_type",
    "epic",
    "source",
    "created_by",
    "depends_on",
    "on_dependency_failure",
    "action",
    "target",
    "codebase",
    "parent_id",
    "retries",
    "schedule_id",
)


@dataclass
class QueueFields:
    """What a creator may say about a task's place in the queue (all checked by check())."""

    title: str | None = None
    priority: int = DEFAULT_PRIORITY
    tags: tuple[str, ...] = ()
    task_type: str | None = None
    epic: str | None = None
    source: str = "api"  # set by the server from how the request came
    depends_on: tuple[str, ...] = ()  # task refs (names or ids) of the same owner
    on_dependency_failure: str = "fail"
    action: str = "queue"
    target: str | None = None
    codebase: str | None = None
    parent: str | None = None  # a task ref to fork from
    retries: int | None = None  # None: the template's lifecycle.retries
    offer_to: str | None = None  # a worker to offer it to (a queue-only task)
    schedule_id: str | None = None  # set by the scheduler, never taken from a caller

    def check(self) -> None:
        """Raise ParameterError naming the first field that is not acceptable."""
        self.priority = parse_priority(self.priority)
        self.tags = tuple(check_tags(self.tags))
        check_label(self.task_type, "task type")
        check_label(self.epic, "epic")
        check_label(self.target, "target")
        check_codebase(self.codebase)
        check_choice(self.source, SOURCES, "source")
        check_choice(self.on_dependency_failure, DEPENDENCY_POLICIES, "dependency failure policy")
        check_choice(self.action, ACTIONS, "action")
        if self.retries is not None:
            self.retries = check_retries(self.retries)
        if len(self.depends_on) > MAX_DEPENDENCIES:
            raise ParameterError(
                f"Too many dependencies ({len(self.depends_on)}): at most {MAX_DEPENDENCIES}"
            )
        if self.offer_to is not None and not NAME_RE.fullmatch(str(self.offer_to)):
            raise ParameterError(f"Invalid worker name {str(self.offer_to)[:40]!r} (--offer-to)")
        if self.action == "sprint" and not self.epic:
            raise ParameterError("A sprint task belongs to an epic: give --epic NAME")
