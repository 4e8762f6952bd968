"""The built-in claude-code template against a fake Anthropic API, driven through the CLI.

Claude Code (the real npm package, its native binary) runs in a workspace built from the
template; the fake model answers with Write and Edit tool calls, so the edits really happen
in /workspace. Working/idle comes from Claude Code's hooks: the task's history shows each
idle caused by a Stop hook. What Claude Code said comes from its Stop hook too: each reply
is in the task's logs once, and its last line is the task's message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker.agent_script import (
    EDIT_PROMPT,
    EDITED,
    HELLO,
    RECAP_PROMPT,
    WRITE_PROMPT,
    wait_file,
    wait_model_call,
)
from tests.docker.conftest import ServerHandle
from tests.fake_model_server import (
    FakeModelServer,
    RecordedRequest,
    Reply,
    ToolCall,
    last_user_text,
    message_texts,
)

pytestmark = pytest.mark.slow

# a cold image build (apt + npm) takes a minute or two; give a fresh CI machine room
BUILD_TIMEOUT_S = 900


def _last_user_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    return []


class ClaudeScript:
    """The fake model: a Write on the first prompt, an Edit on the second, text after each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tool_results: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any], api: str) -> Reply | str:
        if api != "anthropic" or not body.get("tools"):
            return "OK"  # side calls (titles, summaries) carry no tools
        results = [b for b in _last_user_blocks(body) if b.get("type") == "tool_result"]
        if results:
            with self.lock:
                self.tool_results += results
            failed = [r for r in results if r.get("is_error")]
            if failed:
                return Reply(text=f"The tool failed: {json.dumps(failed)[:300]}")
            if results[0].get("tool_use_id", "").startswith("toolu_write"):
                return Reply(text="Created hello.py.")
            # slow to answer: the test reads the logs while this turn still runs
            return Reply(text="Updated hello.py.", delay_s=EDIT_REPLY_DELAY_S)
        prompt = last_user_text(body)
        if "dockyard-edit" in prompt:
            edit = {
                "file_path": "/workspace/hello.py",
                "old_string": "print('hello')",
                "new_string": "print('hello, dockyard')",
            }
            return Reply(
                text="I'll edit the file.", tool_calls=[ToolCall("Edit", edit, id="toolu_edit_1")]
            )
        if "dockyard-write" in prompt:
            write = {"file_path": "/workspace/hello.py", "content": HELLO}
            return Reply(
                text="I'll create the file.",
                tool_calls=[ToolCall("Write", write, id="toolu_write_1")],
            )
        if "dockyard-recap" in prompt:
            return Reply(text="I created hello.py and then edited it.")
        return "Nothing to do."


EDIT_REPLY_DELAY_S = 4.0


@pytest.fixture
def fake() -> Iterator[tuple[FakeModelServer, ClaudeScript]]:
    script = ClaudeScript()
    with FakeModelServer(script) as server:
        yield server, script


def events(server: ServerHandle, task: str) -> list[dict[str, Any]]:
    return list(json.loads(server.cli("task", "events", task, "-o", "json").stdout))


def state_events(server: ServerHandle, task: str) -> list[tuple[str, str, str]]:
    return [
        (e["from_value"], e["to_value"], e["reason"])
        for e in events(server, task)
        if e["kind"] == "state"
    ]


def idle_by_stop(server: ServerHandle, task: str) -> list[tuple[str, str, str]]:
    return [e for e in state_events(server, task) if e[1:] == ("idle", "hook stop")]


def session_files(server: ServerHandle, task: str) -> str:
    """Claude Code's own conversation records in the task's home volume."""
    code, out = server.exec(task, "sh", "-c", "cat /home/agent/.claude/projects/*/*.jsonl")
    assert code == 0, out
    return out


def all_logs(server: ServerHandle, task: str) -> list[dict[str, Any]]:
    """Every log entry, the lines cut from Claude Code's screen too."""
    return list(json.loads(server.cli("task", "logs", task, "-o", "json", "--screen").stdout))


def turn_calls(model: FakeModelServer) -> list[RecordedRequest]:
    """The model calls of real turns (with Claude Code's tools), not the side calls."""
    return [r for r in model.model_requests("anthropic") if r.body.get("tools")]


def said(server: ServerHandle, task: str) -> list[str]:
    """The output lines `dockyard task logs` shows: what the agent said (and the setup's)."""
    lines = [e for e in server.logs(task) if e["type"] == "output"]
    assert all(e.get("source") in ("agent", "setup") for e in lines), lines
    return [e["content"] for e in lines if e.get("source") == "agent"]


