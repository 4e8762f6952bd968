"""The A2A endpoint with the a2a-sdk's own client against a real server (uvicorn) on the
fake backend: the real engine, store, bridge and scripted agent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.client.client import Client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import A2AError, TaskNotFoundError

from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve

__all__ = ["bridge_cache", "fake"]

FAST = {"work_seconds": 0.05}


@dataclass
class Served:
    url: str
    h: Harness
    tokens: dict[str, str]


@pytest.fixture
def served(fake: Harness) -> Iterator[Served]:
    # a message that names no skill runs on this one (the 0.3 test relies on it)
    (fake.home / "config.yaml").write_text("a2a:\n  default_skill: scripted/default\n")
    with serve(fake.engine, fake.home) as url:
        tokens = {"admin": admin_token(fake.home)}
        for name in ("alice", "bob"):
            fake.store.create_user(name, "member")
            tokens[name], _ = fake.store.create_token(name, "laptop", None)
        yield Served(url, fake, tokens)


@contextlib.asynccontextmanager
async def _client(served: Served, who: str, streaming: bool = False) -> AsyncIterator[Client]:
    """The SDK's client for `who`, made from the card it fetches with the token."""
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {served.tokens[who]}"}, timeout=60)
    try:
        yield await create_client(served.url, ClientConfig(httpx_client=http, streaming=streaming))
    finally:
        await http.aclose()


def _message(text: str, task_id: str = "", **metadata: Any) -> SendMessageRequest:
    request = SendMessageRequest(
        message=Message(
            message_id=f"m-{abs(hash(text))}", role=Role.ROLE_USER, parts=[Part(text=text)]
        )
    )
    request.message.task_id = task_id
    if not task_id:
        metadata.setdefault("skill", "scripted")
        metadata.setdefault("parameters", FAST)
    if metadata:
        request.message.metadata.update(metadata)
    return request


async def _send(client: Client, request: SendMessageRequest) -> Task:
    events = [e async for e in client.send_message(request)]
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def _replies(task: Task) -> list[str]:
    return [part.text for a in task.artifacts for part in a.parts]


def test_card_lists_skills_and_says_bearer(served: Served) -> None:
    async def go() -> None:
        headers = {"Authorization": f"Bearer {served.tokens['alice']}"}
        async with httpx.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT) as http:
            card = await A2ACardResolver(http, served.url).get_agent_card()
        ids = {s.id for s in card.skills}
        assert {"scripted", "scripted/default", "scripted/slow"} <= ids
        assert card.supported_interfaces[0].url == served.url + "/a2a"
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
        assert "bearer" in card.security_requirements[0].schemes
        assert card.capabilities.streaming and card.capabilities.push_notifications

    asyncio.run(go())
    headers = {"Authorization": f"Bearer {served.tokens['alice']}"}
    raw = httpx.get(
        served.url + "/.well-known/agent-card.json", headers=headers, timeout=HTTP_TIMEOUT
    ).json()
    # the 0.3 fields too, for clients that read the older card
    assert (raw["url"], raw["preferredTransport"]) == (served.url + "/a2a", "JSONRPC")


