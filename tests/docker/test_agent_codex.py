"""The built-in codex template against a fake Responses API, driven through the CLI.

OpenAI's Codex CLI (the real npm package, its native binary) runs its interactive TUI in a
workspace built from the template. The fake model answers in the Responses API with the
tools Codex itself declares: an `exec_command` function call that writes a file, then an
`apply_patch` custom (freeform) tool call that edits it, so the edits really happen in
/workspace. Working/idle comes from the screen: Codex's composer plus its quiet time.
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
    tool_outputs,
)

pytestmark = pytest.mark.slow

WRITE_COMMAND = "printf \"print('hello')\\n\" > hello.py"
PATCH = (
    "*** Begin Patch\n"
    "*** Update File: hello.py\n"
    "@@\n"
    "-print('hello')\n"
    "+print('hello, dockyard')\n"
    "*** End Patch\n"
)
PLACEHOLDER_KEY = "sk-dockyard-placeholder-key"
# a cold image build (apt + npm) takes a minute or so; give a fresh CI machine room
BUILD_TIMEOUT_S = 900


def tool_names(body: dict[str, Any]) -> dict[str, str]:
    """The tools a Responses request declares: name -> type (function, custom, ...)."""
    return {
        str(t.get("name")): str(t.get("type"))
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("name")
    }


class CodexScript:
    """The fake model: exec_command on the first prompt, apply_patch on the second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outputs: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any], api: str) -> Reply | str:
        if api != "responses" or "exec_command" not in tool_names(body):
            return "OK"  # side calls (a title for the session) carry no shell tool
        outputs = tool_outputs(body)
        if outputs:
            with self.lock:
                self.outputs += outputs
            if outputs[0].get("call_id") == "call_write_1":
                return Reply(text="Created hello.py.")
            return Reply(text="Updated hello.py.")
        prompt = last_user_text(body)
        if "dockyard-edit" in prompt:
            return Reply(
                text="I'll patch the file.",
                tool_calls=[ToolCall("apply_patch", {"input": PATCH}, id="call_edit_1")],
            )
        if "dockyard-write" in prompt:
            return Reply(
                text="I'll create the file.",
                tool_calls=[ToolCall("exec_command", {"cmd": WRITE_COMMAND}, id="call_write_1")],
            )
        if "dockyard-recap" in prompt:
            return Reply(text="I created hello.py and then patched it.")
        return "Nothing to do."

    def output_of(self, call_id: str) -> str:
        with self.lock:
            found = [o for o in self.outputs if o.get("call_id") == call_id]
        assert found, f"no tool output for {call_id}; got {self.outputs}"
        return json.dumps(found[0].get("output"))


@pytest.fixture
def fake() -> Iterator[tuple[FakeModelServer, CodexScript]]:
    script = CodexScript()
    with FakeModelServer(script) as server:
        yield server, script


def turn_calls(model: FakeModelServer) -> list[RecordedRequest]:
    """The model calls of real turns (with Codex's tools), not the side calls."""
    return [r for r in model.model_requests("responses") if "exec_command" in tool_names(r.body)]


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_codex_edits_files_and_takes_follow_ups(
    server: ServerHandle, fake: tuple[FakeModelServer, CodexScript]
) -> None:
    model, script = fake
    started = time.monotonic()
    result = server.cli(
        "task", "create", "--template", "codex",
        "--param", f"base_url={model.openai_base_url_for_containers}",
        "-q", WRITE_PROMPT,
    )  # fmt: skip
    task = result.stdout.strip()
    assert len(task) == 36, result.stdout
    try:
        status = server.wait_idle(task, timeout=BUILD_TIMEOUT_S)
        ready_s = time.monotonic() - started
        assert status["template"] == "codex" and status["preset"] == "default"
        assert status["parameters"]["api_key"] == "********"
        wait_file(server, task, HELLO, 30)
        assert "exited with code 0" in script.output_of("call_write_1")
        code, owner = server.exec(task, "stat", "-c", "%u", "/workspace/hello.py")
        assert code == 0 and owner.strip() == "1000"

        first = wait_model_call(lambda: turn_calls(model), WRITE_PROMPT, 5)
        assert first.path == "/v1/responses" and first.body["stream"] is True
        assert first.body["model"] == "gpt-5.5"  # the default preset's model
        assert first.headers.get("authorization") == f"Bearer {PLACEHOLDER_KEY}"
        tools = tool_names(first.body)
        assert tools["exec_command"] == "function" and tools["apply_patch"] == "custom", tools
        # Codex called nothing on the model host but the Responses API
        assert {(r.method, r.path) for r in model.requests} == {("POST", "/v1/responses")}, (
            diagnose(server, task, model)
        )

        edit_at = time.monotonic()
        server.cli("task", "send", task, EDIT_PROMPT)
        wait_file(server, task, EDITED, 60)
        server.wait_idle(task, timeout=60)
        edit_s = time.monotonic() - edit_at
        assert "Success" in script.output_of("call_edit_1")
        edit_call = wait_model_call(lambda: turn_calls(model), "dockyard-edit", 5)
        assert "Requirement 1: keep" in last_user_text(edit_call.body)
        assert "Requirement 60: keep the file tidy." in last_user_text(edit_call.body)
        # the follow-up went to the same session: the first turn is in its history
        assert WRITE_PROMPT in message_texts(edit_call.body)
        logs = server.logs(task)
        inputs = [e["content"] for e in logs if e["type"] == "input"]
        assert inputs == [WRITE_PROMPT, EDIT_PROMPT]
        assert all(e.get("delivery") == "taken" for e in logs if e["type"] == "input")
        # Codex keeps the session in its home volume (what `codex resume --last` continues)
        code, sessions = server.exec(task, "sh", "-c", "cat /home/agent/.codex/sessions/*/*/*/*")
        assert code == 0 and "Updated hello.py." in sessions, sessions[-500:]
        # the key was never shown: not in the logs, not in the status, not in what
        # `docker inspect` shows (a config with secrets goes in as a 0600 file)
        assert PLACEHOLDER_KEY not in json.dumps(logs) + json.dumps(status)
        env = server.container(task).attrs["Config"]["Env"]
        assert not any(PLACEHOLDER_KEY in e or "DOCKYARD_BRIDGE_CONFIG" in e for e in env), env
        assert server.exec(task, "sh", "-c", "echo $DOCKYARD_BRIDGE_TOKEN")[1].strip() == ""

        # pause and resume: Codex continues the same session (codex resume --last)
        turns = len(turn_calls(model))
        server.cli("task", "pause", task)
        assert server.status(task)["status"] == "paused"
        server.cli("task", "resume", task)
        server.wait_idle(task, timeout=120)
        _, ps = server.exec(task, "ps", "-eo", "args")
        assert "resume --last" in ps, ps
        assert len(turn_calls(model)) == turns  # no prompt ran again
        server.cli("task", "send", task, RECAP_PROMPT)
        recap = wait_model_call(lambda: turn_calls(model), RECAP_PROMPT, 60)
        history = message_texts(recap.body)
        assert WRITE_PROMPT in history and "Created hello.py." in "\n".join(history)
        server.wait_idle(task, timeout=60)
        assert len(turn_calls(model)) == turns + 1
        assert server.exec(task, "cat", "/workspace/hello.py") == (0, EDITED)
        assert not model.errors
        print(
            f"\ncodex: created to first idle in {ready_s:.1f}s (image build included); "
            f"follow-up edit to idle in {edit_s:.1f}s"
        )
    finally:
        server.cli("task", "delete", "-y", task, check=False)
    assert server.containers(task) == [] and server.volumes(task) == []
