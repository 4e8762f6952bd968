"""The MCP server at /mcp, through the `mcp` SDK's own client over Streamable HTTP against
a real server (uvicorn) on a real engine (fake backend: the real bridge and scripted
agent as local processes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mcp import Client

from provisioner.lifecycle import Status
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.mcp_client import ToolCaller
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.stored import stored_task

__all__ = ["bridge_cache", "fake"]

TOOLS = {
    "create_task",
    "get_tasks",
    "get_task",
    "get_task_logs",
    "send_message",
    "report_progress",
    "request_input",
    "complete_task",
    "claim_task",
    "register_worker",
    "claim_next",
    "manage_tasks",
    "renew_claim",
    "start_task",
    "accept_task",
    "reject_task",
    "task-action",
}


@dataclass
class Served:
    h: Harness
    url: str
    alice: ToolCaller
    bob: ToolCaller
    admin: ToolCaller

    def create(self, caller: ToolCaller, prompt: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("template", "scripted")
        fields.setdefault("parameters", dict(FAST))
        return caller.ok("create_task", prompt=prompt, **fields)

    def parked(self, prompt: str) -> dict[str, Any]:
        """Alice's task that stays in the backlog: it waits for a paused task of hers."""
        blocker = stored_task(self.h.store, Status.PAUSED, owner="alice")
        return self.create(self.alice, prompt, action="backlog", depends_on=[blocker.name])


@pytest.fixture
def served(fake: Harness) -> Iterator[Served]:
    with serve(fake.engine, fake.home) as url:
        callers = {}
        for name in ("alice", "bob"):
            fake.store.create_user(name, "member")
            token, _ = fake.store.create_token(name, "agent", None)
            callers[name] = ToolCaller(url, token)
        admin = ToolCaller(url, admin_token(fake.home))
        yield Served(fake, url, callers["alice"], callers["bob"], admin)


def test_an_agent_lists_the_tools_and_creates_and_follows_tasks(served: Served) -> None:
    async def first_look(client: Client) -> tuple[set[str], dict[str, str]]:
        listed = await client.list_tools()
        return {t.name for t in listed.tools}, {t.name: t.description or "" for t in listed.tools}

    names, descriptions = served.alice.session(first_look)
    assert names == TOOLS
    assert all(len(d) > 40 for d in descriptions.values()), descriptions

    dep = served.create(served.alice, "build it", title="Build")
    task = served.create(
        served.alice,
        "test it",
        priority="high",
        tags=["auth", "p1"],
        depends_on=[dep["name"]],
    )
    assert task["success"] and task["source"] == "mcp" and task["owner"] == "alice"
    assert task["priority"] == 75 and task["tags"] == ["auth", "p1"]
    assert task["depends_on"] == [dep["taskId"]]
    stored = served.h.task(task["taskId"])
    assert stored.created_by == "user:alice" and stored.source == "mcp"

    listed = served.alice.ok("get_tasks")
    assert [t["name"] for t in listed["tasks"]] == [task["name"], dep["name"]]
    waiting = served.alice.ok("get_tasks", status="created")["tasks"]
    assert task["name"] in [t["name"] for t in waiting]
    assert served.bob.ok("get_tasks")["tasks"] == []  # only their own

    served.h.wait_idle(dep["taskId"])
    sent = served.alice.ok("send_message", taskId=dep["name"], message="and lint it")
    assert sent["success"] and sent["prompt_id"]
    served.h.wait_output(dep["taskId"], "Done: and lint it")

    noted = served.alice.ok("report_progress", taskId=dep["name"], note="built, linting")
    assert noted["progress"] == "built, linting"
    served.h.wait_idle(dep["taskId"])
    served.alice.ok("request_input", taskId=dep["name"], question="Which linter?")
    shown = served.alice.ok("get_task", taskId=dep["name"])
    assert (shown["status"], shown["state"]) == ("active", "input_required")
    assert shown["question"] == "Which linter?" and shown["prompt"] == "build it"

    logs = served.alice.ok("get_task_logs", taskId=dep["name"], lines=2)
    assert len(logs["entries"]) == 2 and logs["earlier"] and not logs["more"]
    earlier = served.alice.ok("get_task_logs", taskId=dep["name"], after=0, lines=1000)
    assert earlier["entries"][-1]["id"] == logs["last_id"]
    assert any("Done: and lint it" in e["content"] for e in earlier["entries"])

    done = served.alice.ok(
        "complete_task",
        taskId=dep["taskId"],
        completed_status="SUCCESS",
        output="built and linted",
        tokens_in=1200,
        tokens_out=300,
        cost_usd=0.25,
        model="claude-sonnet-4-5",
    )
    assert done["status"] == "completed" and done["outcome"] == "SUCCESS"
    final = served.alice.ok("get_task", taskId=dep["taskId"])
    assert (final["tokens_in"], final["tokens_out"], final["cost_usd"]) == (1200, 300, 0.25)
    assert final["model"] == "claude-sonnet-4-5" and final["output"] == "built and linted"
    # its dependency completed: the second task starts by itself
    served.h.wait_idle(task["taskId"])

    again = served.alice.refused("send_message", taskId=dep["name"], message="more")
    assert f"task {dep['name']} has ended (completed)" in again and "new task" in again
    claim = served.alice.refused("claim_task", taskId=task["name"], sessionId="s1")
    assert f"task {task['name']} is not a queue-only task" in claim
    assert "not found" in served.bob.refused("claim_task", taskId=task["taskId"], sessionId="s")


