"""What the MCP tools take and give, as pure functions: no engine, no I/O.

Tool arguments come from an agent and are as hostile as any HTTP body: every one passes
the same checks as the REST API (provisioner.queueing, provisioner.prompts), and every
refusal is a ParameterError whose message the agent can act on. The tools turn these
into ToolErrors; unit tests call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner.errors import ParameterError
from provisioner.lifecycle import TERMINAL, Status
from provisioner.model import QueueFields, Task
from provisioner.prompts import check_prompt, check_strings, shorten
from provisioner.queueing import (
    DEFAULT_PRIORITY,
    MAX_NOTE_BYTES,
    Completion,
    check_label,
    check_text,
    parse_completion,
    parse_priority,
)

# CacheBash's names for the status filter of get_tasks, beside Dockyard's own statuses:
# `created` has not started, `active` has (its workspace starts or its agent runs)
STATUS_GROUPS: dict[str, tuple[Status, ...] | None] = {
    "created": (Status.BACKLOG, Status.PENDING, Status.OFFERED, Status.CLAIMED),
    "active": (Status.INITIALIZING, Status.ACTIVE),
    "all": None,
}
MAX_STATUS_FILTER = 200  # characters: a comma-separated list of the names above

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 1000
# get_task shows this much of a prompt (one may hold 256 KiB): enough to know the task
MAX_SHOWN_PROMPT = 16 * 1024
# a logs answer stops adding entries past this many characters of content (the agent
# pages on with `after`): a flood must not fill the agent's context window
MAX_LOG_CHARS = 64 * 1024


def parse_status_filter(text: str | None) -> list[Status] | None:
    """`created`, `active`, `all` or Dockyard statuses, comma-separated; None: every
    status."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_STATUS_FILTER:
        raise ParameterError(
            f"The status filter is {len(text)} characters: at most {MAX_STATUS_FILTER}"
        )
    wanted: list[Status] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if word in STATUS_GROUPS:
            group = STATUS_GROUPS[word]
            if group is None:
                return None
            wanted += group
            continue
        try:
            wanted.append(Status(word))
        except ValueError:
            names = [*STATUS_GROUPS, *(s.value for s in Status)]
            raise ParameterError(
                f"Unknown status {shorten(word, 40)!r}: use one of {', '.join(names)} "
                "(several separated by commas)"
            ) from None
    return list(dict.fromkeys(wanted))


