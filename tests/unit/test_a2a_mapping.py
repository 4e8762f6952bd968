"""The pure A2A translation: Dockyard status/state -> A2A state, message -> prompt,
skill ids, turns from the transcript, when a turn is over, errors."""

from __future__ import annotations

import re

import pytest
from a2a.types.a2a_pb2 import Message, Part, Role, TaskState
from a2a.utils.errors import (
    InternalError,
    InvalidParamsError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from provisioner.errors import (
    BackendUnavailable,
    ParameterError,
    PayloadTooLarge,
    TaskConflict,
    TaskNotFound,
    TemplateNotFound,
)
from provisioner.lifecycle import Status
from provisioner.server.a2a.mapping import (
    Skill,
    TaskFacts,
    a2a_error,
    a2a_state,
    a2a_task,
    message_prompt,
    parse_skill,
    reply_text,
    requested_skill,
    turn_over,
    turns,
)

S = TaskState


@pytest.mark.parametrize(
    ("status", "state", "retry_at", "expected"),
    [
        (Status.BACKLOG, None, None, S.TASK_STATE_SUBMITTED),
        (Status.PENDING, None, None, S.TASK_STATE_SUBMITTED),
        (Status.INITIALIZING, None, None, S.TASK_STATE_WORKING),
        (Status.ACTIVE, "working", None, S.TASK_STATE_WORKING),
        (Status.ACTIVE, "idle", None, S.TASK_STATE_INPUT_REQUIRED),
        (Status.ACTIVE, "input_required", None, S.TASK_STATE_INPUT_REQUIRED),
        (Status.PAUSED, None, None, S.TASK_STATE_INPUT_REQUIRED),
        (Status.ERROR, None, None, S.TASK_STATE_FAILED),
        (Status.ERROR, None, "2026-01-01T00:00:00.000Z", S.TASK_STATE_WORKING),
        (Status.COMPLETED, None, None, S.TASK_STATE_COMPLETED),
        (Status.FAILED, None, None, S.TASK_STATE_FAILED),
        (Status.CANCELLED, None, None, S.TASK_STATE_CANCELED),
    ],
)
def test_state_mapping(
    status: Status, state: str | None, retry_at: str | None, expected: int
) -> None:
    assert a2a_state(status, state, retry_at) == expected


def test_every_status_has_a_state() -> None:
    for status in Status:
        assert a2a_state(status, None) != S.TASK_STATE_UNSPECIFIED


def _message(*parts: Part) -> Message:
    return Message(message_id="m", role=Role.ROLE_USER, parts=list(parts))


def test_text_parts_are_the_prompt_and_anything_else_is_refused_by_name() -> None:
    assert message_prompt(_message(Part(text="Fix it"), Part(text="carefully"))) == (
        "Fix it\ncarefully"
    )
    with pytest.raises(ParameterError, match="part 1 is url: Dockyard's agents take text"):
        message_prompt(_message(Part(text="see"), Part(url="file:///etc/passwd")))
    with pytest.raises(ParameterError, match="no text"):
        message_prompt(_message(Part(text="  \n")))
    with pytest.raises(ParameterError, match="no text"):
        message_prompt(_message())


def test_skill_ids() -> None:
    assert parse_skill("scripted") == Skill("scripted")
    assert parse_skill("scripted/slow") == Skill("scripted", "slow")
    assert Skill("scripted", "slow").id == "scripted/slow"
    for bad in ("", "a/", "/b", "a/b/c", 7):
        with pytest.raises(ParameterError):
            parse_skill(bad)
    assert requested_skill({}, {"skill": "x/y"}) == Skill("x", "y")
    assert requested_skill({"template": "t", "preset": "p"}, {"skill": "x"}) == Skill("t", "p")
    assert requested_skill({}, {}) is None
    with pytest.raises(ParameterError):
        requested_skill({"template": ["t"]})


PROMPTS = [{"id": "p1", "content": "first"}, {"id": "p2", "content": "second"}]
ROWS = [
    {"type": "system", "content": "using fake image"},
    {"type": "output", "content": "Agent ready."},
    {"type": "output", "content": "> "},
    {"type": "input", "content": "first", "prompt_id": "p1"},
    {"type": "output", "content": "setup noise", "source": "setup"},
    {"type": "output", "content": "Working on: first"},
    {"type": "output", "content": "Done: first"},
    {"type": "output", "content": ""},
    {"type": "output", "content": "> "},
    {"type": "input", "content": "second", "prompt_id": "p2"},
    {"type": "output", "content": "Working on: second"},
]


def test_turns_are_the_output_between_prompts() -> None:
    found = turns(PROMPTS, ROWS, re.compile(r"^> ?$"))
    assert [(t.prompt_id, t.reply, t.started) for t in found] == [
        ("p1", ["Working on: first", "Done: first"], True),
        ("p2", ["Working on: second"], True),
    ]
    waiting = turns([*PROMPTS, {"id": "p3", "content": "third"}], ROWS)
    assert waiting[2].reply == [] and not waiting[2].started
    assert waiting[0].reply[-1] == "> "  # without the template's prompt line it stays


def test_a_flood_keeps_only_its_end() -> None:
    text = reply_text(["x" * 100, "the end"], limit=50)
    assert text.endswith("the end") and text.startswith("[... ")
    assert "earlier bytes cut" in text
    assert reply_text(["short"], limit=50) == "short"


def _facts(status: Status, state: str | None = None, **kw: object) -> TaskFacts:
    return TaskFacts(
        id="t1",
        name="n",
        status=status,
        state=state,
        message="waiting for capacity",
        updated_at="2026-01-01T00:00:00.000Z",
        **kw,  # type: ignore[arg-type]
    )


def test_a_task_shows_its_turns_as_artifacts_and_history() -> None:
    found = turns(PROMPTS, ROWS, re.compile(r"^> ?$"))
    task = a2a_task(_facts(Status.ACTIVE, "idle"), "ctx", found)
    assert (task.id, task.context_id) == ("t1", "ctx")
    assert task.status.state == S.TASK_STATE_INPUT_REQUIRED
    assert task.status.message.parts[0].text == "Working on: second"  # the last reply
    assert [a.artifact_id for a in task.artifacts] == ["reply-p1", "reply-p2"]
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT] * 2
    asked = a2a_task(_facts(Status.ACTIVE, "input_required", question="which db?"), "c", found)
    assert asked.status.message.parts[0].text == "asks: which db?"
    queued = a2a_task(_facts(Status.PENDING), "c", [], history=False)
    assert queued.status.message.parts[0].text == "waiting for capacity"
    assert not queued.history


