"""Targets and the queue through the real server and CLI (on the fake backend): create by
--target without a template, GET /targets and `dockyard target list`, GET /queue and
`task list --queue` in admission order with what each waits for, and hostile input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli as dockyard
from provisioner.model import QueueFields
from provisioner.routing import parse_targets
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache"]

ROUTES = {
    "builder": {"template": "scripted", "max_concurrent": 1, "codebases": ["api-server"]},
    "reviewer": {"template": "scripted", "preset": "slow", "codebases": ["global"]},
}


class Served:
    def __init__(self, h: Harness, url: str, cli_home: Path) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}

    def cli(self, *args: str) -> Result:
        result = CliRunner().invoke(dockyard, list(args), env=self.env)
        assert result.exit_code == 0, result.output
        return result

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else admin_headers(self.h.home)
        return httpx.request(method, f"{self.url}/api/dockyard/v1{path}", headers=headers, **kw)


@pytest.fixture
def served(tmp_path: Path, bridge_cache: Path) -> Iterator[Served]:
    with (
        harness_at(
            tmp_path / "home", bridge_cache, max_workspaces=1, targets=parse_targets(ROUTES)
        ) as h,
        serve(h.engine, h.home) as url,
    ):
        yield Served(h, url, tmp_path / "cli-home")


def test_create_by_target_needs_no_template(served: Served) -> None:
    reply = served.api(
        "POST", "/tasks", json={"target": "reviewer", "prompt": "review", "parameters": FAST}
    )
    assert reply.status_code == 201, reply.text
    assert (reply.json()["template"], reply.json()["preset"]) == ("scripted", "slow")
    out = served.cli("task", "create", "--target", "builder", WORK, "build it").stdout
    assert "from scripted/default on target builder" in out
    out = served.cli("task", "create", "--codebase", "mobile", WORK, "lost").stdout
    assert "from no template yet\n" in out
    assert "It is waiting for a target serving codebase mobile" in out
    # by codebase from the CLI, no template either
    task_id = served.cli("task", "create", "--codebase", "api-server", "-q", WORK, "x").stdout
    task = served.h.task(task_id.strip())
    assert (task.target, task.template) == ("builder", "scripted")


WORK = "--param=work_seconds=0.05"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"target": "nope"}, 400, "Unknown target 'nope' (targets: builder, reviewer)"),
        ({}, 400, "No template given"),
        ({"target": "../builder"}, 400, "Invalid target"),
        ({"target": "b\u202eredliub"}, 400, "Invalid target"),
        ({"target": "x" * 65}, 400, "Invalid target"),
        ({"codebase": "a b"}, 400, "Invalid codebase"),
        ({"codebase": "x" * 5000}, 400, "Invalid codebase"),
        ({"target": ["builder"]}, 400, "valid string"),
        ({"codebase": {"$ne": 1}}, 400, "valid string"),
        ({"action": "preempt"}, 400, "interrupt"),
        ({"codebase": "mobile", "template_version": "abc"}, 400, "needs a template"),
    ],
)
def test_hostile_routes_are_refused(
    served: Served, body: dict[str, Any], status: int, words: str
) -> None:
    reply = served.api("POST", "/tasks", json={"prompt": "hi", **body})
    assert reply.status_code == status, reply.text
    assert words in reply.text
    assert served.h.store.list_tasks() == []  # nothing was stored


def test_targets_list_their_load_and_unserved_codebases(served: Served) -> None:
    h = served.h
    first = h.create("one", template=None, queue=QueueFields(target="builder"))
    h.wait_idle(first.id)
    h.create("two", template=None, queue=QueueFields(target="builder"))
    h.create("lost", template=None, queue=QueueFields(codebase="mobile"))
    reply = served.api("GET", "/targets").json()
    builder = next(t for t in reply["targets"] if t["name"] == "builder")
    assert builder == {
        "name": "builder",
        "template": "scripted",
        "preset": None,
        "max_concurrent": 1,
        "codebases": ["api-server"],
        "workers": False,  # it runs its template (a workers target's tasks are claimed)
        "running": 1,
        "counted": 1,
        "waiting": 1,
    }
    assert reply["unserved"] == [{"codebase": "mobile", "waiting": 1}]
    out = served.cli("target", "list").stdout
    assert "builder" in out and "scripted/slow" in out and "api-server" in out
    assert "1 task wait for codebase mobile, which no target serves" in out
    assert json.loads(served.cli("target", "list", "-o", "json").stdout) == reply


def test_the_queue_view_is_in_admission_order_with_what_each_waits_for(served: Served) -> None:
    h = served.h
    running = h.create("running", template=None, queue=QueueFields(target="builder"))
    h.wait_idle(running.id)
    low = h.create("low", queue=QueueFields(priority=10))
    held = h.create("held", template=None, queue=QueueFields(target="builder", priority=90))
    lost = h.create("lost", template=None, queue=QueueFields(codebase="mobile", priority=95))
    urgent = h.create("urgent", queue=QueueFields(priority=20, action="interrupt"))
    parked = h.create("parked", queue=QueueFields(action="backlog"))
    after = h.create("after low", queue=QueueFields(priority=5, depends_on=(low.name,)))
    entries = served.api("GET", "/queue").json()["queue"]
    assert [(e["position"], e["id"]) for e in entries] == [
        (1, urgent.id),
        (2, lost.id),
        (3, held.id),
        (4, low.id),
        (None, after.id),  # waiting for its dependency: no place in line
        (None, parked.id),
    ]
    why = {e["id"]: (e["waiting_for"], e["reason"]) for e in entries}
    assert why[held.id] == (
        "target",
        "waiting for target builder: 1 of 1 of its tasks running; 3rd in line",
    )
    assert why[lost.id][0] == "codebase" and "codebase mobile" in why[lost.id][1]
    assert why[low.id] == (
        "capacity",
        "waiting for capacity: 1 of 1 workspaces in use; 4th in line",
    )
    assert why[parked.id][0] == "backlog"
    assert why[after.id] == ("dependencies", f"waiting for dependencies: {low.name} (pending)")
    assert why[urgent.id][0] == "capacity"
    table = served.cli("task", "list", "--queue").stdout
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["#", "NAME", "PRI", "TARGET", "WAITING", "FOR"]
    assert [line.split()[1] for line in lines[1:]] == [
        urgent.name,
        lost.name,
        held.name,
        low.name,
        after.name,
        parked.name,
    ]
    only = json.loads(
        served.cli("task", "list", "--queue", "--target", "builder", "-o", "json").stdout
    )
    assert [e["id"] for e in only] == [held.id]
    assert served.cli("task", "list", "--queue", "-q").stdout.split()[0] == urgent.id


def test_a_member_sees_places_in_line_but_not_others_tasks(served: Served) -> None:
    h = served.h
    h.store.create_user("carol", "member")
    token, _ = h.store.create_token("carol", "laptop", None)
    blocker = h.create("blocker")
    h.wait_idle(blocker.id)
    h.create("admin's secret plan", queue=QueueFields(tags=("x",)))
    reply = served.api(
        "POST", "/tasks", token=token, json={"template": "scripted", "prompt": "mine"}
    )
    assert reply.status_code == 201, reply.text
    entries = served.api("GET", "/queue", token=token).json()["queue"]
    assert [e["position"] for e in entries] == [1, 2]
    theirs, mine = entries
    assert theirs["name"] is None and theirs["message"] is None and theirs["tags"] == []
    assert "secret" not in json.dumps(theirs)
    assert mine["name"] == reply.json()["name"]
    assert served.api("GET", "/targets", token=token).status_code == 200


@pytest.mark.parametrize("flags", [["--status", "pending"], ["--owner", "ann"], ["-a"]])
def test_the_queue_view_refuses_filters_it_cannot_honour(served: Served, flags: list[str]) -> None:
    result = CliRunner().invoke(dockyard, ["task", "list", "--queue", *flags], env=served.env)
    assert result.exit_code == 2
    assert f"does not take {flags[0]}" in result.output
    assert "--target, --tag or --epic" in result.output


@pytest.mark.parametrize("query", ["target=" + "x" * 65, "tag=" + "y" * 65, "epic=" + "z" * 65])
def test_queue_filters_are_bounded(served: Served, query: str) -> None:
    assert served.api("GET", f"/queue?{query}").status_code == 400


def test_the_openapi_document_describes_queue_entries_and_targets(served: Served) -> None:
    h = served.h
    blocker = h.create("blocker")
    h.wait_idle(blocker.id)
    h.create("waits", template=None, queue=QueueFields(target="builder"))
    doc = httpx.get(
        f"{served.url}/openapi.json", headers=admin_headers(h.home), timeout=HTTP_TIMEOUT
    ).json()
    schemas = doc["components"]["schemas"]
    (entry,) = served.api("GET", "/queue").json()["queue"]
    assert set(entry) == set(schemas["QueueEntry"]["properties"])
    target = served.api("GET", "/targets").json()["targets"][0]
    assert set(target) == set(schemas["TargetView"]["properties"])


def test_a_server_without_targets_says_so(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        plain = Served(h, url, tmp_path / "cli-home")
        assert plain.api("GET", "/targets").json() == {"targets": [], "unserved": []}
        assert "no targets" in plain.cli("target", "list").stdout
        reply = plain.api("POST", "/tasks", json={"prompt": "x", "target": "builder"})
        assert reply.status_code == 400
        assert "Unknown target 'builder' (targets: none are configured)" in reply.text
