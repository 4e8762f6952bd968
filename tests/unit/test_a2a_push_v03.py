"""A2A push to 0.3 clients: a config set through a 0.3 method (`message/send`'s
pushNotificationConfig, `tasks/pushNotificationConfig/set`) is pushed the Task object as
0.3's push sender posted it; a 1.0 client's keeps getting StreamResponses."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from provisioner.server.a2a import push
from tests.fake_engine import bridge_cache, fake
from tests.polling import wait_until
from tests.unit.test_a2a_push import Served, served
from tests.webhook_receiver import Receiver

__all__ = ["bridge_cache", "fake", "served"]  # fixtures, used by name

EVENT = {"id": 12, "kind": "state", "from_value": "working", "to_value": "input_required",
         "time": "2026-11-30T15:42:01.123Z", "reason": ""}  # fmt: skip


def test_the_03_body_is_the_task_object() -> None:
    args = ("a2a-1-12", "t-1", "c-1", "TASK_STATE_INPUT_REQUIRED", EVENT, "Which branch?")
    body = json.loads(push.body(*args, protocol=push.V03))
    assert body["kind"] == "task" and body["id"] == "t-1" and body["contextId"] == "c-1"
    status = body["status"]
    assert status["state"] == "input-required"
    assert status["timestamp"].startswith("2026-11-30T15:42:01")
    message = status["message"]
    assert message["kind"] == "message" and message["role"] == "agent"
    assert message["parts"] == [{"kind": "text", "text": "asks: Which branch?"}]
    assert body["metadata"]["dockyard"]["delivery"] == "a2a-1-12"
    # 1.0: the StreamResponse, as before
    assert "statusUpdate" in json.loads(push.body(*args))
    assert push.protocol_of("message/send") == push.V03
    assert push.protocol_of("SendMessage") == push.V10
    assert push.protocol_of(None) == push.V10


def _rpc(served: Served, method: str, params: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {served.tokens['admin']}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    reply = httpx.post(f"{served.url}/a2a", json=call, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    assert "error" not in answer, answer
    return answer["result"]


def test_a_03_client_gets_03_pushes(served: Served) -> None:
    with Receiver() as receiver:
        message = {
            "kind": "message",
            "messageId": uuid.uuid4().hex,
            "role": "user",
            "parts": [{"kind": "text", "text": "Fix it"}],
            "metadata": {"skill": "scripted", "parameters": {"work_seconds": 0.05}},
        }
        config = {"url": receiver.url, "token": "shared-secret"}
        task = _rpc(
            served,
            "message/send",
            {"message": message, "configuration": {"pushNotificationConfig": config}},
        )
        assert task["kind"] == "task"

        def states() -> list[str]:
            return [g.json["status"]["state"] for g in receiver.accepted()]

        wait_until(lambda: "input-required" in states(), 30, f"an input-required push ({states()})")
        got = receiver.accepted()
        assert all(g.json["kind"] == "task" and g.json["id"] == task["id"] for g in got)
        assert states()[:2] == ["submitted", "working"]
        assert got[0].headers["x-a2a-notification-token"] == "shared-secret"
        # the config reads back as the client set it (the protocol mark stays Dockyard's)
        shown = _rpc(served, "tasks/pushNotificationConfig/list", {"id": task["id"]})
        assert [c["pushNotificationConfig"]["url"] for c in shown] == [receiver.url]
        assert push.PROTOCOL_KEY not in json.dumps(shown)
        _rpc(served, "tasks/cancel", {"id": task["id"]})
