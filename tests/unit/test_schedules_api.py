"""`dockyard schedule ...` against a real server on the fake engine: create, list with
next runs, show, pause, resume, run-now and delete; and what is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli as dockyard
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache"]


class Server:
    def __init__(self, h: Harness, url: str, cli_home: Path) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}
        self.headers = admin_headers(h.home)

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(dockyard, list(args), env=self.env)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", self.headers)
        return httpx.request(method, f"{self.url}/api/dockyard/v1{path}", headers=headers, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("schedules")
    with harness_at(root / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        yield Server(h, url, root / "cli-home")


def test_a_schedules_life_from_the_cli(server: Server) -> None:
    made = server(
        "schedule", "create", "weekday-tidy", "Tidy the repository",
        "--cron", "0 9 * * 1-5", "--timezone", "Europe/Berlin",
        "--template", "scripted", "--param", "work_seconds=0.05",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "Schedule weekday-tidy: 0 9 * * 1-5 (Europe/Berlin)" in made.output
    assert "Next runs: 20" in made.output
    listed = server("schedule", "list")
    assert "weekday-tidy" in listed.output and "active" in listed.output
    shown = server("schedule", "show", "weekday-tidy", "-o", "json")
    assert '"next_runs"' in shown.output and '"concurrency": "skip"' in shown.output
    assert server("schedule", "pause", "weekday-tidy").exit_code == 0
    paused = server.api("GET", "/schedules/weekday-tidy").json()
    assert paused["paused"] and paused["next_runs"] == []
    resumed = server("schedule", "resume", "weekday-tidy")
    assert resumed.exit_code == 0 and "next run 20" in resumed.output
    ran = server("schedule", "run-now", "weekday-tidy")
    assert ran.exit_code == 0, ran.output
    schedule = server.api("GET", "/schedules/weekday-tidy").json()
    [fire] = schedule["fires"]
    assert fire["state"] == "started"
    task = server.h.task(fire["task_id"])
    assert task.source == "cron" and task.schedule_id == schedule["id"]
    assert task.prompt == "Tidy the repository" and float(task.parameters["work_seconds"]) == 0.05
    assert server.api("GET", f"/tasks/{task.id}").json()["schedule_id"] == schedule["id"]
    server.h.wait_idle(task.id)
    assert server("schedule", "delete", "weekday-tidy").exit_code == 0
    assert server.api("GET", "/schedules/weekday-tidy").status_code == 404
    assert server.h.task(task.id).schedule_id == schedule["id"]  # its tasks stay


def test_a_triggers_life_from_the_cli(server: Server) -> None:
    """The recipe options (shared with `schedule create`) reach the trigger as given."""
    made = server(
        "trigger", "create", "on-issue", "--form", "github-issue", "-o", "json",
        "--template", "scripted", "--preset", "default", "--param", "work_seconds=0.05",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    trigger = server.api("GET", "/triggers/on-issue").json()
    assert (trigger["template"], trigger["preset"], trigger["target"]) == (
        "scripted",
        "default",
        None,
    )
    assert trigger["parameters"] == {"work_seconds": "0.05"}, trigger
    assert "on-issue" in server("trigger", "list").output
    deleted = server("trigger", "delete", "on-issue")
    assert deleted.exit_code == 0 and "Deleted trigger on-issue" in deleted.output
    assert server.api("GET", "/triggers/on-issue").status_code == 404


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *\n* * * * *"}, "cron"),
        ({"cron": "@reboot"}, "cron"),
        ({"timezone": "../../etc/passwd"}, "time zone"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"name": "../up"}, "name"),
        ({"name": "a" * 41}, "name"),
        ({"concurrency": "sometimes"}, "concurrency"),
        ({"catch_up": "always"}, "catch_up"),
        ({"prompt": "hi\x15there"}, "prompt"),
        ({"prompt": " "}, "empty"),
        ({"template": "no-such-template"}, "no-such-template"),
        ({"template": None}, "template"),
        ({"target": "nowhere"}, "target"),
        ({"parameters": {"k\x00": "v"}}, "NUL"),
    ],
)
def test_bad_schedules_are_refused(server: Server, changes: dict[str, Any], words: str) -> None:
    body = {"name": "bad", "cron": "0 9 * * *", "template": "scripted", "prompt": "hi"}
    reply = server.api("POST", "/schedules", json={**body, **changes})
    assert reply.status_code in (400, 404), reply.text
    assert words in reply.text
    assert server.api("GET", "/schedules/bad").status_code == 404


def test_a_bad_cron_says_what_to_write(server: Server) -> None:
    result = server(
        "schedule", "create", "x", "hi", "--cron", "every day", "--template", "scripted"
    )
    assert result.exit_code == 1
    assert "Invalid cron expression" in result.output and "0 9 * * 1-5" in result.output


def test_members_see_and_act_on_their_own_schedules_only(server: Server) -> None:
    store = server.h.store
    for name in ("carol", "dave"):
        if store.user(name) is None:
            store.create_user(name, "member")
    carol = {"Authorization": f"Bearer {store.create_token('carol', 'x', None)[0]}"}
    dave = {"Authorization": f"Bearer {store.create_token('dave', 'x', None)[0]}"}
    body = {"name": "mine", "cron": "0 9 * * *", "template": "scripted", "prompt": "hi"}
    assert server.api("POST", "/schedules", json=body, headers=carol).status_code == 201
    # dave may use the same name: schedules are named per owner
    assert server.api("POST", "/schedules", json=body, headers=dave).status_code == 201
    assert server.api("POST", "/schedules", json=body, headers=dave).status_code == 409
    carols = server.api("GET", "/schedules/mine", headers=carol).json()
    for method, path in [
        ("GET", f"/schedules/{carols['id']}"),
        ("POST", f"/schedules/{carols['id']}/pause"),
        ("POST", f"/schedules/{carols['id']}/run"),
        ("DELETE", f"/schedules/{carols['id']}"),
    ]:
        assert server.api(method, path, headers=dave).status_code == 404, (method, path)
    assert server.api("GET", "/schedules", params={"all": "true"}, headers=dave).status_code == 403
    assert [
        s["owner"] for s in server.api("GET", "/schedules", headers=dave).json()["schedules"]
    ] == ["dave"]
    assert not server.api("GET", f"/schedules/{carols['id']}", headers=carol).json()["paused"]
    assert httpx.get(f"{server.url}/api/v2/schedules", timeout=HTTP_TIMEOUT).status_code == 401