def bounded(value: int | None, default: int, most: int, what: str) -> int:
    """A count from 1 to `most`; `default` when not given."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ParameterError(f"Invalid {what} {value!r}: from 1 to {most}")
    return value


@dataclass
class NewTask:
    """A create_task call, checked: what Engine.create_task takes."""

    template: str | None  # None: the target's (routing)
    preset: str | None
    prompt: str
    parameters: dict[str, Any]
    queue: QueueFields = field(default_factory=QueueFields)


def parse_new_task(args: Mapping[str, Any]) -> NewTask:
    """A create_task call's arguments (CacheBash's `instructions` or `prompt`, `title`,
    `priority` as a number or low/normal/high...) checked as the REST API checks them."""
    check_strings(dict(args), "arguments")
    prompt, instructions = args.get("prompt"), args.get("instructions")
    if prompt is not None and instructions is not None and prompt != instructions:
        raise ParameterError("Give the work as `prompt` or as `instructions`, not both")
    text = prompt if prompt is not None else instructions
    title = args.get("title")
    if text is None or not str(text).strip():
        # CacheBash makes `instructions` optional: the title is then the whole request
        text = title
    if text is None or not str(text).strip():
        raise ParameterError("The task has nothing to do: give a prompt (or instructions)")
    text = check_prompt(str(text), "the prompt")
    template = args.get("template")
    if template is None and args.get("target") is None and args.get("codebase") is None:
        raise ParameterError(
            "No template given: name the template the task runs on (such as `scripted`), "
            "or a target (or codebase) of the server that runs it"
        )
    check_label(template, "template")
    check_label(args.get("preset"), "preset")
    parameters = args.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ParameterError("`parameters` is an object of template parameter values")
    # a number or low/normal/high: QueueFields.check (parse_priority) makes it a number
    priority: Any = args.get("priority")
    queue = QueueFields(
        title=title,
        priority=DEFAULT_PRIORITY if priority is None else priority,
        tags=tuple(args.get("tags") or ()),
        task_type=args.get("task_type"),
        epic=args.get("epic"),
        source="mcp",  # set here, never taken from the caller
        depends_on=tuple(args.get("depends_on") or ()),
        on_dependency_failure=args.get("on_dependency_failure") or "fail",
        action=args.get("action") or "queue",
        target=args.get("target"),
        codebase=args.get("codebase"),
        parent=args.get("parent"),
    )
    queue.check()  # priority 0-100 or a name, tags, labels, action...: ParameterError
    return NewTask(template, args.get("preset"), text, dict(parameters), queue)


def parse_completion_args(args: Mapping[str, Any]) -> Completion:
    """complete_task's CacheBash fields (`completed_status` SUCCESS|FAILED|SKIPPED|
    CANCELLED, error_code, error_class, tokens_in, tokens_out, cost_usd, model, output)."""
    check_strings(dict(args), "arguments")
    status = args.get("completed_status")
    if status is None:
        raise ParameterError(
            "Say how the task ended: completed_status SUCCESS, FAILED, SKIPPED or CANCELLED"
        )
    fields = {k: v for k, v in args.items() if k != "completed_status"}
    return parse_completion({**fields, "outcome": status})


def ended_message(task: Task, act: str) -> str | None:
    """Why `act` cannot be done on a task that has ended, with what to do; None if it has
    not ended."""
    if task.status not in TERMINAL:
        return None
    return f"task {task.name} has ended ({task.status.value}); cannot {act}: create a new task"


def task_summary(task: Task) -> dict[str, Any]:
    """A task as the tools show it: where it is, what it asks, how it ended, what it cost.
    Not its prompt or parameters (get_task adds the prompt), so lists stay small."""
    return {
        "taskId": task.id,
        "name": task.name,
        "title": task.title,
        "owner": task.owner,
        "status": task.status.value,
        "state": task.state,
        "message": task.message,
        "priority": task.priority,
        "action": task.action,
        "tags": list(task.tags),
        "target": task.target,
        "epic": task.epic,
        "template": task.template,
        "source": task.source,
        "depends_on": list(task.depends_on),
        "blocked": task.blocked,
        "parent_id": task.parent_id,
        "progress": task.progress,
        "question": task.question,
        "outcome": task.outcome,
        "error_code": task.error_code,
        "error_class": task.error_class,
        "output": task.output,
        "tokens_in": task.tokens_in,
        "tokens_out": task.tokens_out,
        "cost_usd": task.cost_usd,
        "model": task.model,
        # a claim of a queue-only task: who holds it, under which session, until when
        "queue_only": task.queue_only,
        "claimed_by": task.claimed_by,
        "session_id": task.session_id,
        "claim_until": task.claim_until,
        "created_at": task.created_at,
        "finished_at": task.finished_at,
    }


def clipped(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a note of how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


def log_page(
    rows: list[tuple[Any, ...]], keys: tuple[str, ...], max_chars: int = MAX_LOG_CHARS
) -> tuple[list[dict[str, Any]], bool]:
    """Log rows (in the order of `keys`) as entries, oldest first, stopping once their
    content passes `max_chars` (always at least one, cut if it alone is larger); and
    whether entries were left out (the caller pages on after the last id)."""
    entries: list[dict[str, Any]] = []
    used = 0
    for row in rows:
        entry = dict(zip(keys, row, strict=True))
        content = str(entry.get("content") or "")
        if entries and used + len(content) > max_chars:
            return entries, True
        if len(content) > max_chars:
            content = content[:max_chars] + " [cut]"
        used += len(content)
        entries.append(
            {
                "id": entry["id"],
                "type": entry["type"],
                "content": content,
                "time": entry["time"],
            }
        )
    return entries, False


# complete_task's fields, also taken by manage_tasks' update
COMPLETION_FIELDS = (
    "completed_status",
    "output",
    "error_code",
    "error_class",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "model",
)

# manage_tasks (ByteBrew's one tool): which of its fields each action takes
MANAGE_FIELDS: dict[str, frozenset[str]] = {
    "create": frozenset(
        {
            "title",
            "prompt",
            "description",
            "template",
            "preset",
            "target",
            "priority",
            "tags",
            "depends_on",
            "parent",
        }
    ),
    "list": frozenset({"status", "target", "limit"}),
    "update": frozenset({"taskId", "priority", "progress", *COMPLETION_FIELDS}),
}


def parse_manage(given: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """manage_tasks' action and the fields given for it (None left out); a field that
    the action does not take is refused by name, so a mistake is not silently ignored."""
    action = given.get("action")
    if action not in MANAGE_FIELDS:
        shown = shorten(str(action), 40)
        raise ParameterError(f"Unknown action {shown!r}: one of create, list, update")
    fields = {k: v for k, v in given.items() if k != "action" and v is not None}
    stray = sorted(set(fields) - MANAGE_FIELDS[action])
    if stray:
        raise ParameterError(
            f"manage_tasks {action} does not take {', '.join(stray)}: it takes "
            f"{', '.join(sorted(MANAGE_FIELDS[action]))}"
        )
    if action == "update":
        if "taskId" not in fields:
            raise ParameterError("manage_tasks update needs taskId: the task to change")
        if not {"priority", "progress", "completed_status"} & set(fields):
            raise ParameterError("manage_tasks update needs priority, progress or completed_status")
        extra = {k for k in COMPLETION_FIELDS if k in fields} - {"completed_status"}
        if extra and "completed_status" not in fields:
            raise ParameterError(
                f"{', '.join(sorted(extra))} go with completed_status: say how the task ended"
            )
        # all of it checked before any of it is applied: no half-done update
        if "priority" in fields:
            parse_priority(fields["priority"])
        if "progress" in fields and not check_text(
            fields["progress"], "progress note", MAX_NOTE_BYTES
        ):
            raise ParameterError("The progress note is empty")
        if "completed_status" in fields:
            parse_completion_args({k: fields[k] for k in COMPLETION_FIELDS if k in fields})
    if action == "create" and "description" in fields:
        # ByteBrew's name for the work: CacheBash calls it instructions
        fields["instructions"] = fields.pop("description")
    return action, fields
