"""A2A push notifications' pure rules: which events of a task are pushed, the body, the
headers. No I/O: the webhook dispatcher (provisioner.server.webhook_dispatch) reads the
events and sends, as it does for webhooks, and asks this module what to send.

A push config follows its task's status and state along the events table: an event that
changes the task's A2A state (mapping.a2a_state) is one push, a TaskStatusUpdateEvent
wrapped in a StreamResponse, exactly as the SDK's BasePushNotificationSender posts it.
The events are read by id on SQLite and in commit order on PostgreSQL (Seen.xact), where
an id is taken before its transaction commits (provisioner/store/commit_order.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from a2a.compat.v0_3.conversions import to_compat_task
from a2a.types.a2a_pb2 import (
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf.json_format import MessageToDict

from provisioner.errors import ParameterError
from provisioner.lifecycle import Status
from provisioner.server.a2a.mapping import a2a_state
from provisioner.webhooks import MAX_TEXT

TOKEN_HEADER = "X-A2A-Notification-Token"
# where a stored config says which protocol set it: a 0.3 client's is pushed 0.3 bodies
PROTOCOL_KEY = "dockyardProtocol"
V03, V10 = "0.3", "1.0"
# an HTTP auth scheme is a token (RFC 9110 5.6.2): no spaces, no separators
SCHEME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


@dataclass(frozen=True)
class Seen:
    """How far a push config has followed its task: the last event read, the Dockyard
    status and state after it, and the A2A state last pushed (or known at the start).

    `xact` is that event's transaction on PostgreSQL, where a task's events are followed
    in commit order (store/commit_order.py), so the place is (xact, event); None where
    they are followed by id (SQLite, and a config stored before commit order, until the
    dispatcher places it). Events up to id `floor` are never followed: they came before
    the config (one set after its task began), and their transactions have all ended,
    but some may be later than others in commit order."""

    event: int
    status: str | None
    state: str | None
    a2a: str | None
    xact: int | None = None
    floor: int = 0

    def json(self) -> dict[str, Any]:
        return {"event": self.event, "status": self.status, "state": self.state, "a2a": self.a2a,
                "xact": self.xact, "floor": self.floor}  # fmt: skip

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Seen:
        xact = data.get("xact")
        return cls(int(data.get("event") or 0), data.get("status"), data.get("state"),
                   data.get("a2a"), None if xact is None else int(xact),
                   int(data.get("floor") or 0))  # fmt: skip

    def passed(self, event: Mapping[str, Any]) -> bool:
        """Whether `event` was followed already (at or before this place), or is older
        than the config."""
        if int(event["id"]) <= self.floor:
            return True
        if self.xact is None:
            return int(event["id"]) <= self.event
        return (int(event.get("xact") or 0), int(event["id"])) <= (self.xact, self.event)


def state_name(status: str | None, state: str | None, retrying: bool) -> str | None:
    """The A2A state's name (TASK_STATE_WORKING...), or None for no status yet."""
    if status is None:
        return None
    try:
        value = a2a_state(Status(status), state, "scheduled" if retrying else None)
    except ValueError:  # a status A2A does not know (a warm workspace's): nothing to push
        return None
    return TaskState.Name(value)


def follow(seen: Seen, event: Mapping[str, Any], retrying: bool) -> tuple[Seen, str | None]:
    """The config after one event of its task, and the A2A state to push, if the event
    changed it. `retrying`: an `error` status has an automatic retry scheduled (WORKING,
    not FAILED). Events at or before `seen`'s place were followed already."""
    if seen.passed(event):
        return seen, None
    after = replace(seen, event=int(event["id"]))
    if seen.xact is not None:
        after = replace(after, xact=int(event.get("xact") or 0))
    if event["kind"] == "status":
        after = replace(after, status=event["to_value"])
    elif event["kind"] == "state":
        after = replace(after, state=event["to_value"])
    else:
        return after, None
    name = state_name(after.status, after.state, retrying)
    # a new config knows the status and state, not yet the A2A state: it is their state
    before = seen.a2a or state_name(seen.status, seen.state, retrying)
    if name is None or name == before:
        return after, None
    return replace(after, a2a=name), name


def protocol_of(method: object) -> str:
    """The protocol of the JSON-RPC method that set a config: 0.3's names have a slash
    (`message/send`, `tasks/pushNotificationConfig/set`), 1.0's are one word."""
    return V03 if isinstance(method, str) and "/" in method else V10


def body(
    delivery_id: str,
    task_id: str,
    context_id: str,
    state: str,
    event: Mapping[str, Any],
    question: str | None,
    protocol: str = V10,
) -> str:
    """The JSON posted: StreamResponse{statusUpdate: TaskStatusUpdateEvent}, as the SDK
    sends it; to a config a 0.3 client set, the Task object as 0.3's push sender posted
    it (`kind: task`, states such as `input-required`). The status message says the
    agent's question, or the event's reason, or the Dockyard status reached;
    metadata.dockyard names the delivery and the event."""
    if state == "TASK_STATE_INPUT_REQUIRED" and question:
        text = f"asks: {question}"
    else:
        text = event.get("reason") or str(event.get("to_value") or "")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    status = TaskStatus(
        state=TaskState.Value(state),
        message=Message(
            message_id=f"push-{delivery_id}",
            role=Role.ROLE_AGENT,
            parts=[Part(text=text)],
            task_id=task_id,
            context_id=context_id,
        ),
    )
    status.timestamp.FromJsonString(event["time"] or "1970-01-01T00:00:00Z")
    update = TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=status)
    update.metadata.update(
        {
            "dockyard": {
                "delivery": delivery_id,
                "event_id": int(event["id"]),
                "kind": event["kind"],
                "from": event.get("from_value"),
                "to": event.get("to_value"),
            }
        }
    )
    if protocol == V03:
        task = Task(id=task_id, context_id=context_id, status=status)
        task.metadata.CopyFrom(update.metadata)
        data = to_compat_task(task).model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        data = MessageToDict(StreamResponse(status_update=update))
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def headers(config: Mapping[str, Any]) -> dict[str, str]:
    """The config's own headers, as the SDK's sender makes them: its `token` as
    X-A2A-Notification-Token, its `authentication` as `Authorization: SCHEME CREDENTIALS`
    (a scheme without credentials sends none)."""
    found: dict[str, str] = {}
    token = config.get("token")
    if token:
        found[TOKEN_HEADER] = str(token)
    auth = config.get("authentication") or {}
    if auth.get("scheme") and auth.get("credentials"):
        found["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
    return found


def check_authentication(config: Mapping[str, Any]) -> None:
    """A scheme that can go in a header; credentials without one are refused (they would
    never be sent). Control characters are refused before (no header injection)."""
    auth = config.get("authentication") or {}
    scheme, credentials = auth.get("scheme") or "", auth.get("credentials") or ""
    if credentials and not scheme:
        raise ParameterError(
            "Push credentials need a scheme", hint='e.g. {"scheme": "Bearer", "credentials": ...}'
        )
    if scheme and not SCHEME_RE.fullmatch(scheme):
        raise ParameterError(
            f"The push authentication scheme {scheme[:40]!r} is not an HTTP auth scheme",
            hint="e.g. Bearer or Basic",
        )