def test_manage_tasks_creates_lists_and_updates(served: Served) -> None:
    blocker = stored_task(served.h.store, Status.PAUSED, owner="alice")
    made = served.alice.ok(
        "manage_tasks",
        action="create",
        title="Waits",
        description="do it after the blocker",
        template="scripted",
        priority=10,
        depends_on=[blocker.name],
    )
    assert (made["status"], made["blocked"], made["priority"]) == ("pending", True, 10)
    listed = served.alice.ok("manage_tasks", action="list", status="created")
    assert [t["taskId"] for t in listed["tasks"]] == [made["taskId"]]
    changed = served.alice.ok(
        "manage_tasks", action="update", taskId=made["name"], priority="high", progress="half"
    )
    assert changed["priority"] == 75 and changed["progress"] == "half"
    ended = served.alice.ok(
        "manage_tasks",
        action="update",
        taskId=made["name"],
        completed_status="CANCELLED",
        cost_usd=0.5,
    )
    assert ended["status"] == "cancelled" and ended["cost_usd"] == 0.5
    # a mistake is named, and nothing of a refused update is applied
    wrong = served.alice.refused(
        "manage_tasks", action="update", taskId=made["name"], title="x", priority=5
    )
    assert "does not take title" in wrong
    assert served.h.task(made["taskId"]).priority == 75
    assert "Unknown action 'delete'" in served.alice.refused("manage_tasks", action="delete")


