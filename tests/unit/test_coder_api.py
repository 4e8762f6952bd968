"""Coder's Tasks API served by Dockyard: contract tests against the REAL server on the fake
backend (the real bridge and scripted agent on this host). Every answer is held to the
shape Coder documents (tests/coder_shapes.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner import coder_compat as cc
from provisioner.lifecycle import Status
from tests import coder_shapes as shapes
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_token, serve
from tests.stored import stored_task

__all__ = ["bridge_cache"]

TEMPLATE = "tasks-test"
PRESETS = {
    "default": "name: Default\ndefault: true\ndescription: fast\nparameters:\n"
    "  work_seconds: 0.05\n",
    "slow": "name: 'Real World App: Angular + Django'\nparameters:\n  work_seconds: 0.05\n"
    "  memory: 256m\n",
}


class Coder:
    """A Dockyard server as Coder's clients see it, with a token per user."""

    def __init__(self, h: Harness, url: str) -> None:
        self.h = h
        self.url = url
        self.tokens = {"admin": admin_token(h.home)}
        for name in ("alice", "bob"):
            h.store.create_user(name, "member")
            self.tokens[name], _ = h.store.create_token(name, "laptop", None)

    def call(self, method: str, path: str, who: str | None = "alice", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.setdefault("Coder-Session-Token", self.tokens[who])
        return httpx.request(method, self.url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)

    def ok(self, method: str, path: str, who: str = "alice", **kw: Any) -> Any:
        reply = self.call(method, path, who, **kw)
        assert reply.status_code < 300, (method, path, reply.status_code, reply.text)
        return reply.json() if reply.content else None

    def version_and_preset(self, template: str = TEMPLATE, preset: str = "Default") -> tuple:
        tpl = self.ok("GET", "/api/v2/templates", params={"q": f"exact_name:{template}"})[0]
        found = self.ok("GET", f"/api/v2/templateversions/{tpl['active_version_id']}/presets")
        return tpl["active_version_id"], next(p["ID"] for p in found if p["Name"] == preset)

    def create(self, prompt: str = "Fix the bug", who: str = "alice", **body: Any) -> Any:
        version, preset = self.version_and_preset()
        body = {"template_version_id": version, "template_version_preset_id": preset, **body}
        reply = self.call("POST", "/api/v2/tasks/me", who, json={"input": prompt, **body})
        assert reply.status_code == 201, reply.text
        return reply.json()

    def wait(self, task_id: str, status: str, state: str | None, who: str = "alice") -> Any:
        def seen() -> Any:
            task = self.ok("GET", f"/api/v2/tasks/me/{task_id}", who)
            now = task["current_state"]["state"] if task["current_state"] else None
            return task if task["status"] == status and now == state else None

        return wait_until(seen, 20, f"{task_id} {status}/{state}")


@pytest.fixture(scope="module")
def coder(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Coder]:
    root = tmp_path_factory.mktemp("coder-api")
    with harness_at(root / "home", bridge_cache) as h:
        h.add_scripted_variant(TEMPLATE, PRESETS)
        h.add_scripted_variant("bare")  # no presets
        with serve(h.engine, h.home) as url:
            yield Coder(h, url)


# --- deployment, user, auth -------------------------------------------------------------


def test_buildinfo_entitlements_and_me_have_coders_shapes(coder: Coder) -> None:
    shapes.check_shape(coder.ok("GET", "/api/v2/buildinfo"), shapes.BUILDINFO)
    assert coder.ok("GET", "/api/v2/buildinfo")["version"].startswith("v2.")
    shapes.check_shape(coder.ok("GET", "/api/v2/entitlements"), shapes.ENTITLEMENTS)
    me = coder.ok("GET", "/api/v2/users/me")
    shapes.check_shape(me, shapes.USER)
    assert me["username"] == "alice" and me["id"] == cc.user_id("alice")
    orgs = coder.ok("GET", "/api/v2/users/me/organizations")
    assert [o["id"] for o in orgs] == [cc.organization_id()]


def test_every_coder_auth_form_is_a_dockyard_token(coder: Coder) -> None:
    token = coder.tokens["alice"]
    forms: list[dict[str, Any]] = [
        {"headers": {"Coder-Session-Token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"headers": {"Cookie": f"coder_session_token={token}"}},
        {"params": {"coder_session_token": token}},
    ]
    for form in forms:
        reply = coder.call("GET", "/api/v2/users/me", None, **form)
        assert reply.status_code == 200, (form, reply.text)
        assert reply.json()["username"] == "alice"
    # Coder's forms are Coder's: Dockyard's own API takes the bearer header only
    own = coder.call("GET", "/api/dockyard/v1/me", None, headers={"Coder-Session-Token": token})
    assert own.status_code == 401


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"headers": {"Coder-Session-Token": "dy_" + "A" * 43}},
        {"headers": {"Cookie": "coder_session_token=; other=x"}},
        {"params": {"coder_session_token": "x' OR 1=1 --"}},
        {"headers": {"Authorization": "Basic YWxpY2U6eA=="}},
    ],
)
def test_no_valid_token_is_a_401_in_coders_shape(coder: Coder, form: dict[str, Any]) -> None:
    for path in ("/api/v2/users/me", "/api/v2/tasks", "/api/experimental/tasks"):
        reply = coder.call("GET", path, None, **form)
        assert reply.status_code == 401, (path, reply.text)
        shapes.check_shape(reply.json(), shapes.ERROR)
    # Dockyard's own routes keep Dockyard's error shape
    own = coder.call("GET", "/api/dockyard/v1/tasks", None, **form)
    assert own.status_code == 401 and "hint" in own.json()