def assert_replied(server: ServerHandle, task: str, *replies: str) -> list[str]:
    """Each reply is in the logs exactly once, and the last one is the task's message."""
    lines = said(server, task)
    for reply in replies:
        assert lines.count(reply) == 1, (reply, lines)
    assert server.status(task)["message"] == replies[-1]
    return lines


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_claude_code_edits_files_and_reports_turns_through_hooks(
    server: ServerHandle, fake: tuple[FakeModelServer, ClaudeScript]
) -> None:
    model, script = fake
    started = time.monotonic()
    result = server.cli(
        "task", "create", "--template", "claude-code",
        "--param", f"base_url={model.base_url_for_containers}",
        "--param", "model=claude-sonnet-4-5",
        "-q", WRITE_PROMPT,
    )  # fmt: skip
    task = result.stdout.strip()
    assert len(task) == 36, result.stdout
    try:
        status = server.wait_idle(task, timeout=BUILD_TIMEOUT_S)
        ready_s = time.monotonic() - started
        assert status["template"] == "claude-code"
        assert status["parameters"]["api_key"] == "********"
        wait_file(server, task, HELLO, 30)
        # the model saw Claude Code's tool result for its Write
        assert any(r["tool_use_id"] == "toolu_write_1" for r in script.tool_results)
        assert not model.errors
        code, owner = server.exec(task, "stat", "-c", "%u", "/workspace/hello.py")
        assert code == 0 and owner.strip() == "1000"

        # working -> idle, and the idle came from Claude Code's Stop hook
        history = state_events(server, task)
        assert history and history[-1] == ("working", "idle", "hook stop"), history
        # the turn's reply, its tool use on one line, in the logs; the reply's end the message
        first = assert_replied(server, task, "Created hello.py.")
        assert first == ["I'll create the file.", "[tool] Write hello.py", "Created hello.py."]
        # the lines cut from its screen are kept (--screen shows them), each marked
        outputs = [e for e in all_logs(server, task) if e["type"] == "output"]
        assert {e.get("source") for e in outputs} <= {"agent", "screen", "setup"}, outputs

        server.cli("task", "send", task, EDIT_PROMPT)
        wait_file(server, task, EDITED, 60)
        # mid-turn (the model is slow with its last answer): the logs already show what the
        # turn said and the tool it used, reported by the PreToolUse hook
        running = server.wait_for(
            task,
            lambda s: "[tool] Edit hello.py" in said(server, task),
            EDIT_REPLY_DELAY_S,
            "the edit's tool use in the logs while the turn runs",
        )
        assert running["state"] == "working"
        assert said(server, task)[3:] == ["I'll edit the file.", "[tool] Edit hello.py"]
        server.wait_for(
            task,
            lambda s: s["state"] == "idle" and len(idle_by_stop(server, task)) >= 2,
            60,
            "idle again after the second turn's Stop hook",
        )
        assert any(r["tool_use_id"] == "toolu_edit_1" for r in script.tool_results)
        edit_call = wait_model_call(lambda: turn_calls(model), "dockyard-edit", 5)
        assert "Requirement 1: keep" in last_user_text(edit_call.body)
        assert "Requirement 60: keep the file tidy." in last_user_text(edit_call.body)
        failed = [r for r in script.tool_results if r.get("is_error")]
        assert not failed, failed
        lines = assert_replied(server, task, "Created hello.py.", "Updated hello.py.")
        assert lines[3:] == ["I'll edit the file.", "[tool] Edit hello.py", "Updated hello.py."]
        logs = all_logs(server, task)
        inputs = [e["content"] for e in logs if e["type"] == "input"]
        assert inputs == [WRITE_PROMPT, EDIT_PROMPT]
        assert all(e.get("delivery") == "taken" for e in logs if e["type"] == "input")
        # Claude Code keeps the conversation in its home volume (what --continue resumes)
        assert "Updated hello.py." in session_files(server, task)
        # the key was never shown: not in the logs, not in the status
        assert "sk-ant-dockyard-placeholder-key" not in json.dumps(logs) + json.dumps(status)

        # pause and resume: Claude Code continues the same conversation (--continue)
        server.cli("task", "pause", task)
        assert server.status(task)["status"] == "paused"
        server.cli("task", "resume", task)
        server.wait_idle(task, timeout=120)
        _, ps = server.exec(task, "ps", "-eo", "args")
        assert "--continue" in ps, ps
        server.cli("task", "send", task, RECAP_PROMPT)
        recap = wait_model_call(lambda: turn_calls(model), RECAP_PROMPT, 60)
        assert WRITE_PROMPT in message_texts(recap.body)  # the earlier turns came along
        server.wait_for(
            task,
            lambda s: s["state"] == "idle" and len(idle_by_stop(server, task)) >= 3,
            60,
            "idle after the resumed session's Stop hook",
        )
        code, out = server.exec(task, "cat", "/workspace/hello.py")
        assert code == 0 and out == EDITED
        # the resumed session's reply, and nothing of the earlier turns again
        recap = "I created hello.py and then edited it."
        lines = assert_replied(server, task, "Created hello.py.", "Updated hello.py.", recap)
        assert lines[6:] == [recap]
        print(f"\nclaude-code: created to first idle in {ready_s:.1f}s (image build included)")
    finally:
        server.cli("task", "delete", "-y", task, check=False)
    assert server.containers(task) == [] and server.volumes(task) == []
