"""Pure translation between Dockyard and A2A: no I/O, unit-tested on its own.

A Dockyard task is shown as an A2A task with the same id: its status and state become
a TaskState, each prompt and the agent's output after it become a turn (a user message,
an agent message and an artifact per turn), and an A2A message becomes a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from provisioner.bridge.runtime.wire import PROMPT_FINISHED
from provisioner.errors import (
    DockyardError,
    Forbidden,
    ParameterError,
    TaskConflict,
    TaskNotFound,
    TemplateError,
    Unauthenticated,
)
from provisioner.lifecycle import State, Status
from provisioner.prompts import shorten

# The A2A states a client stops waiting at: the SDK's INTERRUPTED and TERMINAL sets.
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})
FINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)

# an agent's reply shown in one artifact: its last this many UTF-8 bytes (a flood of
# output must not make every GetTask megabytes long; the REST logs have it all)
MAX_REPLY_BYTES = 64 * 1024
# an A2A message's text parts joined: one prompt
PART_SEPARATOR = "\n"


def a2a_state(status: Status, state: str | None, retry_at: str | None = None) -> TaskState:
    """The A2A state of a Dockyard task (the table in docs/a2a.md).

    Paused counts as waiting for input: a follow-up message resumes it. An error with an
    automatic retry scheduled is still being worked on; one without is FAILED, since A2A
    has no resumable failure (a user may still resume it through the REST API or CLI,
    and it shows WORKING again).
    """
    if status == Status.ACTIVE:
        if state in (State.IDLE.value, State.INPUT_REQUIRED.value):
            return TaskState.TASK_STATE_INPUT_REQUIRED
        return TaskState.TASK_STATE_WORKING
    if status == Status.ERROR:
        return TaskState.TASK_STATE_WORKING if retry_at else TaskState.TASK_STATE_FAILED
    try:
        return _BY_STATUS[status]
    except KeyError:
        # a status added to the lifecycle must be given its A2A state here (a unit test
        # walks every status), never shown as some other state by default
        raise ValueError(f"No A2A state for Dockyard status {status.value!r}") from None


_BY_STATUS = {
    Status.BACKLOG: TaskState.TASK_STATE_SUBMITTED,
    Status.PENDING: TaskState.TASK_STATE_SUBMITTED,
    Status.CLAIMED: TaskState.TASK_STATE_SUBMITTED,  # a worker holds it, not started yet
    Status.OFFERED: TaskState.TASK_STATE_SUBMITTED,  # offered to a worker, not accepted yet
    Status.INITIALIZING: TaskState.TASK_STATE_WORKING,
    Status.PAUSED: TaskState.TASK_STATE_INPUT_REQUIRED,
    Status.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    Status.FAILED: TaskState.TASK_STATE_FAILED,
    Status.CANCELLED: TaskState.TASK_STATE_CANCELED,
}


def message_prompt(message: Message) -> str:
    """The prompt an A2A message carries: its text parts, joined by newlines.

    Only text reaches a terminal agent: a file, raw bytes or structured data is refused
    by name rather than dropped, so the sender learns why. The text is checked later
    as any prompt is (control characters, size: provisioner.prompts.check_prompt).
    """
    texts: list[str] = []
    for i, part in enumerate(message.parts):
        kind = part.WhichOneof("content")
        if kind != "text":
            raise ParameterError(
                f"message part {i} is {kind or 'empty'}: Dockyard's agents take text only",
                hint="send the content as a text part (or put files in the workspace)",
            )
        texts.append(part.text)
    if not texts or not PART_SEPARATOR.join(texts).strip():
        raise ParameterError("The message has no text", hint="give the task something to do")
    return PART_SEPARATOR.join(texts)


@dataclass(frozen=True)
class Skill:
    """A skill of the agent card: a template, or a template with one of its presets."""

    template: str
    preset: str | None = None

    @property
    def id(self) -> str:
        return self.template if self.preset is None else f"{self.template}/{self.preset}"


def parse_skill(value: object) -> Skill:
    """A skill id as the card lists it: `template` or `template/preset`."""
    if not isinstance(value, str) or not value.strip():
        raise ParameterError("The skill must be a non-empty string such as 'scripted/default'")
    template, _, preset = value.strip().partition("/")
    if not template or (_ and not preset) or "/" in preset:
        raise ParameterError(
            f"Invalid skill id {shorten(value)!r}: use TEMPLATE or TEMPLATE/PRESET, "
            "as the agent card lists them"
        )
    return Skill(template, preset or None)


def requested_skill(*metadata: Mapping[str, Any]) -> Skill | None:
    """The skill a request names in its metadata (`skill`, or `template` and `preset`),
    the message's first, then the request's; None when none names one."""
    for meta in metadata:
        if meta.get("skill") is not None:
            return parse_skill(meta["skill"])
        if meta.get("template") is not None:
            template, preset = meta["template"], meta.get("preset")
            if not isinstance(template, str) or not (preset is None or isinstance(preset, str)):
                raise ParameterError("metadata template and preset must be strings")
            return parse_skill(template if preset is None else f"{template}/{preset}")
    return None


@dataclass
class Turn:
    """One prompt and what the agent printed after it, until the next prompt."""

    prompt_id: str
    prompt: str
    reply: list[str] = field(default_factory=list)
    started: bool = False  # the agent was given the prompt (it is in the transcript)


def turns(
    prompts: Sequence[Mapping[str, Any]],
    log_rows: Iterable[Mapping[str, Any]],
    prompt_line: re.Pattern[str] | None = None,
) -> list[Turn]:
    """The task's turns, in the order prompts were made.

    A turn's reply is the agent's output lines between the transcript's input entry of
    its prompt and the next input entry; setup output, system lines and (trailing) lines
    that are the agent's own input prompt (`prompt_line`, the template's prompt_regex)
    are left out.
    """
    by_id = {p["id"]: Turn(p["id"], p["content"]) for p in prompts}
    current: Turn | None = None
    for row in log_rows:
        if row["type"] == "input":
            current = by_id.get(row.get("prompt_id") or "")
            if current is not None:
                current.started = True
            continue
        if current is None or row["type"] != "output" or row.get("source") == "setup":
            continue
        current.reply.append(row["content"])
    for turn in by_id.values():
        while turn.reply and (
            not turn.reply[-1].strip()
            or (prompt_line is not None and prompt_line.fullmatch(turn.reply[-1]))
        ):
            turn.reply.pop()
    return list(by_id.values())


def reply_text(lines: Sequence[str], limit: int = MAX_REPLY_BYTES) -> str:
    """The lines as one text; past `limit` bytes only the end, marked as cut."""
    text = "\n".join(lines)
    data = text.encode()
    if len(data) <= limit:
        return text
    tail = data[-limit:].decode(errors="ignore")
    return f"[... {len(data) - len(tail.encode())} earlier bytes cut; see the task's logs]\n{tail}"


def _text_message(message_id: str, role: Role, text: str, task_id: str, context_id: str) -> Message:
    return Message(
        message_id=message_id,
        role=role,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def reply_artifact(turn: Turn) -> Artifact:
    """A turn's reply as an artifact, named by its prompt (one per turn)."""
    return Artifact(
        artifact_id=f"reply-{turn.prompt_id}",
        name="reply",
        description="What the agent printed after this prompt",
        parts=[Part(text=reply_text(turn.reply))],
    )


