"""Every route needs a token; roles and owners decide the rest (a real server, no Docker).

The route matrix is driven by the server's OpenAPI document: a route added without a rule
here fails `test_every_route_has_a_rule`.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner import coder_compat as cc
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server.prefixes import DOCKYARD, LEGACY
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.stored import stored_task

MEMBER, ADMIN = "member", "admin"
# no API token: the request's HMAC signature is its credential (a trigger's delivery)
SIGNED = "signed"

# (method, path) -> who may call it. Tasks are further limited to their owner (and admins).
# Dockyard's own routes, written with their old /api/v2 prefix: they are served at
# /api/dockyard/v1 (see provisioner/server/prefixes.py), and /api/v2 stays an alias.
RULES: dict[tuple[str, str], str] = {
    ("GET", "/api/v2/health"): MEMBER,
    ("GET", "/metrics"): ADMIN,  # or a metrics user: tests/unit/test_metrics.py
    ("GET", "/api/v2/doctor"): ADMIN,
    ("GET", "/api/v2/templates"): MEMBER,
    ("POST", "/api/v2/templates"): ADMIN,
    ("DELETE", "/api/v2/templates/{name}"): ADMIN,
    ("DELETE", "/api/v2/templates/{name}/versions/{version}"): ADMIN,
    ("POST", "/api/v2/templates/{name}/versions/{version}/activate"): ADMIN,
    ("GET", "/api/v2/templates/{name}"): MEMBER,
    ("GET", "/api/v2/templates/{name}/versions"): MEMBER,
    ("GET", "/api/v2/templates/{name}/presets"): MEMBER,
    ("GET", "/api/v2/presets"): MEMBER,
    ("POST", "/api/v2/tasks"): MEMBER,
    ("GET", "/api/v2/tasks"): MEMBER,
    ("GET", "/api/v2/pools"): MEMBER,
    ("GET", "/api/v2/capacity"): MEMBER,
    ("GET", "/api/v2/targets"): MEMBER,
    ("GET", "/api/v2/queue"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}"): MEMBER,
    ("DELETE", "/api/v2/tasks/{ref}"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/events"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/logs"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/prompts"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/prompts/{prompt_id}"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/send"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/pause"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/resume"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/complete"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/progress"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/retry"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/diff"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/bundle"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/push"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/pr"): MEMBER,
    ("GET", "/api/v2/cost"): MEMBER,
    ("PATCH", "/api/v2/tasks/{ref}"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/promote"): MEMBER,
    ("GET", "/api/v2/epics/{name}"): MEMBER,
    ("GET", "/api/v2/events"): MEMBER,
    ("GET", "/api/v2/me"): MEMBER,
    ("POST", "/api/v2/dashboard/links"): MEMBER,
    ("GET", "/api/v2/users"): ADMIN,
    ("POST", "/api/v2/users"): ADMIN,
    ("DELETE", "/api/v2/users/{name}"): ADMIN,
    ("GET", "/api/v2/tokens"): MEMBER,
    ("POST", "/api/v2/tokens"): MEMBER,
    ("DELETE", "/api/v2/tokens/{token_id}"): MEMBER,
    ("GET", "/api/v2/audit"): ADMIN,
    # in this order: the admin's drain is undone by the undrain after it
    ("POST", "/api/v2/drain"): ADMIN,
    ("POST", "/api/v2/undrain"): ADMIN,
    ("POST", "/api/v2/webhooks"): MEMBER,
    ("GET", "/api/v2/webhooks"): MEMBER,
    ("GET", "/api/v2/webhooks/deliveries"): MEMBER,
    ("GET", "/api/v2/webhooks/{webhook_id}"): MEMBER,
    ("DELETE", "/api/v2/webhooks/{webhook_id}"): MEMBER,
    ("GET", "/api/v2/webhooks/{webhook_id}/deliveries"): MEMBER,
    # claims: any authenticated caller may claim a queue-only task (alice's is not one)
    ("POST", "/api/v2/tasks/{ref}/claim"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/claim/renew"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/start"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/offer/accept"): MEMBER,
    ("POST", "/api/v2/tasks/{ref}/offer/reject"): MEMBER,
    ("POST", "/api/v2/workers"): MEMBER,
    ("GET", "/api/v2/workers"): MEMBER,
    ("POST", "/api/v2/workers/{name}/heartbeat"): MEMBER,
    ("POST", "/api/v2/workers/{name}/next"): MEMBER,
    # files in and out of a workspace (its exec, port and preview WebSockets and the
    # preview proxy are outside the OpenAPI document: tests/unit/test_workspace_access.py)
    ("GET", "/api/v2/tasks/{ref}/files"): MEMBER,
    ("PUT", "/api/v2/tasks/{ref}/files"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/archive"): MEMBER,
    ("GET", "/api/v2/tasks/{ref}/apps"): MEMBER,
    ("POST", "/api/v2/schedules"): MEMBER,
    ("GET", "/api/v2/schedules"): MEMBER,
    ("GET", "/api/v2/schedules/{ref}"): MEMBER,
    ("DELETE", "/api/v2/schedules/{ref}"): MEMBER,
    ("POST", "/api/v2/schedules/{ref}/pause"): MEMBER,
    ("POST", "/api/v2/schedules/{ref}/resume"): MEMBER,
    ("POST", "/api/v2/schedules/{ref}/run"): MEMBER,
    ("POST", "/api/v2/triggers"): MEMBER,
    ("GET", "/api/v2/triggers"): MEMBER,
    ("GET", "/api/v2/triggers/{name}"): MEMBER,
    ("DELETE", "/api/v2/triggers/{name}"): MEMBER,
    ("GET", "/api/v2/triggers/{name}/deliveries"): MEMBER,
    ("POST", "/api/v2/triggers/{name}"): SIGNED,
}

# Coder's Tasks surface (provisioner/server/coder/), at the paths Coder serves it: asked
# first under /api/v2 and /api/experimental. {user} is filled with the caller's `me`.
CODER_RULES: dict[tuple[str, str], str] = {
    ("GET", "/api/v2/buildinfo"): MEMBER,
    ("GET", "/api/v2/entitlements"): MEMBER,
    ("GET", "/api/v2/users/me"): MEMBER,
    ("GET", "/api/v2/users/me/organizations"): MEMBER,
    ("GET", "/api/v2/organizations/{org}"): MEMBER,
    ("GET", "/api/v2/organizations/{org}/templates"): MEMBER,
    ("GET", "/api/v2/organizations/{org}/templates/{name}"): MEMBER,
    ("GET", "/api/v2/organizations/{org}/templates/{name}/versions/{version}"): MEMBER,
    ("GET", "/api/v2/templates"): MEMBER,
    ("GET", "/api/v2/templates/{template_id}"): MEMBER,
    ("GET", "/api/v2/templateversions/{version_id}"): MEMBER,
    ("GET", "/api/v2/templateversions/{version_id}/presets"): MEMBER,
    ("GET", "/api/v2/templateversions/{version_id}/rich-parameters"): MEMBER,
    **{
        (method, prefix + path): MEMBER
        for prefix in ("/api/v2", "/api/experimental")
        for method, path in [
            ("GET", "/tasks"),
            ("POST", "/tasks/{user}"),
            ("GET", "/tasks/{user}/{task}"),
            ("DELETE", "/tasks/{user}/{task}"),
            ("POST", "/tasks/{user}/{task}/send"),
            ("PATCH", "/tasks/{user}/{task}/input"),
            ("GET", "/tasks/{user}/{task}/logs"),
            ("POST", "/tasks/{user}/{task}/pause"),
            ("POST", "/tasks/{user}/{task}/resume"),
        ]
    },
}
CODER_BODIES: dict[str, Any] = {
    "/tasks/{user}": {"template_version_id": "VERSION", "input": "hello"},
    "/tasks/{user}/{task}/send": {"input": "more"},
    "/tasks/{user}/{task}/input": {"input": "other"},
}

# a body that passes validation, so only authorization can stop the request
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v2/tasks"): {"template": "scripted", "prompt": "hello"},
    ("POST", "/api/v2/tasks/{ref}/send"): {"input": "more"},
    ("POST", "/api/v2/tasks/{ref}/complete"): {"outcome": "SKIPPED"},
    ("POST", "/api/v2/tasks/{ref}/progress"): {"note": "halfway"},
    ("PATCH", "/api/v2/tasks/{ref}"): {"priority": 60},
    ("POST", "/api/v2/tasks/{ref}/promote"): {"reason": "now"},
    ("POST", "/api/v2/users"): {"name": "carol", "role": "member"},
    ("POST", "/api/v2/tokens"): {"name": "ci"},
    ("POST", "/api/v2/drain"): {"grace": "0s"},
    ("POST", "/api/v2/tasks/{ref}/push"): {"branch": "x"},
    ("POST", "/api/v2/tasks/{ref}/pr"): {"title": "x"},
    # refused for everyone (a loopback receiver), so no request ever leaves the test
    ("POST", "/api/v2/webhooks"): {"url": "http://127.0.0.1:9/", "events": ["status"]},
    ("POST", "/api/v2/tasks/{ref}/claim"): {"session_id": "s1"},
    ("POST", "/api/v2/tasks/{ref}/claim/renew"): {"session_id": "s1"},
    ("POST", "/api/v2/tasks/{ref}/start"): {"session_id": "s1"},
    ("POST", "/api/v2/tasks/{ref}/offer/accept"): {"session_id": "s1"},
    ("POST", "/api/v2/tasks/{ref}/offer/reject"): {"reason": "busy"},
    ("POST", "/api/v2/workers"): {"name": "w1", "codebases": ["global"]},
    ("POST", "/api/v2/workers/{name}/next"): {"session_id": "s1"},
    ("POST", "/api/v2/schedules"): {
        "name": "s1",
        "cron": "0 9 * * 1-5",
        "template": "scripted",
        "prompt": "hello",
    },
    ("POST", "/api/v2/triggers"): {"name": "t1", "template": "scripted"},
    ("POST", "/api/v2/triggers/{name}"): {"prompt": "hello"},
}


@dataclass
class Served:
    url: str
    home: Path
    store: Store
    tokens: dict[str, str]  # who -> token
    task: Task  # alice's

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.request(method, self.url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(
        store,
        DockerBackend("test", dead),
        Catalog(versions=VersionStore(tmp_path / "templates")),
        BridgeBundler(tmp_path / "cache"),
    )
    try:
        with serve(engine, tmp_path) as url:
            tokens = {"admin": admin_token(tmp_path)}
            for name in ("alice", "bob"):
                store.create_user(name, "member")
                tokens[name], _ = store.create_token(name, "laptop", None)
            tokens["revoked"], record = store.create_token("alice", "old", None)
            store.revoke_token(record["id"], store.authenticate(tokens["revoked"]))
            tokens["expired"], _ = store.create_token("alice", "x", "2020-01-01T00:00:00.000Z")
            task = stored_task(store, Status.PAUSED, owner="alice", name="alices-task")
            store.add_prompt(task.id, "p1", "hello")
            yield Served(url, tmp_path, store, tokens, task)
    finally:
        store.close()


def _routes(served: Served) -> set[tuple[str, str]]:
    """Dockyard's routes in the OpenAPI document, written as RULES writes them."""
    doc = served.call("admin", "GET", "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    mine = {(m, p.replace(DOCKYARD, LEGACY, 1)) for m, p in routes if p.startswith(DOCKYARD)}
    return mine | {(m, p) for m, p in routes if not p.startswith("/api/")}  # GET /metrics


def _coder_routes(served: Served) -> set[tuple[str, str]]:
    """Coder's routes in the OpenAPI document (Dockyard's /api/v2 aliases are not in it)."""
    doc = served.call("admin", "GET", "/openapi.json").json()
    return {
        (m.upper(), p)
        for p, ops in doc["paths"].items()
        for m in ops
        if p.startswith((LEGACY + "/", "/api/experimental/"))
    }


def _coder_request(served: Served, who: str | None, method: str, path: str) -> httpx.Response:
    # a caller without a valid token is refused before any id is looked at
    refused = who is None or who in ("revoked", "expired", "garbage")
    hashed = "0" * 12 if refused else _scripted_version(served)
    version = cc.version_id("scripted", hashed)
    suffix = "/tasks" + path.split("/tasks", 1)[1] if "/tasks" in path else ""
    body = CODER_BODIES.get(suffix) if method in ("POST", "PATCH") and "/tasks" in path else None
    if body is not None and body.get("template_version_id") == "VERSION":
        body = {**body, "template_version_id": version}
    filled = (
        path.replace("{user}", "me")
        .replace("{task}", served.task.id)
        .replace("{org}", "default")
        .replace("{name}", "scripted")
        .replace("{template_id}", cc.template_id("scripted"))
        .replace("{version_id}", version)
        .replace("{version}", hashed[:12])
    )
    kw: dict[str, Any] = {"json": body} if body is not None else {}
    return served.call(who, method, filled, **kw)


_VERSIONS: dict[str, str] = {}  # server URL -> the scripted template's version


def _scripted_version(served: Served) -> str:
    if served.url not in _VERSIONS:
        doc = served.call("admin", "GET", DOCKYARD + "/templates/scripted").json()
        _VERSIONS[served.url] = str(doc["version"])
    return _VERSIONS[served.url]


def _fill(path: str, served: Served) -> str:
    return (
        path.replace(LEGACY, DOCKYARD, 1)
        .replace("{ref}", served.task.id)
        .replace("{prompt_id}", "p1")
        .replace("{name}", "scripted" if "/templates/" in path else "nobody")
        .replace("{token_id}", "000000000000")
        .replace("{version}", "0" * 12)
        .replace("{webhook_id}", "0" * 12)
    )


def _request(served: Served, who: str | None, method: str, path: str) -> httpx.Response:
    body = BODIES.get((method, path))
    kw: dict[str, Any] = {"json": body} if body is not None else {}
    if (method, path) == ("POST", "/api/v2/templates"):
        kw = {"content": b"not a tarball", "headers": {"content-type": "application/gzip"}}
    return served.call(who, method, _fill(path, served), **kw)


def test_every_route_has_a_rule(served: Served) -> None:
    routes = _routes(served)
    missing = routes - set(RULES)
    assert not missing, f"routes without an access rule in this test: {sorted(missing)}"
    assert not set(RULES) - routes, "rules for routes that no longer exist"
    coder = _coder_routes(served)
    assert coder == set(CODER_RULES), sorted(coder ^ set(CODER_RULES))


@pytest.mark.parametrize("who", [None, "revoked", "expired", "garbage"])
def test_nothing_of_coders_is_served_without_a_valid_token(served: Served, who: str | None) -> None:
    served.tokens["garbage"] = "dy_" + "A" * 43
    for method, path in CODER_RULES:
        reply = _coder_request(served, who, method, path)
        assert reply.status_code == 401, (who, method, path, reply.text)
        assert set(reply.json()) == {"message", "detail", "validations"}  # Coder's shape
    assert served.store.get(served.task.id).status == Status.PAUSED


def test_members_reach_coders_routes_but_not_others_tasks(served: Served) -> None:
    for method, path in CODER_RULES:
        if method == "DELETE" or path.endswith("/pause"):
            continue  # alice's task must stay as it is for the rest of this test
        reply = _coder_request(served, "alice", method, path)
        assert reply.status_code not in (401, 403), (method, path, reply.text)
        assert reply.status_code < 500 or reply.status_code == 503, (method, path, reply.text)
        if "{task}" in path:
            theirs = _coder_request(served, "bob", method, path)
            assert theirs.status_code == 404, (method, path, theirs.text)
            assert served.task.name not in theirs.text


@pytest.mark.parametrize("who", [None, "revoked", "expired", "garbage"])
def test_nothing_is_served_without_a_valid_token(served: Served, who: str | None) -> None:
    served.tokens["garbage"] = "dy_" + "A" * 43
    # the A2A routes are the SDK's, outside the OpenAPI document: named here
    a2a = [("GET", "/.well-known/agent-card.json"), ("POST", "/a2a")]
    tokened = [route for route, rule in RULES.items() if rule != SIGNED]
    for method, path in [*tokened, ("GET", "/openapi.json"), *a2a]:
        reply = _request(served, who, method, path)
        assert reply.status_code == 401, (who, method, path, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        alias = served.call(who, method, _fill(path, served).replace(DOCKYARD, LEGACY, 1))
        assert alias.status_code == 401, (who, method, path, alias.text)
    assert served.store.get(served.task.id).status == Status.PAUSED  # nothing happened


def test_a_signed_route_takes_no_token_and_needs_its_signature(served: Served) -> None:
    # a trigger's delivery: its signature is the credential, a token is neither needed
    # nor enough (tests/unit/test_triggers.py has the rest)
    served.call("alice", "POST", "/api/v2/triggers", json={"name": "t2", "template": "scripted"})
    for who in (None, "alice", "admin"):
        for prefix in ("/api/dockyard/v1", "/api/v2"):
            reply = served.call(who, "POST", f"{prefix}/triggers/t2", json={"prompt": "x"})
            assert reply.status_code == 401, (who, prefix, reply.text)
            assert "signature" in reply.json()["detail"]
    # only POST of that exact shape passes without a token
    for method, path in [
        ("GET", "/api/v2/triggers/t2"),
        ("DELETE", "/api/v2/triggers/t2"),
        ("GET", "/api/v2/triggers/t2/deliveries"),
        ("POST", "/api/v2/triggers/t2/deliveries"),
        ("POST", "/api/v2/triggers/T2"),
        ("POST", "/api/v2/triggers/t2/"),
        ("POST", "/api/v2/triggers/" + "a" * 41),
        ("GET", "/api/dockyard/v1/triggers/t2"),
        ("POST", "/api/dockyard/v1/triggers/t2/deliveries"),
        ("POST", "/api/dockyard/v2/triggers/t2"),
    ]:
        reply = served.call(None, method, path, json={})
        assert reply.status_code == 401, (method, path, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer"), (method, path)
    assert served.call("admin", "GET", "/api/v2/triggers/t2").json()["owner"] == "alice"


@pytest.mark.parametrize("who", [None, "revoked", "expired", "garbage"])
def test_the_mcp_endpoint_needs_a_valid_token_too(served: Served, who: str | None) -> None:
    # a plain route outside the OpenAPI document, so not in RULES: checked here
    served.tokens["garbage"] = "dy_" + "A" * 43
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for method in ("POST", "GET", "DELETE"):
        kw: dict[str, Any] = {"json": hello} if method == "POST" else {}
        reply = served.call(who, method, "/mcp", headers=accept, **kw)
        assert reply.status_code == 401, (method, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    member = served.call("alice", "POST", "/mcp", headers=accept, json=hello)
    assert member.status_code == 200, member.text


def test_roles_decide_who_may_call_each_route(served: Served) -> None:
    for (method, path), rule in RULES.items():
        for who in ("alice", "admin"):
            reply = _request(served, who, method, path)
            if rule == ADMIN and who == "alice":
                assert reply.status_code == 403, (method, path, reply.text)
            else:
                assert reply.status_code not in (401, 403), (who, method, path, reply.text)
                assert reply.status_code < 500 or reply.status_code == 503, (
                    who,
                    method,
                    path,
                    reply.text,
                )


def test_dockyard_routes_answer_at_both_prefixes(served: Served) -> None:
    for path in ("/health", f"/tasks/{served.task.id}", "/me"):
        new = served.call("alice", "GET", DOCKYARD + path)
        old = served.call("alice", "GET", LEGACY + path)
        assert new.status_code == old.status_code == 200, (path, new.text, old.text)
        assert new.json().keys() == old.json().keys()


def test_another_members_task_is_not_found(served: Served) -> None:
    for method, path in RULES:
        if "{ref}" not in path:
            continue
        reply = _request(served, "bob", method, path)
        assert reply.status_code == 404, (method, path, reply.text)
        assert served.task.name not in reply.text
    assert served.store.get(served.task.id).status == Status.PAUSED
    assert [p["id"] for p in served.store.prompts(served.task.id)] == ["p1"]  # no send landed
    listed = served.call("bob", "GET", DOCKYARD + "/tasks").json()["tasks"]
    assert listed == []
    assert served.call("bob", "GET", DOCKYARD + "/tasks", params={"all": "true"}).status_code == 403
    everyone = served.call("admin", "GET", DOCKYARD + "/tasks", params={"all": "true"}).json()
    assert [t["owner"] for t in everyone["tasks"]] == ["alice"]
    mine = served.call("alice", "GET", "/api/v2/tasks/alices-task").json()
    assert mine["owner"] == "alice"


def test_queue_acts_on_another_members_task_are_not_found(served: Served) -> None:
    # parked behind alice's paused task, so it never leaves the backlog by itself
    parked = stored_task(
        served.store,
        Status.BACKLOG,
        owner="alice",
        name="alices-later",
        epic="login",
        priority=30,
        depends_on=[served.task.id],
    )
    path = f"/api/v2/tasks/{parked.id}"
    assert served.call("bob", "PATCH", path, json={"priority": 99}).status_code == 404
    assert served.call("bob", "POST", path + "/promote", json={}).status_code == 404
    assert served.call("bob", "GET", "/api/v2/epics/login").status_code == 404
    still = served.store.get(parked.id)
    assert (still.status, still.priority) == (Status.BACKLOG, 30)
    assert [e["kind"] for e in served.store.events(parked.id)] == ["status"]  # created only
    epic = served.call("alice", "GET", "/api/v2/epics/login").json()
    assert [t["name"] for t in epic["tasks"]] == ["alices-later"]
    assert epic["progress"] == "0 of 1 completed"


@pytest.mark.parametrize(
    "body",
    [
        {"priority": 101},
        {"priority": -1},
        {"priority": "urgent"},
        {"priority": "50; rm -rf /"},
        {"priority": 1.5},
        {"priority": None},
        {},
        {"priority": 60, "depends_on": ["x"]},  # only the priority may change
        {"priority": 60, "reason": "\x1b[2Jwiped"},
        {"priority": 60, "reason": "x" * 600},
    ],
)
def test_a_bad_priority_change_is_a_400(served: Served, body: dict[str, Any]) -> None:
    path = f"/api/v2/tasks/{served.task.id}"
    reply = served.call("alice", "PATCH", path, json=body)
    assert reply.status_code == 400, reply.text
    assert served.store.get(served.task.id).priority == 50


@pytest.mark.parametrize("name", ["a b", "-x", "x" * 65, "%2e%2e", "\u202e"])
def test_a_bad_epic_name_is_a_400_or_not_found(served: Served, name: str) -> None:
    reply = served.call("alice", "GET", f"/api/v2/epics/{name}")
    assert reply.status_code in (400, 404), reply.text
    assert len(reply.text) < 2000


def test_only_admins_create_tasks_for_others(served: Served) -> None:
    body = {"template": "scripted", "prompt": "x", "owner": "bob"}
    reply = served.call("alice", "POST", "/api/v2/tasks", json=body)
    assert reply.status_code == 403
    reply = served.call("admin", "POST", "/api/v2/tasks", json={**body, "owner": "nobody"})
    assert reply.status_code == 400 and "nobody" in reply.json()["detail"]


def test_a_member_manages_only_their_own_tokens(served: Served) -> None:
    made = served.call("alice", "POST", "/api/v2/tokens", json={"name": "ci", "expires": "1h"})
    assert made.status_code == 201
    token = made.json()["token"]
    assert made.json()["expires_at"]
    theirs = served.call("bob", "DELETE", f"/api/v2/tokens/{made.json()['id']}")
    assert theirs.status_code == 404
    other = served.call("alice", "POST", "/api/v2/tokens", json={"user": "bob"})
    assert other.status_code == 403
    listed = served.call("alice", "GET", "/api/v2/tokens").json()["tokens"]
    assert {t["user"] for t in listed} == {"alice"}
    assert all("token" not in t and "hash" not in t for t in listed)
    # the new token works until it is revoked
    me = httpx.get(
        served.url + "/api/v2/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert me.json()["user"] == "alice"
    served.call("alice", "DELETE", f"/api/v2/tokens/{made.json()['id']}")
    me = httpx.get(
        served.url + "/api/v2/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert me.status_code == 401 and "revoked" in me.json()["detail"]


@pytest.mark.parametrize("expires", ["0d", "-1d", "30", "1y", "9999999d", "1d; rm -rf /"])
def test_a_bad_token_lifetime_is_refused(served: Served, expires: str) -> None:
    reply = served.call("alice", "POST", "/api/v2/tokens", json={"expires": expires})
    assert reply.status_code == 400, reply.text


@pytest.mark.parametrize(
    "name", ["Admin", "a" * 33, "x y", "bob\n", "../etc", "-x", "\u00e9", "@pool", ""]
)
def test_bad_user_names_are_refused(served: Served, name: str) -> None:
    reply = served.call("admin", "POST", "/api/v2/users", json={"name": name})
    assert reply.status_code == 400, reply.text
    assert len(reply.text) < 2000


def test_a_removed_user_cannot_call_and_the_last_admin_stays(served: Served) -> None:
    assert served.call("admin", "DELETE", "/api/v2/users/alice").status_code == 200
    assert served.call("alice", "GET", "/api/v2/me").status_code == 401
    admins = [u for u in served.store.users() if u["role"] == "admin"]
    assert len(admins) == 1
    last = served.call("admin", "DELETE", f"/api/v2/users/{admins[0]['name']}")
    assert last.status_code == 409


def test_failures_and_admin_acts_are_audited(served: Served) -> None:
    served.call(None, "GET", "/api/v2/tasks")
    served.call("revoked", "GET", "/api/v2/tasks")
    served.call("admin", "POST", "/api/v2/users", json={"name": "dave"})
    served.call("admin", "POST", f"/api/v2/tasks/{served.task.id}/pause")
    entries = served.call("admin", "GET", "/api/v2/audit").json()["entries"]
    failed = [e for e in entries if e["action"] == "auth.failed"]
    assert [e["target"] for e in failed] == ["GET /api/v2/tasks"] * 2
    assert "revoked" in failed[1]["detail"] and failed[0]["remote"] == "127.0.0.1"
    acts = {(e["actor"], e["action"], e["target"]) for e in entries}
    admin = f"user:{served.call('admin', 'GET', '/api/v2/me').json()['user']}"
    assert (admin, "user.create", "dave") in acts
    assert (admin, "task.pause", "alice/alices-task") in acts
    assert all(served.tokens["admin"] not in str(e) for e in entries)


def test_the_local_admin_token_is_private_and_kept(served: Served) -> None:
    path = served.home / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert served.call("admin", "GET", "/api/v2/me").json()["role"] == "admin"
    # a token file that no longer works is replaced on the next start
    served.store.revoke_token(
        served.store.authenticate(served.tokens["admin"]).token_id,
        served.store.authenticate(served.tokens["admin"]),
    )
    from provisioner.server.bootstrap import ensure_local_admin

    ensure_local_admin(served.store, served.home)
    assert path.read_text().strip() != served.tokens["admin"]
    assert served.store.token_valid(path.read_text().strip())
    # the database keeps only hashes
    assert not any(
        served.tokens["alice"] in str(row)
        for row in served.store.db.connect().exec_driver_sql("SELECT * FROM tokens")
    )


def test_a_browser_page_cannot_act_or_rebind(served: Served) -> None:
    pause = f"/api/v2/tasks/{served.task.id}/pause"
    rebound = served.call("alice", "GET", "/api/v2/me", headers={"Host": "evil.example"})
    assert rebound.status_code == 421
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        reply = served.call("alice", "POST", pause, headers={"Origin": origin})
        assert reply.status_code == 403, origin
    same = served.call("alice", "POST", pause, headers={"Origin": served.url})
    assert same.status_code != 403
    form = served.call(
        "admin",
        "POST",
        "/api/v2/templates",
        content=b"x",
        headers={"content-type": "text/plain"},
    )
    assert form.status_code == 415
    assert (
        served.call(None, "GET", "/api/v2/me", headers={"Host": "evil.example"}).status_code == 421
    )


def _raw(served: Served, head: str) -> str:
    """Send a request head over a plain socket; the status line of the answer."""
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        return sock.recv(4096).decode().splitlines()[0]


def test_bodies_are_bounded(served: Served) -> None:
    path = f"/api/v2/tasks/{served.task.id}/send"
    auth = f"Authorization: Bearer {served.tokens['alice']}\r\nHost: 127.0.0.1\r\n"
    big = _raw(
        served,
        f"POST {path} HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {1 << 30}\r\n\r\n{{}}",
    )
    assert " 413 " in big
    chunked = _raw(
        served,
        f"POST {path} HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert " 411 " in chunked
    assert [p["id"] for p in served.store.prompts(served.task.id)] == ["p1"]


def test_a_malformed_body_is_a_400_naming_the_field(served: Served) -> None:
    reply = served.call("alice", "POST", "/api/v2/tasks", json={"template": 5})
    assert reply.status_code == 400
    fields = {tuple(d["loc"]) for d in reply.json()["detail"]}
    assert ("body", "prompt") in fields


def test_cli_login_whoami_and_tokens(served: Served, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "DOCKYARD_URL": served.url}
    env["DOCKYARD_HOME"] = str(tmp_path / "other-home")
    runner = CliRunner()
    refused = runner.invoke(cli, ["task", "list"], env=env)
    assert refused.exit_code == 1
    assert f"dockyard login {served.url}" in refused.stderr
    bad = runner.invoke(cli, ["login", served.url, "--token", served.tokens["revoked"]], env=env)
    assert bad.exit_code == 1 and "revoked" in bad.stderr
    ok = runner.invoke(cli, ["login", served.url], input=served.tokens["alice"] + "\n", env=env)
    assert ok.exit_code == 0, ok.output
    assert served.tokens["alice"] not in ok.stdout
    creds = tmp_path / "config" / "dockyard" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert runner.invoke(cli, ["whoami"], env=env).stdout.startswith("alice (member)")
    listed = runner.invoke(cli, ["task", "list", "-q"], env=env)
    assert listed.stdout.split() == [served.task.id]
    assert runner.invoke(cli, ["task", "list", "-a"], env=env).exit_code == 1
    made = runner.invoke(cli, ["token", "create", "--name", "ci", "-q"], env=env)
    assert made.exit_code == 0 and made.stdout.startswith("dy_")
    # DOCKYARD_TOKEN wins over the stored login
    as_bob = runner.invoke(cli, ["whoami"], env={**env, "DOCKYARD_TOKEN": served.tokens["bob"]})
    assert as_bob.stdout.startswith("bob (member)")
    assert runner.invoke(cli, ["user", "list"], env=env).exit_code == 1  # admin only
    admin_env = {**env, "DOCKYARD_TOKEN": served.tokens["admin"]}
    made = runner.invoke(cli, ["user", "create", "erin", "--role", "admin"], env=admin_env)
    assert made.exit_code == 0, made.output
    everyone = runner.invoke(cli, ["task", "list", "-a"], env=admin_env)
    assert everyone.stdout.splitlines()[0].split()[0] == "OWNER"
    assert runner.invoke(cli, ["logout", served.url], env=env).exit_code == 0
    assert os.path.exists(creds)
    assert runner.invoke(cli, ["whoami"], env=env).exit_code == 1


def test_a_new_home_and_database_are_private(tmp_path: Path) -> None:
    from provisioner.paths import home_dir

    home = home_dir(tmp_path / "fresh")
    store = Store(sqlite_url(home / "dockyard.db"))
    try:
        store.create_user("zed", "member")  # writes the WAL too
        for path in (home / "dockyard.db", home / "dockyard.db-wal"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
    finally:
        store.close()
