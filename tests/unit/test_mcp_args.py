"""The MCP tools' argument checks and answers, as pure functions (no server, no engine)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from provisioner.auth.tokens import Principal, Role
from provisioner.errors import ParameterError, PayloadTooLarge
from provisioner.lifecycle import Outcome, Status
from provisioner.server.mcp import args
from provisioner.server.mcp.caller import CallerContext, access_token, principal_of
from provisioner.store.records import LOG_KEYS
from tests.stored import new_task


def test_status_filters_take_cachebash_names_and_dockyard_statuses() -> None:
    assert args.parse_status_filter(None) is None
    assert args.parse_status_filter("all") is None
    assert args.parse_status_filter(" ") is None
    assert args.parse_status_filter("created") == [
        Status.BACKLOG,
        Status.PENDING,
        Status.OFFERED,
        Status.CLAIMED,
    ]
    assert args.parse_status_filter("active") == [Status.INITIALIZING, Status.ACTIVE]
    assert args.parse_status_filter("Paused, active,paused") == [
        Status.PAUSED,
        Status.INITIALIZING,
        Status.ACTIVE,
    ]
    assert args.parse_status_filter("completed,all") is None  # all wins


@pytest.mark.parametrize("text", ["bogus", "active;drop", "x" * 300, "\x1b[2J"])
def test_an_unknown_status_names_the_choices(text: str) -> None:
    with pytest.raises(ParameterError) as caught:
        args.parse_status_filter(text)
    assert len(str(caught.value)) < 400
    if len(text) < 200:
        assert "created, active, all" in str(caught.value)


def test_a_new_task_takes_cachebash_fields() -> None:
    new = args.parse_new_task(
        {
            "title": "Fix auth",
            "instructions": "Line 42 expects a string\r\nFix it",
            "template": "scripted",
            "priority": "high",
            "action": "backlog",
            "tags": ["auth", "auth", "p1"],
            "depends_on": ["build-1a2b"],
            "parent": "base",
            "parameters": {"work_seconds": 0.1},
        }
    )
    assert new.prompt == "Line 42 expects a string\nFix it"  # as it will be typed
    assert (new.template, new.preset, new.parameters) == ("scripted", None, {"work_seconds": 0.1})
    q = new.queue
    assert (q.title, q.priority, q.action, q.source) == ("Fix auth", 75, "backlog", "mcp")
    assert q.tags == ("auth", "p1") and q.depends_on == ("build-1a2b",) and q.parent == "base"


def test_a_title_alone_is_the_work() -> None:
    new = args.parse_new_task({"title": "Bump the version", "template": "scripted"})
    assert new.prompt == "Bump the version" and new.queue.priority == 50


def test_a_target_or_codebase_may_stand_for_the_template() -> None:
    routed = args.parse_new_task({"prompt": "a", "target": "builder"})
    assert (routed.template, routed.queue.target) == (None, "builder")
    served = args.parse_new_task({"prompt": "a", "codebase": "web/app"})
    assert (served.template, served.queue.codebase) == (None, "web/app")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({}, "nothing to do"),
        ({"prompt": "  "}, "nothing to do"),
        ({"prompt": "a", "instructions": "b"}, "not both"),
        ({"prompt": "a"}, "No template given"),
        ({"prompt": "a", "template": "a b"}, "Invalid template"),
        ({"prompt": "a", "template": "t", "preset": "../x"}, "Invalid preset"),
        ({"prompt": "a", "template": "t", "priority": 101}, "from 0 to 100"),
        ({"prompt": "a", "template": "t", "priority": True}, "Invalid priority"),
        ({"prompt": "a", "template": "t", "target": "-x"}, "Invalid target"),
        ({"prompt": "a", "template": "t", "parameters": ["x"]}, "parameters"),
        ({"prompt": "a\x03", "template": "t"}, "U+0003 (Ctrl-C)"),
        ({"prompt": "a", "template": "t", "depends_on": ["d"] * 51}, "Too many dependencies"),
        ({"prompt": "a", "template": "t", "action": "sprint"}, "epic"),
    ],
)
def test_a_bad_new_task_says_what_is_wrong(given: dict[str, Any], says: str) -> None:
    with pytest.raises(ParameterError) as caught:
        args.parse_new_task(given)
    assert says in str(caught.value)


def test_a_huge_prompt_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge, match="at most 262144 bytes"):
        args.parse_new_task({"prompt": "x" * (257 * 1024), "template": "t"})


def test_completion_maps_cachebash_fields() -> None:
    done = args.parse_completion_args(
        {
            "completed_status": "failed",
            "error_code": "type_check_failed",
            "tokens_in": 15000,
            "tokens_out": 3200,
            "cost_usd": 0.08,
            "model": "claude-sonnet-4-5-20250929",
        }
    )
    assert done.outcome == Outcome.FAILED and done.error_class is not None
    assert done.error_class.value == "UNKNOWN"  # a failure without a class
    assert (done.cost.tokens_in, done.cost.cost_usd) == (15000, 0.08)
    with pytest.raises(ParameterError, match="completed_status"):
        args.parse_completion_args({"output": "x"})
    with pytest.raises(ParameterError, match="Invalid cost_usd"):
        args.parse_completion_args({"completed_status": "SUCCESS", "cost_usd": float("inf")})


def test_manage_routes_fields_by_action_and_checks_updates_whole() -> None:
    action, fields = args.parse_manage(
        {"action": "create", "prompt": None, "description": "work", "template": "t"}
    )
    assert (action, fields) == ("create", {"instructions": "work", "template": "t"})
    assert args.parse_manage({"action": "list", "status": "active"}) == (
        "list",
        {"status": "active"},
    )
    for given, says in [
        ({"action": "drop"}, "Unknown action 'drop'"),
        ({"action": "list", "title": "x"}, "does not take title"),
        ({"action": "update", "priority": 5}, "needs taskId"),
        ({"action": "update", "taskId": "t"}, "needs priority, progress or completed_status"),
        ({"action": "update", "taskId": "t", "progress": "x", "output": "y"}, "go with"),
        ({"action": "update", "taskId": "t", "priority": 5, "progress": "\x07"}, "control"),
        ({"action": "update", "taskId": "t", "priority": 500}, "from 0 to 100"),
        (
            {"action": "update", "taskId": "t", "priority": 5, "completed_status": "meh"},
            "Invalid outcome",
        ),
    ]:
        with pytest.raises(ParameterError) as caught:
            args.parse_manage(given)
        assert says in str(caught.value), given


def test_ended_tasks_say_what_to_do_instead() -> None:
    task = new_task(Status.COMPLETED, name="build-1a2b")
    assert args.ended_message(task, "send to it") == (
        "task build-1a2b has ended (completed); cannot send to it: create a new task"
    )
    assert args.ended_message(new_task(Status.PAUSED), "send to it") is None


def test_a_summary_shows_the_queue_fields_not_the_secrets() -> None:
    task = new_task(Status.ACTIVE, name="t1", tags=["a"], question="Which?", state="idle")
    shown = args.task_summary(task)
    assert shown["taskId"] == task.id and shown["question"] == "Which?"
    assert "bridge_token" not in shown and "parameters" not in shown and "prompt" not in shown


def test_a_log_page_is_bounded_by_its_content() -> None:
    rows = [(i, i, "output", "x" * 40, "t", None, None, None) for i in range(1, 6)]
    entries, cut = args.log_page(rows, LOG_KEYS, max_chars=100)
    assert [e["id"] for e in entries] == [1, 2] and cut
    entries, cut = args.log_page(rows[:2], LOG_KEYS, max_chars=100)
    assert len(entries) == 2 and not cut
    huge = [(9, 9, "output", "y" * 500, "t", None, None, None)]
    entries, cut = args.log_page(huge, LOG_KEYS, max_chars=100)
    assert entries[0]["content"].endswith("[cut]") and len(entries[0]["content"]) < 120


def test_long_text_is_clipped_saying_so() -> None:
    assert args.clipped("short", 10) == "short"
    assert args.clipped("x" * 25, 10) == "x" * 10 + "\n[... 15 more characters not shown]"


def test_counts_are_bounded() -> None:
    assert args.bounded(None, 50, 200, "limit") == 50
    for bad in (0, 201, -1, True):
        with pytest.raises(ParameterError, match="Invalid limit"):
            args.bounded(bad, 50, 200, "limit")


def test_the_caller_travels_through_the_sdks_access_token() -> None:
    who = Principal(user="alice", role=Role.MEMBER, token_id="abc123")
    token = access_token(who)
    assert token.client_id == "alice" and token.token == "abc123"  # the id, not the secret
    assert principal_of(token) == who
    with pytest.raises(ToolError, match="API token"):
        principal_of(None)


def test_the_mcp_app_is_never_served_without_a_caller() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["user"].username)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    guarded = CallerContext(app)
    anyio.run(guarded, {"type": "http", "state": {}}, receive, send)
    assert sent[0]["status"] == 401 and not reached
    who = Principal(user="bob", role=Role.ADMIN, token_id="t1")
    anyio.run(guarded, {"type": "http", "state": {"principal": who}}, receive, send)
    assert reached == ["bob"]