def test_a_turn_is_over_when_the_agent_waits_again_or_the_task_ends() -> None:
    assert not turn_over(_facts(Status.ACTIVE, "working"), "taken")
    assert not turn_over(_facts(Status.ACTIVE, "idle"), "queued")  # not yet typed
    assert turn_over(_facts(Status.ACTIVE, "idle"), "taken")
    assert turn_over(_facts(Status.ACTIVE, "idle"), "failed")  # refused by the bridge
    assert not turn_over(_facts(Status.PENDING), "queued")
    assert turn_over(_facts(Status.CANCELLED), "queued")
    assert turn_over(_facts(Status.ERROR), "delivered")
    assert turn_over(_facts(Status.ACTIVE, "working"), None)  # deleted


def test_errors_keep_their_words_and_get_a_kind() -> None:
    cases = [
        (TaskNotFound("No task 'x'"), TaskNotFoundError),
        (TemplateNotFound("Unknown template 'y'", hint="list them"), InvalidParamsError),
        (PayloadTooLarge("too big"), InvalidParamsError),
        (TaskConflict("it has ended"), UnsupportedOperationError),
        (BackendUnavailable("Docker is down"), InternalError),
    ]
    for exc, kind in cases:
        error = a2a_error(exc)
        assert isinstance(error, kind)
        assert exc.message in error.message
    assert "(list them)" in a2a_error(cases[1][0]).message
