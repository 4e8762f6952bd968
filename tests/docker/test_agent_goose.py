"""The built-in goose template against a fake chat completions API, driven through the CLI.

Goose (the real npm package, its native binary) runs its interactive `goose session` in a
workspace built from the template. The fake model answers in OpenAI's chat completions
API (streamed) with the tools Goose's developer extension declares: a `shell` call that
writes a file, then an `edit` call that changes it, so the edits really happen in
/workspace. Working/idle comes from the screen: Goose's `> ` input line and a quiet time.
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
    diagnose,
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

# Goose shows nothing while a tool runs or the model thinks after it (no spinner then):
# the first turn has both, each longer than the profile's quiet time, and must not look idle
SILENT_S = 2
WRITE_COMMAND = f"sleep {SILENT_S} && printf \"print('hello')\\n\" > hello.py"
EDIT = {"path": "hello.py", "before": "print('hello')", "after": "print('hello, dockyard')"}
PLACEHOLDER_KEY = "sk-dockyard-placeholder-key"
# a cold image build (apt + a 300 MB npm package) takes a minute or two; give a fresh CI
# machine room
BUILD_TIMEOUT_S = 900


def tool_names(body: dict[str, Any]) -> set[str]:
    """The function tools a chat completions request declares."""
    return {
        str(t["function"].get("name"))
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    }


def tool_results(body: dict[str, Any]) -> dict[str, str]:
    """The tool messages after the last user message: tool_call_id -> what the tool said."""
    found: dict[str, str] = {}
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") == "user":
            break
        if message.get("role") == "tool":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            found[str(message.get("tool_call_id"))] = text
    return found


class GooseScript:
    """The fake model: a shell call on the first prompt, an edit call on the second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: dict[str, str] = {}

    def __call__(self, body: dict[str, Any], api: str) -> Reply | str:
        if api != "openai" or "shell" not in tool_names(body):
            return "OK"  # side calls (a title for the session) carry no tools
        results = tool_results(body)
        if results:
            with self.lock:
                self.results.update(results)
            if "call_write_1" in results:
                return Reply(text="Created hello.py.", delay_s=SILENT_S)
            return Reply(text="Updated hello.py.")
        prompt = last_user_text(body)
        if "dockyard-edit" in prompt:
            return Reply(
                text="I'll edit the file.",
                tool_calls=[ToolCall("edit", EDIT, id="call_edit_1")],
            )
        if "dockyard-write" in prompt:
            return Reply(
                text="I'll create the file.",
                tool_calls=[ToolCall("shell", {"command": WRITE_COMMAND}, id="call_write_1")],
            )
        if "dockyard-recap" in prompt:
            return Reply(text="I created hello.py and then edited it.")
        return "Nothing to do."

    def result_of(self, call_id: str) -> str:
        with self.lock:
            found = self.results.get(call_id)
        assert found is not None, f"no tool result for {call_id}; got {self.results}"
        return found


@pytest.fixture
def fake() -> Iterator[tuple[FakeModelServer, GooseScript]]:
    script = GooseScript()
    with FakeModelServer(script) as server:
        yield server, script


def turn_calls(model: FakeModelServer) -> list[RecordedRequest]:
    """The model calls of real turns (with Goose's tools), not the side calls."""
    return [r for r in model.model_requests("openai") if "shell" in tool_names(r.body)]


def history(request: RecordedRequest) -> str:
    """Every text of a request, joined (Goose adds its turn context to a user message)."""
    return "\n".join(message_texts(request.body))


