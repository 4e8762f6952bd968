"""The in-workspace MCP relay: the agent's MCP messages reach the server's /mcp through
its bridge, with the task's own token (fake backend: the real bridge and scripted agent
as local processes, a real server)."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import httpx
import pytest

from provisioner.bridge.client import BridgeClient
from provisioner.bridge.runtime import mcp_command
from provisioner.bridge.runtime.mcp_relay import MAX_PENDING, McpRelay, RelayRefused
from provisioner.engine.mcp_relay import McpRelay as ServerRelay
from provisioner.lifecycle import Status
from provisioner.store.schema import tokens
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import serve
from tests.stored import stored_task

__all__ = ["bridge_cache", "fake"]  # fixtures, used by name


# -- the bridge's queue (no I/O) ---------------------------------------------------------


def test_a_message_waits_until_the_server_answers_it() -> None:
    relay = McpRelay()
    answers: list[dict[str, object]] = []
    agent = threading.Thread(target=lambda: answers.append(relay.submit('{"id": 1}')))
    agent.start()
    taken = wait_until(lambda: relay.take(0.05), what="the message handed to the server")
    assert [t["body"] for t in taken] == ['{"id": 1}']
    assert relay.take(0) == []  # handed out once
    assert not relay.answer("nope", 200, "application/json", "{}")
    assert relay.answer(taken[0]["id"], 200, "application/json", '{"ok": 1}')
    agent.join(30)
    assert answers == [{"status": 200, "content_type": "application/json", "body": '{"ok": 1}'}]
    assert not relay.answer(taken[0]["id"], 200, "application/json", "{}")  # once


def test_no_answer_in_time_is_a_504_and_too_many_a_429() -> None:
    relay = McpRelay()
    with pytest.raises(RelayRefused) as refused:
        relay.submit("{}", wait=0.01)
    assert refused.value.status == 504 and "try again" in str(refused.value)
    assert relay.take(0) == []  # the message that timed out is not handed out after
    waiting = [
        threading.Thread(target=lambda: _swallow(relay), daemon=True) for _ in range(MAX_PENDING)
    ]
    for thread in waiting:
        thread.start()
    wait_until(lambda: len(relay._answers) == MAX_PENDING, what="every slot taken")
    with pytest.raises(RelayRefused) as full:
        relay.submit("{}", wait=0.01)
    assert full.value.status == 429
    for item in relay.take(0):
        relay.answer(item["id"], 200, "application/json", "{}")
    for thread in waiting:
        thread.join(5)


def _swallow(relay: McpRelay) -> None:
    with contextlib.suppress(RelayRefused):
        relay.submit("{}", wait=10)


# -- end to end on the fake backend ------------------------------------------------------


def test_a_task_fans_out_to_children_and_completes_after_them(fake: Harness) -> None:
    with serve(fake.engine, fake.home):
        fake.store.create_user("alice", "member")
        parent = fake.create("/fanout 2 /complete SUCCESS child done", owner="alice")
        done = fake.wait_status(parent.id, Status.COMPLETED, timeout=90)
        children = [t for t in fake.store.list_tasks(None, owner="alice") if t.id != parent.id]
        assert len(children) == 2
        assert {c.created_by for c in children} == {f"task:{parent.id}"}
        assert {c.source for c in children} == {"mcp"}
        assert all(c.status == Status.COMPLETED and c.outcome == "SUCCESS" for c in children)
        assert done.outcome == "SUCCESS"
        assert all(f"{c.name} completed" in (done.output or "") for c in children)
        # each child finished before its parent did
        assert all((c.finished_at or "") <= (done.finished_at or "") for c in children)
        # the parent's token stopped with it
        with fake.store.db.connect() as conn:
            rows = conn.execute(tokens.select().where(tokens.c.task_id == parent.id)).all()
        assert rows and all(r.revoked_at is not None for r in rows)


def test_the_relay_answers_as_the_task_and_nothing_more(fake: Harness) -> None:
    with serve(fake.engine, fake.home):
        fake.store.create_user("alice", "member")
        other = fake.create("hello", owner="alice", parameters=dict(FAST))
        fake.wait_idle(other.id)
        agent = fake.create("hello", owner="alice")
        fake.wait_idle(agent.id)
        ask = "/mcp get_task " + json.dumps({"taskId": other.id})
        fake.engine.send(agent.id, ask, actor="test")
        said = wait_until(
            lambda: [
                line for line in fake.output(agent.id) if "get_task" in line and "Error" in line
            ],
            timeout=30,
            what="the refusal of another task",
        )
        assert "not found" in said[0] and other.name not in said[0], said
        fake.engine.send(agent.id, '/mcp get_tasks {"all_users": true}', actor="test")
        refused = wait_until(
            lambda: [line for line in fake.output(agent.id) if "Only an admin" in line],
            timeout=30,
            what="all_users refused",
        )
        assert refused
        fake.engine.send(agent.id, "/mcp get_tasks", actor="test")
        listed = wait_until(
            lambda: [line for line in fake.output(agent.id) if line.startswith("MCP get_tasks")],
            timeout=30,
            what="its own tasks listed",
        )
        shown = json.loads(listed[0].split(": ", 1)[1])
        assert [t["taskId"] for t in shown["tasks"]] == [agent.id]


def test_only_the_agent_posts_to_the_relay(fake: Harness) -> None:
    with serve(fake.engine, fake.home):
        fake.store.create_user("alice", "member")
        task = fake.create("hello", owner="alice")
        fake.wait_idle(task.id)
        endpoint = fake.backend.observe(task.id).endpoint
        assert endpoint
        hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        # no key, or the bridge token (the server's, never the agent's): refused
        assert (
            httpx.post(endpoint + "/dockyard/mcp", json=hello, timeout=HTTP_TIMEOUT).status_code
            == 401
        )
        bridge_token = {"Authorization": f"Bearer {fake.store.get(task.id).bridge_token}"}
        reply = httpx.post(
            endpoint + "/dockyard/mcp", json=hello, headers=bridge_token, timeout=HTTP_TIMEOUT
        )
        assert reply.status_code == 401
        # and the agent's answers are the server's to give, with the bridge token only
        answer = {"id": "1", "status": 200, "body": "{}"}
        assert (
            httpx.post(
                endpoint + "/dockyard/mcp/answer", json=answer, timeout=HTTP_TIMEOUT
            ).status_code
            == 401
        )
        with BridgeClient(endpoint, fake.store.get(task.id).bridge_token) as client:
            for bad in (
                {"id": 1, "status": 200, "body": "{}"},
                {"id": "1", "status": 99, "body": "{}"},
                {"id": "1", "status": True, "body": "{}"},
                {"id": "1", "status": 200, "body": 5},
                {"id": "1", "status": 200, "body": "{}", "content_type": "a\nb"},
            ):
                with pytest.raises(Exception, match="422"):
                    client._request("POST", "/dockyard/mcp/answer", json=bad)
            with pytest.raises(Exception, match="404"):
                client.mcp_answer("no-such", 200, "application/json", "{}")
            with pytest.raises(Exception, match="422"):
                client.mcp_requests(wait=1000)


def test_the_servers_relay_answers_failures_with_errors_the_agent_reads(fake: Harness) -> None:
    fake.store.create_user("alice", "member")
    task = stored_task(fake.store, Status.PAUSED, owner="alice")
    message = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})

    def broken(token: str, text: str) -> tuple[int, str, str]:
        raise TimeoutError

    status, _, body = ServerRelay(fake.engine, task.id, broken, lambda: False)._call(message)
    error = json.loads(body)
    assert status == 200 and error["id"] == 7 and "retry" in error["error"]["message"]

    # a 401 (another server replaced the token): a fresh token, once
    tokens_seen: list[str] = []
    replies = iter([(401, "application/json", "{}"), (200, "application/json", '{"ok": 1}')])

    def call(token: str, text: str) -> tuple[int, str, str]:
        tokens_seen.append(token)
        return next(replies)

    relay = ServerRelay(fake.engine, task.id, call, lambda: False)
    assert relay._call(message) == (200, "application/json", '{"ok": 1}')
    assert len(set(tokens_seen)) == 2

    # a task that has ended gets no token: the agent is told why
    ended = stored_task(fake.store, Status.COMPLETED, owner="alice", name="ended")
    relay = ServerRelay(fake.engine, ended.id, call, lambda: False)
    said = json.loads(relay._call(message)[2])["error"]["message"]
    assert "has ended" in said


def test_dockyard_mcp_answers_what_it_cannot_relay_as_json_rpc_errors(tmp_path: Path) -> None:
    parse_error = json.loads(mcp_command.relay("not json", {}) or "{}")
    assert parse_error["error"]["code"] == mcp_command.PARSE_ERROR
    no_key = json.loads(mcp_command.relay('{"jsonrpc": "2.0", "id": 3}', {}) or "{}")
    assert no_key["id"] == 3 and "DOCKYARD_REPORT_KEY_FILE" in no_key["error"]["message"]
    key = tmp_path / "key"
    key.write_text("k\n")
    env = {"DOCKYARD_REPORT_KEY_FILE": str(key), "DOCKYARD_BRIDGE_URL": "http://127.0.0.1:9"}
    gone = json.loads(mcp_command.relay('{"jsonrpc": "2.0", "id": "a"}', env) or "{}")
    assert gone["id"] == "a" and "cannot reach the bridge" in gone["error"]["message"]
    # a notification gets no answer, even when it cannot be relayed
    assert mcp_command.relay('{"jsonrpc": "2.0", "method": "notifications/x"}', env) is None