def test_nothing_a2a_is_served_without_a_token(served: Served) -> None:
    for method, path in [("GET", "/.well-known/agent-card.json"), ("POST", "/a2a")]:
        reply = httpx.request(
            method,
            served.url + path,
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"},
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 401, (path, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(
        served.url + "/.well-known/agent-card.json",
        headers={"Authorization": "Bearer nope"},
        timeout=HTTP_TIMEOUT,
    )
    assert wrong.status_code == 401


def test_a_message_runs_a_task_answers_follow_ups_and_is_cancelled(served: Served) -> None:
    h = served.h

    async def go() -> None:
        async with _client(served, "alice") as client:
            task = await _send(client, _message("Fix the bug"))
            assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            assert "Done: Fix the bug" in _replies(task)[0]
            assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]
            stored = h.task(task.id)  # the A2A task is the Dockyard task of the same id
            assert (stored.owner, stored.source, stored.created_by) == (
                "alice",
                "a2a",
                "user:alice",
            )
            assert (stored.status, stored.state) == (Status.ACTIVE, "idle")

            again = await _send(client, _message("Now add a test", task_id=task.id))
            assert again.id == task.id and again.context_id == task.context_id
            assert again.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            replies = _replies(again)
            assert len(replies) == 2 and "Done: Now add a test" in replies[1]
            assert "Now add a test" not in replies[0]  # each turn its own artifact

            # paused, it waits for input; a message resumes it and is answered
            await asyncio.to_thread(h.engine.pause, task.id, actor="user:alice")
            paused = await client.get_task(GetTaskRequest(id=task.id))
            assert paused.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            resumed = await _send(client, _message("Carry on", task_id=task.id))
            assert resumed.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            assert "Done: Carry on" in _replies(resumed)[-1]
            assert h.task(task.id).status == Status.ACTIVE

            got = await client.get_task(GetTaskRequest(id=task.id, history_length=1))
            assert len(got.history) == 1 and "Done: Carry on" in got.history[0].parts[0].text
            listed = await client.list_tasks(ListTasksRequest(include_artifacts=True))
            assert [t.id for t in listed.tasks] == [task.id]
            assert len(listed.tasks[0].artifacts) == 3

            cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
            assert h.task(task.id).status == Status.CANCELLED  # the record and logs stay
            assert h.task(task.id).outcome == "CANCELLED"
            with pytest.raises(A2AError, match="already ended"):
                await client.cancel_task(CancelTaskRequest(id=task.id))

    asyncio.run(go())


def test_a_clients_context_id_is_kept_and_checked(served: Served) -> None:
    async def go() -> None:
        async with _client(served, "alice") as client:
            request = _message("In a conversation")
            request.message.context_id = "conv-1"
            task = await _send(client, request)
            assert task.context_id == "conv-1"
            other = await _send(client, _message("Elsewhere"))
            assert other.context_id == other.id  # without one a task is its own context
            listed = await client.list_tasks(ListTasksRequest(context_id="conv-1"))
            assert [t.id for t in listed.tasks] == [task.id]
            wrong = _message("more", task_id=task.id)
            wrong.message.context_id = "conv-2"
            with pytest.raises(A2AError, match="not the context"):
                await _send(client, wrong)
            right = _message("more", task_id=task.id)
            right.message.context_id = "conv-1"
            assert (await _send(client, right)).context_id == "conv-1"

    asyncio.run(go())


def test_streaming_yields_the_reply_and_ends_waiting_for_input(served: Served) -> None:
    async def go() -> list[StreamResponse]:
        async with _client(served, "alice", streaming=True) as client:
            return [e async for e in client.send_message(_message("Stream it"))]

    events = asyncio.run(go())
    assert events[0].HasField("task")
    task_id = events[0].task.id
    chunks = "\n".join(
        p.text
        for e in events
        if e.HasField("artifact_update")
        for p in e.artifact_update.artifact.parts
    )
    assert "Done: Stream it" in chunks
    last = events[-1]
    assert last.HasField("status_update")
    assert last.status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED

    async def follow_up() -> list[StreamResponse]:
        async with _client(served, "alice", streaming=True) as client:
            request = _message("And again", task_id=task_id)
            return [e async for e in client.send_message(request)]

    more = asyncio.run(follow_up())
    updates = [e.artifact_update for e in more if e.HasField("artifact_update")]
    assert {u.artifact.artifact_id for u in updates} == {updates[0].artifact.artifact_id}
    assert "Done: And again" in "\n".join(p.text for u in updates for p in u.artifact.parts)
    assert more[-1].status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED


def test_a_subscriber_follows_a_task_started_without_waiting(served: Served) -> None:
    async def go() -> tuple[Task, list[StreamResponse]]:
        async with _client(served, "alice") as client:
            request = _message("Later")
            request.configuration.return_immediately = True
            started = await _send(client, request)
        async with _client(served, "alice", streaming=True) as client:
            events = [e async for e in client.subscribe(SubscribeToTaskRequest(id=started.id))]
        return started, events

    started, events = asyncio.run(go())
    assert started.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    assert events[0].HasField("task") and events[0].task.id == started.id
    final = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert final[-1] == TaskState.TASK_STATE_INPUT_REQUIRED
    task = served.h.task(started.id)
    assert (task.status, task.state) == (Status.ACTIVE, "idle")


def _rpc(served: Served, who: str, method: str, params: dict[str, Any], **headers: str) -> Any:
    reply = httpx.post(
        served.url + "/a2a",
        json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params},
        headers={"Authorization": f"Bearer {served.tokens[who]}", **headers},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text  # JSON-RPC answers errors in the body
    return reply.json()


def test_the_0_3_names_work_and_take_the_default_skill(served: Served) -> None:
    message = {
        "messageId": "old-1",
        "role": "user",
        "parts": [{"kind": "text", "text": "Old style"}],
    }
    sent = _rpc(served, "alice", "message/send", {"message": message})
    result = sent["result"]
    assert result["kind"] == "task" and result["status"]["state"] == "input-required", sent
    assert "Done: Old style" in result["artifacts"][0]["parts"][0]["text"]
    task = served.h.task(result["id"])
    assert (task.template, task.preset) == ("scripted", "default")  # config's default_skill
    got = _rpc(served, "alice", "tasks/get", {"id": result["id"]})
    assert got["result"]["id"] == result["id"]
    cancel = _rpc(served, "alice", "tasks/cancel", {"id": result["id"]})
    assert cancel["result"]["status"]["state"] == "canceled"


def test_another_members_task_is_not_found(served: Served) -> None:
    async def go() -> None:
        async with _client(served, "alice") as alice:
            mine = await _send(alice, _message("Alice's work"))
        async with _client(served, "bob") as bob:
            for call in (
                bob.get_task(GetTaskRequest(id=mine.id)),
                bob.cancel_task(CancelTaskRequest(id=mine.id)),
                _send(bob, _message("hijack", task_id=mine.id)),
            ):
                with pytest.raises(TaskNotFoundError):
                    await call
            assert list((await bob.list_tasks(ListTasksRequest())).tasks) == []
        assert served.h.task(mine.id).status == Status.ACTIVE
        assert len(served.h.store.prompts(mine.id)) == 1  # no prompt of Bob's landed
        async with _client(served, "admin") as admin:  # an admin may, and is audited
            cancelled = await admin.cancel_task(CancelTaskRequest(id=mine.id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        audited = [e for e in served.h.store.audit_entries() if e["action"] == "task.complete"]
        assert [e["target"] for e in audited] == [f"alice/{served.h.task(mine.id).name}"]

    asyncio.run(go())


def test_hostile_messages_get_json_rpc_errors_and_create_nothing(served: Served) -> None:
    v1 = {"A2A-Version": "1.0"}

    def send(parts: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
        message = {"messageId": "h", "role": "ROLE_USER", "parts": parts, "metadata": metadata}
        answer = _rpc(served, "alice", "SendMessage", {"message": message}, **v1)
        assert "error" in answer, answer
        return dict(answer["error"])

    control = send([{"text": "rm -rf\x15 oops"}], skill="scripted")
    assert control["code"] == -32602 and "U+0015 (Ctrl-U)" in control["message"]
    huge = send([{"text": "x" * (300 * 1024)}], skill="scripted")
    assert huge["code"] == -32602 and "bytes" in huge["message"]
    unknown = send([{"text": "hi"}], skill="no-such-template")
    assert unknown["code"] == -32602 and "no-such-template" in unknown["message"]
    bad_preset = send([{"text": "hi"}], skill="scripted/nope")
    assert bad_preset["code"] == -32602 and "nope" in bad_preset["message"]
    not_text = send([{"url": "file:///etc/passwd"}], skill="scripted")
    assert not_text["code"] == -32602 and "text only" in not_text["message"]
    odd_skill = send([{"text": "hi"}], skill="a/b/c")
    assert odd_skill["code"] == -32602
    no_id = _rpc(
        served, "alice", "SendMessage", {"message": {"role": "ROLE_USER", "parts": []}}, **v1
    )
    assert no_id["error"]["code"] == -32602  # the SDK's check of required fields
    negative = _rpc(served, "alice", "GetTask", {"id": "x", "historyLength": -1}, **v1)
    assert negative["error"]["code"] == -32602
    missing = _rpc(served, "alice", "GetTask", {"id": "x" * 5000}, **v1)
    assert missing["error"]["code"] == -32001  # task not found, never a 500
    message = {"messageId": "p", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    config = {"taskPushNotificationConfig": {"url": "ftp://example.com/x"}}
    bad_push = _rpc(
        served, "alice", "SendMessage", {"message": message, "configuration": config}, **v1
    )
    assert bad_push["error"]["code"] == -32602 and "http" in bad_push["error"]["message"]
    assert served.h.store.list_tasks() == []


def test_push_configs_are_kept_with_the_task(served: Served) -> None:
    async def go() -> None:
        async with _client(served, "alice") as alice:
            task = await _send(alice, _message("Notify me"))
            made = await alice.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url="https://1.1.1.1/hook")
            )
            assert made.id and made.url == "https://1.1.1.1/hook"
            got = await alice.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task.id, id=made.id)
            )
            assert got.url == made.url
            with pytest.raises(A2AError, match="http"):
                await alice.create_task_push_notification_config(
                    TaskPushNotificationConfig(task_id=task.id, url="file:///etc/passwd")
                )
            async with _client(served, "bob") as bob:
                with pytest.raises(TaskNotFoundError):
                    await bob.list_task_push_notification_configs(
                        ListTaskPushNotificationConfigsRequest(task_id=task.id)
                    )
            await alice.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=made.id)
            )
            listed = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            assert list(listed.configs) == []

    asyncio.run(go())