# --- templates, versions, presets -------------------------------------------------------


def test_templates_are_a_top_level_array_filtered_by_q(coder: Coder) -> None:
    every = coder.ok("GET", "/api/v2/templates")
    assert isinstance(every, list)
    for tpl in every:
        shapes.check_shape(tpl, shapes.TEMPLATE)
    names = {t["name"] for t in every}
    assert {TEMPLATE, "bare", "scripted"} <= names
    exact = coder.ok("GET", "/api/v2/templates", params={"q": f'exact_name:"{TEMPLATE}"'})
    assert [t["name"] for t in exact] == [TEMPLATE]
    partial = coder.ok("GET", "/api/v2/templates", params={"q": "name:tasks has-ai-task:true"})
    assert [t["name"] for t in partial] == [TEMPLATE]
    assert coder.ok("GET", "/api/v2/templates", params={"q": "exact_name:tasks"}) == []
    one = next(t for t in every if t["name"] == TEMPLATE)
    assert coder.ok("GET", f"/api/v2/templates/{one['id']}") == one
    org = coder.ok("GET", "/api/v2/organizations/default/templates")
    assert one in org
    assert (
        coder.ok("GET", f"/api/v2/organizations/{cc.organization_id()}/templates/{TEMPLATE}")["id"]
        == one["id"]
    )


def test_ids_are_stable_across_servers(coder: Coder) -> None:
    tpl = coder.ok("GET", "/api/v2/templates", params={"q": f"exact_name:{TEMPLATE}"})[0]
    version = coder.h.engine.catalog.get(TEMPLATE).version
    assert tpl["id"] == str(uuid.uuid5(cc.NAMESPACE, f"template\0{TEMPLATE}"))
    assert tpl["active_version_id"] == cc.version_id(TEMPLATE, version)
    presets = coder.ok("GET", f"/api/v2/templateversions/{tpl['active_version_id']}/presets")
    assert {p["ID"] for p in presets} == {
        cc.preset_id(TEMPLATE, version, name) for name in ("Default", PRESETS_SLOW)
    }


PRESETS_SLOW = "Real World App: Angular + Django"


def test_a_template_version_and_its_presets_have_coders_wire_format(coder: Coder) -> None:
    version, _ = coder.version_and_preset()
    shapes.check_shape(
        coder.ok("GET", f"/api/v2/templateversions/{version}"), shapes.TEMPLATE_VERSION
    )
    presets = coder.ok("GET", f"/api/v2/templateversions/{version}/presets")
    for preset in presets:
        shapes.check_shape(preset, shapes.PRESET)
    default = next(p for p in presets if p["Default"])
    assert default["Name"] == "Default"
    assert default["Parameters"] == [{"Name": "work_seconds", "Value": "0.05"}]
    slow = next(p for p in presets if p["Name"] == PRESETS_SLOW)
    assert {"Name": "memory", "Value": "256m"} in slow["Parameters"]
    params = coder.ok("GET", f"/api/v2/templateversions/{version}/rich-parameters")
    for param in params:
        shapes.check_shape(param, shapes.RICH_PARAMETER)
    assert {p["name"] for p in params} >= {"work_seconds", "memory"}