@dataclass(frozen=True)
class TaskFacts:
    """What of a Dockyard task the A2A view shows (plain values, from model.Task)."""

    id: str
    name: str
    status: Status
    state: str | None
    message: str
    updated_at: str
    retry_at: str | None = None
    question: str | None = None
    template: str = ""
    preset: str | None = None


def status_text(facts: TaskFacts, last_reply: str | None) -> str:
    """What the status message says: the agent's question, its last reply, or the
    task's own line (the error, the provisioning phase, the place in the queue)."""
    if facts.question:
        return f"asks: {facts.question}"
    state = a2a_state(facts.status, facts.state, facts.retry_at)
    if state == TaskState.TASK_STATE_INPUT_REQUIRED and last_reply:
        return last_reply
    return facts.message or facts.status.value


def a2a_task(
    facts: TaskFacts, context_id: str, task_turns: Sequence[Turn], history: bool = True
) -> Task:
    """The A2A task: state and status message, one artifact per turn that has a reply,
    and (with `history`) the conversation as messages."""
    state = a2a_state(facts.status, facts.state, facts.retry_at)
    answered = [t for t in task_turns if t.reply]
    last = reply_text(answered[-1].reply) if answered else None
    status = TaskStatus(
        state=state,
        message=_text_message(
            f"status-{facts.id}-{facts.updated_at}",
            Role.ROLE_AGENT,
            status_text(facts, last),
            facts.id,
            context_id,
        ),
    )
    status.timestamp.FromJsonString(_rfc3339(facts.updated_at))
    task = Task(
        id=facts.id,
        context_id=context_id,
        status=status,
        artifacts=[reply_artifact(t) for t in answered],
    )
    task.metadata.update(
        {
            "dockyard": {
                "name": facts.name,
                "status": facts.status.value,
                "state": facts.state,
                "template": facts.template,
                "preset": facts.preset,
            }
        }
    )
    if history:
        for t in task_turns:
            task.history.append(
                _text_message(t.prompt_id, Role.ROLE_USER, t.prompt, facts.id, context_id)
            )
            if t.reply:
                task.history.append(
                    _text_message(
                        f"reply-{t.prompt_id}",
                        Role.ROLE_AGENT,
                        reply_text(t.reply),
                        facts.id,
                        context_id,
                    )
                )
    return task


def _rfc3339(stamp: str) -> str:
    """Dockyard's `...123Z` timestamps are RFC 3339 already; an empty one is the epoch."""
    return stamp or "1970-01-01T00:00:00Z"


def turn_over(facts: TaskFacts, prompt_state: str | None) -> bool:
    """Whether the turn of a prompt is over: the task ended, or the agent took (or the
    bridge refused) the prompt and waits for input again. `prompt_state` None: the
    prompt is gone (its task was deleted), nothing more will come."""
    state = a2a_state(facts.status, facts.state, facts.retry_at)
    if state in FINAL or prompt_state is None:
        return True
    return prompt_state in PROMPT_FINISHED and state in INTERRUPTED


def a2a_error(exc: DockyardError) -> A2AError:
    """The JSON-RPC error a Dockyard error is answered with: its words (and hint) kept,
    the A2A code chosen by kind, so a client can tell a bad request from a fault."""
    text = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
    data = {"hint": exc.hint} if exc.hint else None
    kind: type[A2AError]
    if isinstance(exc, TaskNotFound):
        kind = TaskNotFoundError
    elif isinstance(exc, TemplateError):  # bad input: a prompt, a skill, a parameter
        kind = InvalidParamsError
    elif isinstance(exc, TaskConflict):  # the task's status does not allow it
        kind = UnsupportedOperationError
    elif isinstance(exc, Unauthenticated | Forbidden):
        kind = InvalidRequestError
    else:  # the backend is down, a bridge failed: the server's side
        kind = InternalError
    return kind(message=text, data=data)