def sessions(server: ServerHandle, task: str) -> list[dict[str, Any]]:
    """Goose's sessions in the workspace's home volume, as `goose session list` has them."""
    code, out = server.exec(task, "goose", "session", "list", "--format", "json")
    assert code == 0, out
    found = json.loads(out)
    assert isinstance(found, list), out
    return found


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_goose_edits_files_and_takes_follow_ups(
    server: ServerHandle, fake: tuple[FakeModelServer, GooseScript]
) -> None:
    model, script = fake
    started = time.monotonic()
    result = server.cli(
        "task", "create", "--template", "goose",
        "--param", f"base_url={model.openai_base_url_for_containers}",
        "-q", WRITE_PROMPT,
    )  # fmt: skip
    task = result.stdout.strip()
    assert len(task) == 36, result.stdout
    try:
        status = server.wait_idle(task, timeout=BUILD_TIMEOUT_S)
        ready_s = time.monotonic() - started
        assert status["template"] == "goose" and status["preset"] == "default"
        assert status["parameters"]["api_key"] == "********"
        # idle came after the whole turn, not in its silences
        assert server.exec(task, "cat", "/workspace/hello.py") == (0, HELLO)
        assert "Created hello.py." in server.output(task), diagnose(server, task, model)
        script.result_of("call_write_1")  # the shell tool answered the call
        code, owner = server.exec(task, "stat", "-c", "%u", "/workspace/hello.py")
        assert code == 0 and owner.strip() == "1000"

        first = wait_model_call(lambda: turn_calls(model), WRITE_PROMPT, 5)
        assert first.path == "/v1/chat/completions" and first.body["stream"] is True
        assert first.body["model"] == "gpt-4o"  # the default preset's model
        assert first.headers.get("authorization") == f"Bearer {PLACEHOLDER_KEY}"
        assert {"shell", "write", "edit"} <= tool_names(first.body), tool_names(first.body)
        # Goose called nothing on the model host but chat completions and the model list
        # (read as Goose starts)
        seen = {(r.method, r.path) for r in model.requests}
        assert seen == {("GET", "/v1/models"), ("POST", "/v1/chat/completions")}, diagnose(
            server, task, model
        )

        edit_at = time.monotonic()
        server.cli("task", "send", task, EDIT_PROMPT)
        wait_file(server, task, EDITED, 60)
        server.wait_idle(task, timeout=60)
        edit_s = time.monotonic() - edit_at
        assert "Edited hello.py" in script.result_of("call_edit_1")
        edit_call = wait_model_call(lambda: turn_calls(model), "dockyard-edit", 5)
        # the long multi-line prompt arrived whole, as one prompt
        assert "Requirement 1: keep" in last_user_text(edit_call.body)
        assert "Requirement 60: keep the file tidy." in last_user_text(edit_call.body)
        # the follow-up went to the same session: the first turn is in its history
        assert WRITE_PROMPT in history(edit_call) and "Created hello.py." in history(edit_call)
        logs = server.logs(task)
        inputs = [e["content"] for e in logs if e["type"] == "input"]
        assert inputs == [WRITE_PROMPT, EDIT_PROMPT]
        assert all(e.get("delivery") == "taken" for e in logs if e["type"] == "input")
        # Goose keeps the session in the home volume (what `goose session --resume` continues)
        (session,) = sessions(server, task)
        assert session["working_dir"] == "/workspace" and session["message_count"] >= 8
        # the key was never shown (logs, status) nor written down by Goose (no keyring)
        assert PLACEHOLDER_KEY not in json.dumps(logs) + json.dumps(status)
        code, out = server.exec(task, "grep", "-rl", PLACEHOLDER_KEY, "/home/agent")
        assert code == 1, out

        # pause and resume: Goose continues the same session (goose session --resume)
        turns = len(turn_calls(model))
        server.cli("task", "pause", task)
        assert server.status(task)["status"] == "paused"
        server.cli("task", "resume", task)
        server.wait_idle(task, timeout=120)
        _, ps = server.exec(task, "ps", "-eo", "args")
        assert "goose session --resume" in ps, ps
        assert len(turn_calls(model)) == turns  # no prompt ran again
        server.cli("task", "send", task, RECAP_PROMPT)
        recap = wait_model_call(lambda: turn_calls(model), RECAP_PROMPT, 60)
        assert WRITE_PROMPT in history(recap) and "Updated hello.py." in history(recap)
        server.wait_idle(task, timeout=60)
        assert len(turn_calls(model)) == turns + 1
        assert [s["id"] for s in sessions(server, task)] == [session["id"]]
        assert server.exec(task, "cat", "/workspace/hello.py") == (0, EDITED)
        assert not model.errors
        print(
            f"\ngoose: created to first idle in {ready_s:.1f}s (image build included); "
            f"follow-up edit to idle in {edit_s:.1f}s"
        )
    finally:
        server.cli("task", "delete", "-y", task, check=False)
    assert server.containers(task) == [] and server.volumes(task) == []