def test_an_empty_preset_list_is_null(coder: Coder) -> None:
    bare = coder.ok("GET", "/api/v2/templates", params={"q": "exact_name:bare"})[0]
    reply = coder.call("GET", f"/api/v2/templateversions/{bare['active_version_id']}/presets")
    assert reply.status_code == 200 and reply.text == "null"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/templates/not-a-uuid",
        # fixed, unknown ids: the test ids must be the same in every xdist worker
        "/api/v2/templates/0b5e4c1e-6f0a-4d7e-9c55-2f1d8a3b7e90",
        "/api/v2/templateversions/7d2f9a64-1c3b-4e8f-a0d5-96b7e2c4f813/presets",
        "/api/v2/organizations/other/templates",
        "/api/v2/organizations/default/templates/%00",
    ],
)
def test_unknown_catalog_ids_are_404s_in_coders_shape(coder: Coder, path: str) -> None:
    reply = coder.call("GET", path)
    assert reply.status_code == 404, reply.text
    shapes.check_shape(reply.json(), shapes.ERROR)


@pytest.mark.parametrize("q", ['name:"unterminated', "has-ai-task:maybe", "Bad Key!:x", "x" * 600])
def test_a_bad_template_query_is_a_400(coder: Coder, q: str) -> None:
    reply = coder.call("GET", "/api/v2/templates", params={"q": q})
    assert reply.status_code == 400, reply.text
    shapes.check_shape(reply.json(), shapes.ERROR)


# --- tasks ------------------------------------------------------------------------------


def test_a_task_created_by_version_and_preset_runs_and_is_steered(coder: Coder) -> None:
    created = coder.create("Fix the bug in auth.py", name="coder-flow", display_name="Auth")
    shapes.check_shape(created, shapes.TASK)
    assert created["name"] == "coder-flow" and created["display_name"] == "Auth"
    assert created["owner_name"] == "alice" and created["template_name"] == TEMPLATE
    assert created["status"] in shapes.TASK_STATUSES
    assert coder.h.store.get(created["id"]).preset == "Default"
    task = coder.wait(created["id"], "active", "idle")
    shapes.check_shape(task, shapes.TASK)
    assert task["initial_prompt"] == "Fix the bug in auth.py"
    by_name = coder.ok("GET", "/api/v2/tasks/alice/coder-flow")
    assert by_name["id"] == task["id"]
    assert coder.ok("GET", "/api/experimental/tasks/me/coder-flow")["id"] == task["id"]
    # send: 204, then the agent works and is idle again; the logs hold both inputs
    reply = coder.call("POST", f"/api/v2/tasks/me/{task['id']}/send", json={"input": "more"})
    assert reply.status_code == 204 and reply.content == b""
    coder.wait(task["id"], "active", "idle")
    logs = wait_until(
        lambda: (
            (found := coder.ok("GET", f"/api/v2/tasks/me/{task['id']}/logs"))
            and [e for e in found["logs"] if e["type"] == "input" and "more" in e["content"]]
            and found
        ),
        20,
        "the follow-up in the logs",
    )
    shapes.check_shape(logs, shapes.TASK_LOGS)
    assert {e["type"] for e in logs["logs"]} <= {"input", "output"}
    assert any(e["type"] == "output" for e in logs["logs"])
    listed = coder.ok("GET", "/api/v2/tasks", params={"q": 'owner:"me" status:"active"'})
    shapes.check_shape(listed, shapes.TASK_LIST)
    assert listed["count"] == len(listed["tasks"]) and task["id"] in {
        t["id"] for t in listed["tasks"]
    }
    assert coder.ok("GET", "/api/v2/tasks", params={"q": "status:paused"})["tasks"] == []
    # pause and resume: 202 with the build that does it
    paused = coder.call("POST", f"/api/experimental/tasks/me/{task['id']}/pause")
    assert paused.status_code == 202, paused.text
    shapes.check_shape(paused.json(), shapes.PAUSE)
    coder.wait(task["id"], "paused", "idle")
    resumed = coder.call("POST", f"/api/v2/tasks/me/{task['id']}/resume")
    assert resumed.status_code == 202, resumed.text
    coder.wait(task["id"], "active", "idle")
    gone = coder.call("DELETE", f"/api/v2/tasks/me/{task['id']}")
    assert gone.status_code == 202, gone.text
    assert coder.call("GET", f"/api/v2/tasks/me/{task['id']}").status_code == 404


