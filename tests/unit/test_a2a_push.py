"""A2A push notifications for real: the a2a-sdk's client sets a push config on a task a
SendMessage creates, on a real server (uvicorn, the fake backend with the real engine,
bridge and scripted agent); a local HTTP receiver gets each change of the task's A2A
state from the webhook dispatcher, as the SDK shapes it, with the config's headers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import Client
from a2a.types.a2a_pb2 import (
    AuthenticationInfo,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import ParseDict
from sqlalchemy import select

from provisioner.lifecycle import Status
from provisioner.server.webhook_dispatch import Dispatcher
from provisioner.store.schema import webhook_deliveries
from provisioner.store.store import Store, sqlite_url
from provisioner.webhooks import RetryPolicy, Settings, verify
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_token, serve
from tests.stored import stored_task
from tests.webhook_receiver import Got, Receiver

__all__ = ["bridge_cache", "fake"]

CONFIG = """\
a2a:
  default_skill: scripted/default
webhooks:
  allow_private: true   # the admin's receiver is on loopback; members' never may be
  retry_base_s: 0.05
  timeout_s: 5
"""
SUBMITTED, WORKING, INPUT, CANCELED = (
    TaskState.TASK_STATE_SUBMITTED,
    TaskState.TASK_STATE_WORKING,
    TaskState.TASK_STATE_INPUT_REQUIRED,
    TaskState.TASK_STATE_CANCELED,
)


@dataclass
class Served:
    url: str
    h: Harness
    tokens: dict[str, str]


@pytest.fixture
def served(fake: Harness) -> Iterator[Served]:
    (fake.home / "config.yaml").write_text(CONFIG)
    with serve(fake.engine, fake.home) as url:
        fake.store.create_user("alice", "member")
        alice, _ = fake.store.create_token("alice", "laptop", None)
        yield Served(url, fake, {"admin": admin_token(fake.home), "alice": alice})


@contextlib.asynccontextmanager
async def _client(served: Served, who: str) -> AsyncIterator[Client]:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {served.tokens[who]}"}, timeout=60)
    try:
        yield await create_client(served.url, ClientConfig(httpx_client=http, streaming=False))
    finally:
        await http.aclose()


def _message(text: str, push: TaskPushNotificationConfig | None = None) -> SendMessageRequest:
    request = SendMessageRequest(
        message=Message(message_id=f"m-{time.monotonic_ns()}", role=Role.ROLE_USER,
                        parts=[Part(text=text)])
    )  # fmt: skip
    request.message.metadata.update({"skill": "scripted", "parameters": {"work_seconds": 0.05}})
    if push is not None:
        request.configuration.task_push_notification_config.CopyFrom(push)
    return request


async def _send(client: Client, request: SendMessageRequest) -> Task:
    events = [e async for e in client.send_message(request)]
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def _update(got: Got) -> StreamResponse:
    return ParseDict(got.json, StreamResponse())


def _states(receiver: Receiver) -> list[int]:
    return [_update(g).status_update.status.state for g in receiver.accepted()]


def _wait_states(receiver: Receiver, count: int) -> list[int]:
    return wait_until(
        lambda: len(s := _states(receiver)) >= count and s,
        20,
        f"{count} pushes accepted (have {_states(receiver)})",
    )


def test_a_push_config_gets_each_a2a_state_change_with_its_token(served: Served) -> None:
    with Receiver() as receiver:
        push = TaskPushNotificationConfig(
            url=receiver.url,
            token="tok-0123456789abcdef",
            authentication=AuthenticationInfo(scheme="Bearer", credentials="receiver-key"),
        )

        async def go() -> Task:
            async with _client(served, "admin") as client:
                task = await _send(client, _message("Fix the bug", push))
                assert task.status.state == INPUT
                # a config given with the message that makes the task: from its start
                assert _wait_states(receiver, 3)[:3] == [SUBMITTED, WORKING, INPUT]
                await client.cancel_task(CancelTaskRequest(id=task.id))
                return task

        task = asyncio.run(go())
        assert _wait_states(receiver, 4) == [SUBMITTED, WORKING, INPUT, CANCELED]
        got = receiver.accepted()
        for one in got:
            update = _update(one).status_update
            assert (update.task_id, update.context_id) == (task.id, task.context_id)
            assert one.headers["x-a2a-notification-token"] == "tok-0123456789abcdef"
            assert one.headers["authorization"] == "Bearer receiver-key"
            # Dockyard's signature too, keyed with the config's token
            assert verify(
                "tok-0123456789abcdef",
                one.headers["x-dockyard-timestamp"],
                one.body,
                one.headers["x-dockyard-signature"],
                now=time.time(),
            )
        assert "CANCEL" in _update(got[3]).status_update.status.message.parts[0].text.upper()
        ids = [g.headers["x-dockyard-delivery"] for g in got]
        assert len(set(ids)) == 4 and all(i.startswith("a2a-") for i in ids)


def test_a_failing_receiver_is_retried_and_the_owner_sees_the_attempts(served: Served) -> None:
    with Receiver(answers=[500, 503]) as receiver:

        async def go() -> Task:
            async with _client(served, "admin") as client:
                return await _send(
                    client, _message("Fix it", TaskPushNotificationConfig(url=receiver.url))
                )

        asyncio.run(go())
        assert _wait_states(receiver, 3)[:3] == [SUBMITTED, WORKING, INPUT]
        first = receiver.requests()[:3]
        assert [g.status for g in first] == [500, 503, 200]
        assert len({g.headers["x-dockyard-delivery"] for g in first}) == 1  # one delivery
        assert "x-dockyard-signature" not in first[0].headers  # no token: nothing to sign with
        listed = httpx.get(
            served.url + "/api/v2/webhooks/deliveries",
            headers={"Authorization": f"Bearer {served.tokens['admin']}"},
            timeout=HTTP_TIMEOUT,
        ).json()["deliveries"]
        submitted = [d for d in listed if d["event"] == "TASK_STATE_SUBMITTED"]
        assert len(submitted) == 1 and submitted[0]["attempts"] == 3
        assert submitted[0]["state"] == "delivered" and submitted[0]["last_status"] == 200
        assert submitted[0]["webhook_id"].startswith("a2a-")


def test_refused_push_urls_are_json_rpc_errors(served: Served) -> None:
    async def go() -> None:
        async with _client(served, "alice") as alice:
            task = await _send(alice, _message("Hello"))
            with pytest.raises(A2AError, match="loopback"):
                await alice.create_task_push_notification_config(
                    TaskPushNotificationConfig(task_id=task.id, url="http://127.0.0.1:9/hook")
                )
            # refused before a task is made for it
            with pytest.raises(A2AError, match="private"):
                await _send(
                    alice, _message("Hi", TaskPushNotificationConfig(url="http://10.1.2.3/"))
                )
        async with _client(served, "admin") as admin:
            with pytest.raises(A2AError, match="link-local"):
                await admin.create_task_push_notification_config(
                    TaskPushNotificationConfig(
                        task_id=task.id, url="http://169.254.169.254/latest/meta-data"
                    )
                )
            with pytest.raises(A2AError, match="auth scheme"):
                await admin.create_task_push_notification_config(
                    TaskPushNotificationConfig(
                        task_id=task.id,
                        url="https://1.1.1.1/hook",
                        authentication=AuthenticationInfo(scheme="Bearer x", credentials="y"),
                    )
                )

    asyncio.run(go())
    assert [t.title for t in served.h.store.list_tasks(owner="alice")] == ["Hello"]


# --- on one store, with a dispatcher directly ------------------------------------------------

QUICK = Settings(
    allow_private=True,
    timeout_s=5,
    retry=RetryPolicy(max_attempts=3, base_s=0.05, factor=2, cap_s=0.2),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        yield opened
    finally:
        opened.close()


def _push_rows(store: Store) -> list[dict[str, Any]]:
    with store.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(webhook_deliveries))]


def _to(store: Store, task_id: str, state: str) -> None:
    assert store.record(task_id, "state", actor="bridge", to_value=state, state=state)


def test_the_address_is_checked_again_at_send_time_with_the_owners_role(store: Store) -> None:
    """A name that resolved to a public address when the config was set, and to loopback
    now (DNS rebinding), is refused for a member's task: the delivery fails, never sent."""
    store.create_user("alice", "member")
    task = stored_task(store, Status.ACTIVE, owner="alice", state="idle")
    with Receiver() as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        assert store.put_push_config(task.id, "c1", {"url": f"http://receiver.test:{port}/hook"})
        dispatcher = Dispatcher(store, QUICK, tick_s=0.02, resolver=lambda h, p: ["127.0.0.1"])
        dispatcher.fan_out()  # the cursor starts after what exists
        dispatcher.start()
        try:
            _to(store, task.id, "working")
            wait_until(lambda: [r["state"] for r in _push_rows(store)] == ["failed"], 20, "failed")
        finally:
            dispatcher.stop()
        assert receiver.requests() == []
    (row,) = _push_rows(store)
    assert row["attempts"] == 3 and "loopback" in row["last_error"]
    assert row["event"] == "TASK_STATE_WORKING"


def test_a_removed_config_or_task_leaves_no_deliveries_waiting(store: Store) -> None:
    store.create_user("boss", "admin")
    task = stored_task(store, Status.ACTIVE, owner="boss", state="idle")
    other = stored_task(store, Status.ACTIVE, owner="boss", state="idle")
    with Receiver(default=500) as receiver:
        for t in (task, other):
            assert store.put_push_config(t.id, "c1", {"url": receiver.url})
        dispatcher = Dispatcher(store, QUICK, tick_s=0.02)
        dispatcher.fan_out()  # the cursor starts after what exists
        for t in (task, other):
            _to(store, t.id, "working")
            _to(store, t.id, "idle")
        dispatcher.fan_out()
        assert sorted(r["event"] for r in _push_rows(store)) == [
            "TASK_STATE_INPUT_REQUIRED",
            "TASK_STATE_INPUT_REQUIRED",
            "TASK_STATE_WORKING",
            "TASK_STATE_WORKING",
        ]
        assert store.delete_push_config(task.id, "c1")
        assert store.delete(other.id)
        assert store.prune_orphan_pushes() == 2
        assert _push_rows(store) == []