def test_a_member_cannot_see_or_touch_another_members_task(served: Served) -> None:
    theirs = served.parked("private work")
    for tool, args in [
        ("get_task", {}),
        ("get_task_logs", {}),
        ("send_message", {"message": "hi"}),
        ("report_progress", {"note": "mine now"}),
        ("request_input", {"question": "?"}),
        ("complete_task", {"completed_status": "CANCELLED"}),
        ("manage_tasks", {"action": "update", "priority": 99}),
    ]:
        for ref in (theirs["name"], theirs["taskId"]):
            said = served.bob.refused(tool, taskId=ref, **args)
            assert "not found" in said and "private work" not in said, (tool, said)
    stored = served.h.task(theirs["taskId"])
    assert (stored.status, stored.priority, stored.progress) == (Status.BACKLOG, 50, None)
    assert "admin" in served.bob.refused("get_tasks", all_users=True)
    # an admin sees everyone's, and acting on another's task is audited
    everyone = served.admin.ok("get_tasks", all_users=True)["tasks"]
    assert {t["owner"] for t in everyone} == {"alice"}
    served.admin.ok("report_progress", taskId=theirs["taskId"], note="admin was here")
    acts = [e["action"] for e in served.h.store.audit_entries()]
    assert "task.progress" in acts


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        ("create_task", {"prompt": "x" * (300 * 1024)}, "at most 262144 bytes"),
        ("create_task", {"prompt": "fix it\x15rm -rf /"}, "control character U+0015"),
        ("create_task", {"prompt": "x", "priority": 1000}, "Invalid priority 1000"),
        ("create_task", {"prompt": "x", "priority": "urgent"}, "Invalid priority 'urgent'"),
        ("create_task", {"prompt": "x", "tags": ["a b"]}, "Invalid tag 'a b'"),
        ("create_task", {"prompt": "x", "tags": [f"t{i}" for i in range(30)]}, "Too many tags"),
        ("create_task", {"prompt": "x", "action": "nuke"}, "Invalid action 'nuke'"),
        ("create_task", {"prompt": "x", "depends_on": ["nope"]}, "Unknown dependency 'nope'"),
        ("create_task", {"prompt": "x", "title": "a\x1b[2Jb"}, "control character"),
        ("create_task", {"prompt": "x", "template": "../etc"}, "Invalid template"),
        ("create_task", {"prompt": "x", "template": "nosuch"}, "nosuch"),
        ("create_task", {"prompt": "x", "parameters": {"nope": 1}}, "nope"),
        ("create_task", {"prompt": "x", "parent": "a\x00b"}, "NUL"),
        ("get_tasks", {"status": "bogus"}, "Unknown status 'bogus'"),
        ("get_tasks", {"limit": 100000}, "Invalid limit"),
        ("get_task", {"taskId": "x" * 5000}, "not found"),
        ("get_task_logs", {"taskId": "TASK", "lines": 0}, "Invalid lines"),
        ("complete_task", {"taskId": "TASK", "completed_status": "DONE"}, "Invalid outcome"),
        (
            "complete_task",
            {"taskId": "TASK", "completed_status": "FAILED", "cost_usd": -1},
            "Invalid cost_usd",
        ),
        (
            "complete_task",
            {"taskId": "TASK", "completed_status": "SUCCESS", "error_class": "PERMANENT"},
            "A SUCCESS has no error",
        ),
        ("send_message", {"taskId": "TASK", "message": "y\x04"}, "U+0004"),
        ("report_progress", {"taskId": "TASK", "note": "n" * 5000}, "at most 2048"),
        ("request_input", {"taskId": "TASK", "question": "ok?"}, "only while its agent runs"),
    ],
)
def test_hostile_arguments_are_readable_tool_errors(
    served: Served, tool: str, arguments: dict[str, Any], says: str
) -> None:
    parked = served.parked("parked") if arguments.get("taskId") == "TASK" else None
    if parked is not None:
        arguments = {**arguments, "taskId": parked["name"]}
    if tool == "create_task":
        arguments = {"template": "scripted", **arguments}
    said = served.alice.refused(tool, **arguments)
    assert says in said, said
    assert len(said) < 2000
    if tool == "create_task":
        assert served.h.store.list_tasks() == []  # nothing was made
    if parked is not None:
        unchanged = served.h.task(parked["taskId"])
        assert (unchanged.status, unchanged.outcome, unchanged.progress) == (
            Status.BACKLOG,
            None,
            None,
        )


def test_mcp_needs_a_token(served: Served) -> None:
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer dy_" + "A" * 43}, {"Authorization": "Basic x"}):
        reply = httpx.post(
            served.url + "/mcp", json=hello, headers={**headers, **auth}, timeout=HTTP_TIMEOUT
        )
        assert reply.status_code == 401, reply.text
        assert reply.headers["www-authenticate"].startswith("Bearer")
    token = served.alice.token
    reply = httpx.post(
        served.url + "/mcp",
        json=hello,
        headers={**headers, "Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 200 and reply.json()["result"]["serverInfo"]["name"] == "dockyard"


def test_text_that_is_not_unicode_never_reaches_a_tool(served: Served) -> None:
    # a lone surrogate cannot be stored: the SDK's JSON parser refuses the message
    headers = {
        "Authorization": f"Bearer {served.alice.token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-06-18",
    }
    call = (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_task",'
        b'"arguments":{"template":"scripted","prompt":"\\ud800"}}}'
    )
    reply = httpx.post(served.url + "/mcp", content=call, headers=headers, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 400 and "Parse error" in reply.json()["error"]["message"]
    assert served.h.store.list_tasks() == []