def test_the_default_preset_is_used_when_none_is_named(coder: Coder) -> None:
    version, _ = coder.version_and_preset()
    body = {"template_version_id": version, "input": "no preset"}
    reply = coder.call("POST", "/api/v2/tasks/alice", json=body)
    assert reply.status_code == 201, reply.text
    assert coder.h.store.get(reply.json()["id"]).preset == "Default"
    coder.h.engine.delete(reply.json()["id"])


def test_a_pending_tasks_first_input_can_change_and_a_started_ones_cannot(coder: Coder) -> None:
    # parked behind a paused task, so it never leaves the backlog by itself
    blocker = stored_task(coder.h.store, Status.PAUSED, owner="alice", name="blocker")
    parked = stored_task(
        coder.h.store, Status.BACKLOG, owner="alice", name="parked", depends_on=[blocker.id]
    )
    path = "/api/v2/tasks/me/parked/input"
    assert coder.call("PATCH", path, json={"input": "new words"}).status_code == 204
    assert coder.h.store.get(parked.id).prompt == "new words"
    assert "input" in {e["kind"] for e in coder.h.store.events(parked.id)}
    running = coder.create("started already")
    coder.wait(running["id"], "active", "idle")
    late = coder.call("PATCH", f"/api/v2/tasks/me/{running['id']}/input", json={"input": "x"})
    assert late.status_code == 409, late.text
    shapes.check_shape(late.json(), shapes.ERROR)
    coder.h.engine.delete(running["id"])
    coder.h.engine.delete(parked.id)
    coder.h.engine.delete(blocker.id)


def test_send_without_auto_resume_to_a_task_not_yet_active_is_a_409(coder: Coder) -> None:
    parked = stored_task(coder.h.store, Status.PAUSED, owner="alice", name="sleepy")
    reply = coder.call(
        "POST", "/api/v2/tasks/me/sleepy/send", params={"resume": "false"}, json={"input": "x"}
    )
    assert reply.status_code == 409, reply.text
    shapes.check_shape(reply.json(), shapes.ERROR)
    assert coder.h.store.prompts(parked.id) == []
    coder.h.engine.delete(parked.id)


# --- who may see what; hostile input ----------------------------------------------------


def test_another_members_tasks_are_not_found(coder: Coder) -> None:
    theirs = stored_task(coder.h.store, Status.PAUSED, owner="bob", name="bobs-task")
    for method, path, body in [
        ("GET", "/api/v2/tasks/bob/bobs-task", None),
        ("GET", f"/api/v2/tasks/me/{theirs.id}", None),
        ("GET", f"/api/v2/tasks/{cc.user_id('bob')}/{theirs.id}", None),
        ("GET", "/api/v2/tasks/bob/bobs-task/logs", None),
        ("POST", "/api/v2/tasks/bob/bobs-task/send", {"input": "x"}),
        ("PATCH", "/api/v2/tasks/bob/bobs-task/input", {"input": "x"}),
        ("POST", "/api/experimental/tasks/bob/bobs-task/pause", None),
        ("POST", "/api/experimental/tasks/bob/bobs-task/resume", None),
        ("DELETE", "/api/v2/tasks/bob/bobs-task", None),
    ]:
        reply = coder.call(method, path, "alice", json=body)
        assert reply.status_code == 404, (method, path, reply.text)
        shapes.check_shape(reply.json(), shapes.ERROR)
        assert "bobs-task" not in reply.json()["message"] or "bob" in path
    listed = coder.ok("GET", "/api/v2/tasks", params={"q": "owner:bob"})
    assert listed == {"tasks": [], "count": 0}
    assert theirs.id not in {t["id"] for t in coder.ok("GET", "/api/v2/tasks")["tasks"]}
    # an admin reaches it by owner name or Coder id
    assert coder.ok("GET", "/api/v2/tasks/bob/bobs-task", "admin")["id"] == theirs.id
    assert coder.ok("GET", f"/api/v2/tasks/{cc.user_id('bob')}/{theirs.id}", "admin")
    assert coder.h.store.get(theirs.id).status == Status.PAUSED
    assert coder.h.store.prompts(theirs.id) == []
    coder.h.engine.delete(theirs.id)


