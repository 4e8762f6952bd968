"""The claim tools over MCP (the SDK's client, a real server): renew and start a claim,
accept or reject an offer, and Agent Swarm's task-action over them; their refusals are
tool errors that say why, and a task's own token may use none of them."""

from __future__ import annotations

import pytest

from provisioner.lifecycle import Status
from tests.fake_engine import bridge_cache
from tests.mcp_client import ToolCaller
from tests.stored import stored_task
from tests.unit.test_claims import queued
from tests.unit.test_claims_api import Api, api

__all__ = ["api", "bridge_cache"]  # fixtures, used by name


def test_the_holder_renews_and_starts_its_claim(api: Api) -> None:
    holder = ToolCaller(api.url, api.tokens["user1"])
    other = ToolCaller(api.url, api.tokens["user2"])
    task = queued(api.h, "renew me", owner="user0")
    claimed = holder.ok("claim_task", taskId=task.id, sessionId="s1", lease_s=30)
    renewed = holder.ok("renew_claim", taskId=task.id, sessionId="s1", lease_s=600)
    assert renewed["claim_until"] > claimed["claim_until"]
    refused = other.refused("renew_claim", taskId=task.id, sessionId="s2")
    assert "already claimed by s1" in refused
    assert "already claimed by s1" in other.refused("start_task", taskId=task.id, sessionId="s2")
    started = holder.ok("start_task", taskId=task.id, sessionId="s1")
    assert (started["status"], started["state"]) == ("active", "working")
    holder.ok("complete_task", taskId=task.id, completed_status="SUCCESS")
    assert api.h.task(task.id).status == Status.COMPLETED


def test_offers_are_accepted_or_rejected_by_their_workers_owner(api: Api) -> None:
    owner = ToolCaller(api.url, api.tokens["user1"])
    stranger = ToolCaller(api.url, api.tokens["user2"])
    owner.ok("register_worker", name="api-1", codebases=["global"])
    first = queued(api.h, "offer one", owner="user0", offer_to="api-1")
    api.h.wait_status(first.id, Status.OFFERED)
    assert "not to one of yours" in stranger.refused("accept_task", taskId=first.id, sessionId="x")
    rejected = owner.ok("reject_task", taskId=first.id, reason="busy right now")
    assert rejected["status"] == "pending"
    events = [e for e in api.h.store.events(first.id) if "busy right now" in (e["reason"] or "")]
    assert events
    second = queued(api.h, "offer two", owner="user0", offer_to="api-1")
    api.h.wait_status(second.id, Status.OFFERED)
    accepted = owner.ok("accept_task", taskId=second.id, sessionId="o1", lease_s=60)
    assert (accepted["status"], accepted["session_id"]) == ("claimed", "o1")


def test_task_action_is_agent_swarms_one_tool(api: Api) -> None:
    caller = ToolCaller(api.url, api.tokens["user3"])
    made = caller.ok(
        "task-action", action="create", task="Review PR #42", target="reviewers", priority="high"
    )
    assert made["priority"] == 75 and made["target"] == "reviewers"
    claimed = caller.ok("task-action", action="claim", taskId=made["taskId"], sessionId="w1")
    assert claimed["status"] == "claimed"
    renewed = caller.ok("task-action", action="renew", taskId=made["taskId"], sessionId="w1")
    assert renewed["session_id"] == "w1"
    started = caller.ok("task-action", action="start", taskId=made["taskId"], sessionId="w1")
    assert started["status"] == "active"


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"action": "explode"}, "Unknown action 'explode'"),
        ({"action": "claim", "taskId": "x", "sessionId": "s", "reason": "r"}, "does not take"),
        ({"action": "claim", "taskId": "x"}, "needs sessionId"),
        ({"action": "reject"}, "needs taskId"),
        ({"action": "accept", "taskId": "no-such-task", "sessionId": "s"}, "no-such-task"),
        ({"action": "reject", "taskId": "x", "reason": "\x1b[2J"}, "control character"),
        ({"action": "reject", "taskId": "x", "reason": "r" * 600}, "at most 512"),
        ({"action": "renew", "taskId": "x", "sessionId": "s", "lease_s": -1}, "x"),
        (
            {"action": "create", "task": "x", "template": "scripted", "priority": 1000},
            "Invalid priority",
        ),
    ],
)
def test_bad_task_actions_are_readable_tool_errors(
    api: Api, arguments: dict[str, object], said: str
) -> None:
    caller = ToolCaller(api.url, api.tokens["user3"])
    assert said in caller.refused("task-action", **arguments)


def test_a_tasks_own_token_may_not_claim(api: Api) -> None:
    mine = stored_task(api.h.store, Status.PAUSED, owner="user4", name="lead")
    scoped = ToolCaller(api.url, api.h.store.issue_task_token(mine.id))
    task = queued(api.h, "not for tasks", owner="user4")
    for tool, arguments in (
        ("renew_claim", {"taskId": task.id, "sessionId": "s"}),
        ("start_task", {"taskId": task.id, "sessionId": "s"}),
        ("accept_task", {"taskId": task.id, "sessionId": "s"}),
        ("reject_task", {"taskId": task.id}),
        ("task-action", {"action": "claim", "taskId": task.id, "sessionId": "s"}),
    ):
        assert "task's own token" in scoped.refused(tool, **arguments)
    assert api.h.task(task.id).status == Status.PENDING
