"""A task's own token: its task and the tasks it creates, nothing else (a real server).

Every route of the server (the route matrix of test_auth_api) is tried with a task's
token: outside the few an agent needs it is a 403; a task outside its scope is a 404;
once the task ends, or is deleted, the token is a 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisioner.auth.scope import task_may_call
from provisioner.errors import TaskConflict
from provisioner.lifecycle import Status
from provisioner.store.store import Store
from tests.fake_engine import Harness, bridge_cache, fake
from tests.mcp_client import ToolCaller
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.stored import stored_task
from tests.unit.test_auth_api import RULES, SIGNED, Served, _fill, _request

__all__ = ["bridge_cache", "fake"]  # fixtures, used by name


@pytest.fixture
def served(fake: Harness) -> Iterator[Served]:
    """test_auth_api's server and callers, on the fake backend (tasks can be created)."""
    store = fake.store
    with serve(fake.engine, fake.home) as url:
        tokens = {"admin": admin_token(fake.home)}
        for name in ("alice", "bob"):
            store.create_user(name, "member")
            tokens[name], _ = store.create_token(name, "laptop", None)
        task = stored_task(store, Status.PAUSED, owner="alice", name="alices-task")
        store.add_prompt(task.id, "p1", "hello")
        yield Served(url, fake.home, store, tokens, task)


def _scoped(served: Served, status: Status = Status.PAUSED) -> tuple[str, str]:
    """alice's task (paused: no workspace to follow) and its token, held by the `task`
    caller."""
    lead = stored_task(served.store, status, owner="alice", name="lead")
    served.tokens["task"] = served.store.issue_task_token(lead.id)
    return lead.id, served.tokens["task"]


def test_a_task_token_reaches_only_the_routes_an_agent_needs(served: Served) -> None:
    _scoped(served)
    for method, path in RULES:
        if RULES[method, path] == SIGNED:
            continue  # a trigger's delivery takes no token at all: its signature is checked
        reply = _request(served, "task", method, path)
        if task_may_call(method, _fill(path, served)):
            # alice's own task, but not this task's: not found, never done
            assert reply.status_code in (200, 201, 400, 404, 409, 422), (method, path, reply.text)
        else:
            assert reply.status_code == 403, (method, path, reply.text)
            assert "task's token" in reply.json()["detail"]
    for method, path in (("GET", "/.well-known/agent-card.json"), ("POST", "/a2a")):
        assert served.call("task", method, path).status_code == 403
    assert served.store.get(served.task.id).status == Status.PAUSED  # nothing happened


def test_the_old_prefix_and_coders_surface_are_closed_to_it(served: Served) -> None:
    lead, _ = _scoped(served)
    for path in (f"/api/v2/tasks/{lead}", "/api/v2/tasks", f"/api/experimental/tasks/{lead}"):
        reply = served.call("task", "GET", path)
        assert reply.status_code == 403, (path, reply.text)
    assert served.call("task", "GET", f"/api/dockyard/v1/tasks/{lead}").status_code == 200


def test_another_task_of_the_same_owner_is_not_found(served: Served) -> None:
    _scoped(served)
    for method, path in RULES:
        if "{ref}" in path and task_may_call(method, _fill(path, served)):
            reply = _request(served, "task", method, path)
            assert reply.status_code == 404, (method, path, reply.text)
            assert served.task.name not in reply.text
    listed = served.call("task", "GET", "/api/dockyard/v1/tasks").json()["tasks"]
    assert [t["name"] for t in listed] == ["lead"]
    assert served.store.get(served.task.id).status == Status.PAUSED
    assert [p["id"] for p in served.store.prompts(served.task.id)] == ["p1"]  # no send landed


def test_it_acts_on_its_task_and_the_tasks_it_creates(served: Served) -> None:
    lead, _ = _scoped(served)
    made = served.call(
        "task",
        "POST",
        "/api/dockyard/v1/tasks",
        json={"template": "scripted", "prompt": "child", "action": "backlog"},
    )
    assert made.status_code == 201, made.text
    child = made.json()
    assert child["owner"] == "alice" and child["created_by"] == f"task:{lead}"
    seen = served.call("task", "GET", f"/api/dockyard/v1/tasks/{child['id']}")
    assert seen.status_code == 200
    names = {
        t["name"] for t in served.call("task", "GET", "/api/dockyard/v1/tasks").json()["tasks"]
    }
    assert names == {"lead", child["name"]}
    # alice sees both as hers
    assert served.call("alice", "GET", f"/api/dockyard/v1/tasks/{child['id']}").status_code == 200
    note = served.call(
        "task", "POST", f"/api/dockyard/v1/tasks/{lead}/progress", json={"note": "half"}
    )
    assert note.status_code == 200, note.text