def test_only_admins_create_for_others(coder: Coder) -> None:
    version, _ = coder.version_and_preset()
    body = {"template_version_id": version, "input": "x"}
    assert coder.call("POST", "/api/v2/tasks/bob", "alice", json=body).status_code == 403
    missing = coder.call("POST", "/api/v2/tasks/nobody", "admin", json=body)
    assert missing.status_code == 404
    shapes.check_shape(missing.json(), shapes.ERROR)


@pytest.mark.parametrize(
    "body",
    [
        {"template_version_id": "VERSION", "input": ""},
        {"template_version_id": "VERSION", "input": "bad \x1b[2J screen"},
        {"template_version_id": "VERSION", "input": "x \ud800"},
        {"template_version_id": "VERSION", "input": "x", "name": "../../etc"},
        {"template_version_id": "VERSION", "input": "x", "name": "a; rm -rf /"},
        {"template_version_id": "VERSION", "input": "x", "name": "n" * 65},
        {"template_version_id": "VERSION", "input": "x", "display_name": "\x07" * 3},
        {"template_version_id": "not-a-uuid", "input": "x"},
        {"template_version_id": str(uuid.uuid4()), "input": "x"},
        {"template_version_id": "VERSION", "input": "x", "template_version_preset_id": "zz"},
        {"input": "x"},
        {"template_version_id": "VERSION"},
    ],
)
def test_a_bad_create_is_refused_in_coders_shape(coder: Coder, body: dict[str, Any]) -> None:
    version, _ = coder.version_and_preset()
    if body.get("template_version_id") == "VERSION":
        body = {**body, "template_version_id": version}
    before = len(coder.h.store.list_tasks(owner="alice"))
    raw = json.dumps(body)  # ASCII: a lone surrogate travels as its escape
    headers = {"Content-Type": "application/json"}
    reply = coder.call("POST", "/api/v2/tasks/me", content=raw, headers=headers)
    assert reply.status_code in (400, 404), reply.text
    shapes.check_shape(reply.json(), shapes.ERROR)
    assert len(reply.text) < 4000
    assert len(coder.h.store.list_tasks(owner="alice")) == before


@pytest.mark.parametrize(
    "q", ["owner:", 'status:"running"', "owner:me status:active extra:\x00", 'x"y']
)
def test_a_task_query_is_checked(coder: Coder, q: str) -> None:
    reply = coder.call("GET", "/api/v2/tasks", params={"q": q})
    assert reply.status_code in (200, 400), reply.text
    if reply.status_code == 200:
        shapes.check_shape(reply.json(), shapes.TASK_LIST)
    else:
        shapes.check_shape(reply.json(), shapes.ERROR)


@pytest.mark.parametrize("ref", ["%2e%2e%2fetc", "x" * 300, "%00", "a b", "'; --"])
def test_odd_task_refs_are_not_found(coder: Coder, ref: str) -> None:
    reply = coder.call("GET", f"/api/v2/tasks/me/{ref}")
    assert reply.status_code == 404, reply.text
    assert len(reply.text) < 2000


def test_a_path_escaping_the_prefix_is_not_found(coder: Coder) -> None:
    # decoded it leaves Coder's routes: Dockyard's app answers (no route: 404)
    reply = coder.call("GET", "/api/v2/templateversions/..%2F..%2Fetc/presets")
    assert reply.status_code == 404, reply.text


# --- the two surfaces side by side ------------------------------------------------------


