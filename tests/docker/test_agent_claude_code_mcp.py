"""Claude Code in a claude-code workspace sees Dockyard's MCP tools (registered by the
template's setup, served by the in-workspace relay) and calls one: the fake model asks for
`create_task`, and a child task of the workspace's task appears on the server."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.docker.conftest import ServerHandle
from tests.docker.test_agent_claude_code import BUILD_TIMEOUT_S, _last_user_blocks
from tests.fake_model_server import FakeModelServer, Reply, ToolCall, last_user_text
from tests.polling import HTTP_TIMEOUT

pytestmark = pytest.mark.slow

PROMPT = "Hand the tests to another agent (dockyard-delegate)"
TOOL = "mcp__dockyard__create_task"
CHILD_PROMPT = "/complete SUCCESS delegated by claude"


class DelegateScript:
    """The fake model: on the prompt, a create_task call; after its result, a reply."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tool_names: list[set[str]] = []
        self.results: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any], api: str) -> Reply | str:
        if api != "anthropic" or not body.get("tools"):
            return "OK"
        with self.lock:
            self.tool_names.append({str(t.get("name")) for t in body["tools"]})
            self.bodies.append(body)
        results = [b for b in _last_user_blocks(body) if b.get("type") == "tool_result"]
        if results:
            with self.lock:
                self.results += results
            return Reply(text="Handed the tests over.")
        if "dockyard-delegate" in last_user_text(body):
            arguments = {"title": "Run the tests", "prompt": CHILD_PROMPT, "template": "scripted"}
            return Reply(
                text="I'll create a Dockyard task.",
                tool_calls=[ToolCall(TOOL, arguments, id="toolu_dockyard_1")],
            )
        return "Nothing to do."


@pytest.fixture
def model() -> Iterator[tuple[FakeModelServer, DelegateScript]]:
    script = DelegateScript()
    with FakeModelServer(script) as server:
        yield server, script


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_claude_code_creates_a_dockyard_task_through_its_mcp_tools(
    server: ServerHandle, model: tuple[FakeModelServer, DelegateScript]
) -> None:
    fake, script = model
    result = server.cli(
        "task", "create", "--template", "claude-code",
        "--param", f"base_url={fake.base_url_for_containers}",
        "--param", "model=claude-sonnet-4-5",
        "-q", PROMPT,
    )  # fmt: skip
    task = result.stdout.strip()
    children: list[dict[str, Any]] = []
    try:
        server.wait_for(
            task, lambda s: bool(script.results), BUILD_TIMEOUT_S, "the create_task result"
        )
        assert any(TOOL in names for names in script.tool_names), (
            " | ".join(", ".join(sorted(n)) for n in script.tool_names)
            + " || "
            + " ".join(sorted(set(re.findall(r"mcp__[A-Za-z_]+", str(script.bodies)))))
        )
        assert not any(r.get("is_error") for r in script.results), script.results
        status = server.status(task)
        listed = httpx.get(
            f"{server.url}/api/dockyard/v1/tasks", headers=server.headers, timeout=HTTP_TIMEOUT
        ).json()["tasks"]
        children = [t for t in listed if t.get("created_by") == f"task:{status['id']}"]
        assert [c["title"] for c in children] == ["Run the tests"], listed
        assert children[0]["source"] == "mcp" and children[0]["prompt"] == CHILD_PROMPT
        done = server.wait_for(
            children[0]["id"], lambda s: s["status"] == "completed", 120, "the child's end"
        )
        assert done["output"] == "delegated by claude"
        assert not fake.errors
    finally:
        for child in children:
            server.cli("task", "delete", "-y", str(child["id"]), check=False)
        server.cli("task", "delete", "-y", task, check=False)
