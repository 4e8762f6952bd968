"""The pure rules of A2A push notifications: which events are pushed, and that the body
and headers are the ones the a2a-sdk's own push sender makes for the same update."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from a2a.server.tasks.base_push_notification_sender import BasePushNotificationSender
from a2a.types.a2a_pb2 import StreamResponse, TaskPushNotificationConfig
from google.protobuf.json_format import MessageToDict, ParseDict

from provisioner.errors import ParameterError
from provisioner.server.a2a.push import Seen, body, check_authentication, follow, headers


def _event(event_id: int, kind: str, to: str, reason: str = "") -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "from_value": None, "to_value": to,
            "reason": reason, "time": "2026-11-30T16:00:00.000Z"}  # fmt: skip


def test_only_changes_of_the_a2a_state_are_pushed() -> None:
    life = [
        ("status", "pending"),
        ("status", "initializing"),
        ("phase", "agent"),
        ("status", "active"),  # no state yet: working
        ("state", "working"),
        ("state", "idle"),
        ("state", "working"),
        ("state", "input_required"),
        ("status", "paused"),  # waiting for input still
        ("status", "active"),
        ("state", "working"),
        ("status", "cancelled"),
    ]
    seen, pushed = Seen(0, None, None, None), []
    for i, (kind, to) in enumerate(life, start=1):
        seen, state = follow(seen, _event(i, kind, to), retrying=False)
        if state:
            pushed.append((i, state.removeprefix("TASK_STATE_")))
    assert pushed == [
        (1, "SUBMITTED"),
        (2, "WORKING"),
        (6, "INPUT_REQUIRED"),
        (7, "WORKING"),
        (8, "INPUT_REQUIRED"),
        (11, "WORKING"),
        (12, "CANCELED"),
    ]
    # an event read again (another pass, another server) is not pushed twice
    assert follow(seen, _event(12, "status", "cancelled"), retrying=False) == (seen, None)


def test_an_error_is_failed_unless_a_retry_is_scheduled() -> None:
    working = Seen(5, "active", "working", "TASK_STATE_WORKING")
    assert follow(working, _event(6, "status", "error"), retrying=True)[1] is None
    assert follow(working, _event(6, "status", "error"), retrying=False)[1] == "TASK_STATE_FAILED"


def test_a_new_config_starts_from_the_tasks_state_not_a_push() -> None:
    # set while the task waited for input: the next turn's start is the first push
    seen = Seen(9, "active", "idle", None)
    assert follow(seen, _event(10, "phase", "agent"), retrying=False)[1] is None
    assert follow(seen, _event(10, "state", "working"), retrying=False)[1] == "TASK_STATE_WORKING"


def test_in_commit_order_a_smaller_id_of_a_later_transaction_is_still_followed() -> None:
    """PostgreSQL: the place is (xact, event). Event 8 of transaction 100 was followed;
    event 7 of transaction 101 committed after it and comes next; 8 again does not."""
    seen = Seen(8, "active", "working", "TASK_STATE_WORKING", xact=100)
    late = {**_event(7, "state", "idle"), "xact": 101}
    after, state = follow(seen, late, retrying=False)
    assert state == "TASK_STATE_INPUT_REQUIRED" and (after.xact, after.event) == (101, 7)
    assert follow(after, {**_event(8, "state", "working"), "xact": 100}, False) == (after, None)
    assert Seen.of(after.json()) == after
    # by id (SQLite): the same event 7 is at or before the place
    assert follow(replace(seen, xact=None), late, retrying=False)[1] is None
    # a config set after event 7 (its floor): from the start of the order, above it
    placed = Seen(7, "active", "working", None, xact=0, floor=7)
    assert follow(placed, late, retrying=False) == (placed, None)
    assert follow(placed, {**_event(9, "state", "idle"), "xact": 99}, False)[1] is not None


def test_body_and_headers_are_the_sdks_own() -> None:
    config = TaskPushNotificationConfig(id="c1", task_id="t1", url="http://receiver.test/hook",
                                        token="tok")  # fmt: skip
    config.authentication.scheme = "Bearer"
    config.authentication.credentials = "secret"
    ours = body("a2a-x-7", "t1", "ctx", "TASK_STATE_INPUT_REQUIRED",
                _event(7, "state", "input_required"), "Which branch?")  # fmt: skip
    update = ParseDict(json.loads(ours), StreamResponse()).status_update
    assert update.status.message.parts[0].text == "asks: Which branch?"

    sent: list[httpx.Request] = []

    class Configs:
        async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
            return [config]

    async def sdk() -> None:
        transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
        async with httpx.AsyncClient(transport=transport) as client:
            sender = BasePushNotificationSender(client, Configs())  # type: ignore[arg-type]
            await sender.send_notification("t1", update)

    asyncio.run(sdk())
    assert json.loads(sent[0].content) == json.loads(ours)
    ours_headers = headers(MessageToDict(config))
    assert ours_headers == {
        k: sent[0].headers[k] for k in ("X-A2A-Notification-Token", "Authorization")
    }


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        ({"credentials": "x"}, "need a scheme"),
        ({"scheme": "Bearer x", "credentials": "y"}, "not an HTTP auth scheme"),
        ({"scheme": "Bearer\r\nX-Evil: 1", "credentials": "y"}, "not an HTTP auth scheme"),
    ],
)
def test_authentication_that_cannot_be_a_header_is_refused(auth: dict[str, str], says: str) -> None:
    with pytest.raises(ParameterError, match=says):
        check_authentication({"authentication": auth})
    check_authentication({"authentication": {"scheme": "Basic", "credentials": "dTpw"}})