def test_dockyards_own_api_lives_beside_coders(coder: Coder) -> None:
    token = {"Authorization": f"Bearer {coder.tokens['alice']}"}
    ours = httpx.get(
        coder.url + "/api/dockyard/v1/tasks", headers=token, timeout=HTTP_TIMEOUT
    ).json()
    assert set(ours) == {"tasks"}  # Dockyard's list
    theirs = httpx.get(coder.url + "/api/v2/tasks", headers=token, timeout=HTTP_TIMEOUT).json()
    assert set(theirs) == {"tasks", "count"}  # Coder's list at the same old path
    # an old Dockyard path Coder's surface does not claim still answers
    assert (
        httpx.get(coder.url + "/api/v2/health", headers=token, timeout=HTTP_TIMEOUT).json()["ok"]
        is True
    )
    templates = httpx.get(
        coder.url + "/api/dockyard/v1/templates", headers=token, timeout=HTTP_TIMEOUT
    ).json()
    assert "templates" in templates


# --- Coder's CLI calling pattern, Go-free -----------------------------------------------


def test_coders_cli_calling_pattern(coder: Coder) -> None:
    """The requests `coder task create/status/logs/send/delete` make (cli/task_*.go and
    codersdk), in their order, with Coder's header and user agent; each answer read as
    the Go client reads it (status code first, then the fields it decodes)."""
    http = httpx.Client(
        base_url=coder.url,
        headers={"Coder-Session-Token": coder.tokens["alice"], "User-Agent": "Coder v2.29.0"},
        timeout=HTTP_TIMEOUT,
    )

    def get(path: str, code: int = 200, **kw: Any) -> Any:
        reply = http.get(path, **kw)
        assert reply.status_code == code, (path, reply.text)
        return reply.json()

    # every command: the server's version and the deployment's entitlements
    def preamble() -> None:
        assert get("/api/v2/buildinfo")["version"].startswith("v2.")
        assert isinstance(get("/api/v2/entitlements")["features"], dict)

    # coder task create --template tasks-test --preset "Real World App: ..." "prompt"
    preamble()
    (org,) = get("/api/v2/users/me/organizations")
    ai = get("/api/v2/templates", params={"q": f"has-ai-task:true organization:{org['id']}"})
    assert TEMPLATE in {t["name"] for t in ai}
    template = get(f"/api/v2/organizations/{org['id']}/templates/{TEMPLATE}")
    version = get(f"/api/v2/templateversions/{template['active_version_id']}")
    by_name = get(
        f"/api/v2/organizations/{org['id']}/templates/{TEMPLATE}/versions/{version['name']}"
    )
    assert by_name["id"] == version["id"] == template["active_version_id"]
    presets = get(f"/api/v2/templateversions/{version['id']}/presets")
    preset = next(p for p in presets if p["Name"].lower() == PRESETS_SLOW.lower())
    created = http.post(
        "/api/experimental/tasks/me",
        json={
            "name": "cli-pattern",
            "template_version_id": version["id"],
            "template_version_preset_id": preset["ID"],
            "input": "Add dark mode",
        },
    )
    assert created.status_code == 201, created.text
    task_id = uuid.UUID(created.json()["id"])  # the Go client parses it as a UUID
    assert coder.h.store.get(str(task_id)).preset == PRESETS_SLOW

    # coder task status cli-pattern (a name: TaskByOwnerAndName), polled until idle
    def idle() -> Any:
        preamble()
        task = get("/api/v2/tasks/me/cli-pattern")
        state = task["current_state"]
        return task if task["status"] == "active" and state and state["state"] == "idle" else None

    task = wait_until(idle, 20, "cli-pattern active and idle")
    assert uuid.UUID(task["id"]) == task_id
    # coder task logs <uuid> / send / delete: by id under `me`
    logs = get(f"/api/v2/tasks/me/{task_id}/logs")["logs"]
    assert any(e["type"] == "input" and "Add dark mode" in e["content"] for e in logs)
    sent = http.post(f"/api/v2/tasks/me/{task_id}/send", json={"input": "Now tests"})
    assert sent.status_code == 204, sent.text
    listed = get("/api/v2/tasks", params={"q": 'owner:"me"'})
    assert str(task_id) in {t["id"] for t in listed["tasks"]}
    deleted = http.delete(f"/api/v2/tasks/me/{task_id}")
    assert deleted.status_code == 202, deleted.text
    gone = http.get(f"/api/v2/tasks/me/{task_id}")
    assert gone.status_code == 404 and gone.json()["message"]