@pytest.mark.parametrize("field", ["depends_on", "parent"])
def test_it_cannot_name_other_tasks_in_a_new_one(served: Served, field: str) -> None:
    _scoped(served)
    value: Any = [served.task.id] if field == "depends_on" else served.task.id
    body = {"template": "scripted", "prompt": "x", field: value}
    reply = served.call("task", "POST", "/api/dockyard/v1/tasks", json=body)
    assert reply.status_code == 400, reply.text
    assert served.task.name not in reply.text


def test_the_token_stops_when_the_task_ends(served: Served) -> None:
    lead, _ = _scoped(served)
    assert served.call("task", "GET", f"/api/dockyard/v1/tasks/{lead}").status_code == 200
    done = served.call(
        "task", "POST", f"/api/dockyard/v1/tasks/{lead}/complete", json={"outcome": "SUCCESS"}
    )
    assert done.status_code == 200, done.text
    reply = served.call("task", "GET", f"/api/dockyard/v1/tasks/{lead}")
    assert reply.status_code == 401
    assert "revoked" in reply.json()["detail"] or "ended" in reply.json()["detail"]
    audit = served.store.audit_entries()
    assert audit[-1]["action"] == "auth.failed"


def test_the_token_stops_when_the_task_is_deleted(served: Served) -> None:
    lead, _ = _scoped(served)
    served.store.delete(lead)
    assert served.call("task", "GET", "/api/dockyard/v1/tasks").status_code == 401


def test_an_ended_task_gets_no_token_and_a_new_one_replaces_the_old(served: Served) -> None:
    ended = stored_task(served.store, Status.COMPLETED, owner="alice", name="old")
    with pytest.raises(TaskConflict, match="has ended"):
        served.store.issue_task_token(ended.id)
    nobodys = stored_task(served.store, Status.PAUSED, owner="ghost", name="x")
    with pytest.raises(TaskConflict, match="no user"):
        served.store.issue_task_token(nobodys.id)
    lead, first = _scoped(served)
    second = served.store.issue_task_token(lead)
    headers = {"Authorization": f"Bearer {first}"}
    assert (
        httpx.get(
            served.url + "/api/dockyard/v1/tasks", headers=headers, timeout=HTTP_TIMEOUT
        ).status_code
        == 401
    )
    headers = {"Authorization": f"Bearer {second}"}
    assert (
        httpx.get(
            served.url + "/api/dockyard/v1/tasks", headers=headers, timeout=HTTP_TIMEOUT
        ).status_code
        == 200
    )


def test_task_tokens_are_not_a_users_tokens(served: Served) -> None:
    _scoped(served)
    listed = served.call("alice", "GET", "/api/dockyard/v1/tokens").json()
    assert all(not t["name"].startswith("task ") for t in listed["tokens"])
    # an admin owner's task token is no admin
    store: Store = served.store
    admin = next(u["name"] for u in store.users() if u["role"] == "admin")
    boss = stored_task(store, Status.PAUSED, owner=admin, name="boss")
    served.tokens["boss"] = store.issue_task_token(boss.id)
    assert served.call("boss", "GET", "/api/dockyard/v1/users").status_code == 403
    assert served.call("boss", "GET", "/api/dockyard/v1/tasks/alices-task").status_code == 404
    shown = served.call("boss", "GET", "/api/dockyard/v1/tasks", params={"all": "true"})
    assert shown.status_code == 403


def test_over_mcp_it_sees_its_scope_and_no_claims(served: Served) -> None:
    lead, token = _scoped(served)
    tools = ToolCaller(served.url, token)
    made = tools.ok(
        "create_task", title="child", prompt="do it", template="scripted", action="backlog"
    )
    listed = tools.ok("get_tasks")
    assert {t["name"] for t in listed["tasks"]} == {"lead", made["name"]}
    refused = tools.refused("get_task", taskId=served.task.id)
    assert "not found" in refused and served.task.name not in refused
    for tool, args in (
        ("claim_task", {"taskId": served.task.id, "sessionId": "s"}),
        ("register_worker", {"name": "w", "codebases": ["global"]}),
        ("claim_next", {"worker": "w", "sessionId": "s"}),
    ):
        assert "task's own token" in tools.refused(tool, **args)
    assert "not found" in tools.refused("send_message", taskId="alices-task", message="hi")
    # one plain POST: the SDK's client would end its session after, and the token that
    # closes it has stopped working by then (the task ended)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "complete_task",
            "arguments": {"taskId": lead, "completed_status": "SUCCESS"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    done = httpx.post(served.url + "/mcp", json=call, headers=headers, timeout=HTTP_TIMEOUT)
    assert done.status_code == 200 and not done.json()["result"]["isError"], done.text
    assert served.store.get(lead).status == Status.COMPLETED
    assert (
        httpx.post(
            served.url + "/mcp", json=call, headers=headers, timeout=HTTP_TIMEOUT
        ).status_code
        == 401
    )
    events = served.store.events(lead)
    assert events[-1]["actor"] == f"task:{lead}"
