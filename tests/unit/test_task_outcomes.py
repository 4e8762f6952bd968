"""Outcomes, progress notes, questions and cost on a real engine (fake backend: the real
bridge and scripted agent as local processes), and through the real API and CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.client import Client
from cli.main import cli as dockyard
from cli.render import tasks_table
from cli.tasks import wait_until_idle
from provisioner.errors import IllegalTransition, ParameterError, TaskConflict
from provisioner.lifecycle import TERMINAL, Status
from provisioner.model import QueueFields
from provisioner.queueing import Cost, parse_completion
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, admin_token, serve

__all__ = ["bridge_cache", "fake"]


def test_created_task_carries_its_queue_fields(fake: Harness) -> None:
    dep = fake.create("build it first")
    task = fake.create(
        "Fix the login bug\nwith details",
        queue=QueueFields(
            title=None,
            priority="high",
            tags=("auth", "p1"),
            task_type="bug",
            epic="login",
            depends_on=(dep.name,),
            retries=2,
        ),  # type: ignore[arg-type]
    )
    stored = fake.task(task.id)
    assert stored.title == "Fix the login bug"
    assert stored.priority == 75
    assert stored.tags == ["auth", "p1"] and stored.task_type == "bug"
    assert stored.depends_on == [dep.id]  # the ref given is kept as the id
    assert stored.created_by == "user" and stored.source == "api"
    assert stored.retries == 2 and stored.attempt == 1


def test_unknown_dependency_or_parent_is_refused_and_nothing_stored(fake: Harness) -> None:
    with pytest.raises(ParameterError, match="Unknown dependency 'nope'"):
        fake.create("x", queue=QueueFields(depends_on=("nope",)))
    with pytest.raises(ParameterError, match="Unknown parent"):
        fake.create("x", queue=QueueFields(parent="nope"))
    assert fake.store.list_tasks() == []


def test_backlog_task_waits_parked(fake: Harness) -> None:
    # stored parked (with nothing else waiting it leaves the backlog on the next pass:
    # see test_engine_dependencies)
    task = fake.create("later", queue=QueueFields(action="backlog"))
    assert task.status == Status.BACKLOG
    assert "backlog" in task.message


def test_success_completes_stops_the_workspace_and_keeps_the_logs(fake: Harness) -> None:
    task = fake.create("say something")
    fake.wait_idle(task.id)
    assert task.id in fake.backend.running_task_ids()
    done = fake.engine.complete(
        task.id, parse_completion({"outcome": "SUCCESS", "output": "all green\nmore"})
    )
    assert done.status == Status.COMPLETED
    assert done.outcome == "SUCCESS" and done.output == "all green\nmore"
    assert done.message == "SUCCESS: all green" and done.finished_at
    assert task.id not in fake.backend.running_task_ids()
    assert fake.output(task.id), "the logs are kept"
    kinds = [(e["kind"], e["to_value"]) for e in fake.store.events(task.id)]
    assert ("status", "completed") in kinds and ("outcome", "SUCCESS") in kinds
    with pytest.raises(TaskConflict, match="already ended"):
        fake.engine.complete(task.id, parse_completion({"outcome": "FAILED"}))


def test_outcomes_from_other_statuses(fake: Harness) -> None:
    # tasks that wait for a dependency stay pending whatever the engine does meanwhile
    first = fake.create("first")
    waiting = [fake.create(f"after {i}", queue=QueueFields(depends_on=(first.id,))) for i in (1, 2)]
    fake.wait_task(waiting[1].id, lambda t: "waiting for dependencies" in t.message, "blocked")
    skipped = fake.engine.complete(waiting[0].id, parse_completion({"outcome": "SKIPPED"}))
    assert (skipped.status, skipped.outcome) == (Status.CANCELLED, "SKIPPED")
    with pytest.raises(IllegalTransition, match="Cannot complete"):
        fake.engine.complete(waiting[1].id, parse_completion({"outcome": "SUCCESS"}))
    assert fake.task(waiting[1].id).status == Status.PENDING


def test_progress_ask_answer_and_usage(fake: Harness) -> None:
    task = fake.create("work")
    fake.wait_idle(task.id)
    fake.engine.progress(task.id, "Fixed the auth check, running tests", actor="agent")
    assert fake.task(task.id).progress == "Fixed the auth check, running tests"
    asked = fake.engine.ask(task.id, "Which database should I use?", actor="agent")
    assert asked.state == "input_required"
    assert asked.question == "Which database should I use?"
    assert asked.message == "asks: Which database should I use?"
    # the follower keeps the question up while the agent sits idle
    fake.engine.wake()
    assert fake.task(task.id).state == "input_required"
    fake.engine.send(task.id, "PostgreSQL")
    answered = fake.wait_idle(task.id)
    assert answered.question is None
    assert "PostgreSQL" in " ".join(fake.output(task.id))
    fake.engine.add_usage(task.id, Cost(100, 20, 0.5, "m-1"), actor="agent")
    fake.engine.add_usage(task.id, Cost(1, 2, None, None), actor="agent")
    summed = fake.task(task.id)
    assert (summed.tokens_in, summed.tokens_out, summed.cost_usd) == (101, 22, 0.5)
    assert summed.model == "m-1"


def test_reports_apply_once_and_hostile_ones_are_dropped(fake: Harness) -> None:
    task = fake.create("work")
    fake.wait_idle(task.id)
    usage = {"id": "r1", "kind": "usage", "tokens_in": 5, "tokens_out": 5}
    assert fake.engine.apply_report(task.id, usage)
    assert not fake.engine.apply_report(task.id, usage)  # fetched again after a restart
    assert fake.task(task.id).tokens_in == 5
    for bad in (
        {"id": "r2", "kind": "usage", "tokens_in": -4},
        {"id": "r3", "kind": "progress", "note": "\x1b[2J wiped"},
        {"id": "r4", "kind": "delete-everything"},
        {"id": "x" * 65, "kind": "progress", "note": "long id"},
        {"kind": "progress", "note": "no id"},
        {"id": "r5", "kind": "complete", "outcome": "WON"},
    ):
        assert not fake.engine.apply_report(task.id, bad), bad
    assert fake.task(task.id).status == Status.ACTIVE
    assert fake.engine.apply_report(
        task.id, {"id": "r6", "kind": "complete", "outcome": "FAILED", "error_class": "POLICY"}
    )
    failed = fake.task(task.id)
    assert (failed.status, failed.error_class) == (Status.FAILED, "POLICY")


@pytest.fixture
def served(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def test_api_and_cli_complete_progress_filters_and_events(
    served: tuple[Harness, str], tmp_path: Path
) -> None:
    h, url = served
    env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(tmp_path / "cli")}

    def run(*args: str) -> str:
        result = CliRunner().invoke(dockyard, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    run(
        "task",
        "create",
        "-t",
        "scripted",
        "--param",
        "work_seconds=0.05",
        "--name",
        "base",
        "--priority",
        "high",
        "--tag",
        "auth",
        "--type",
        "bug",
        "--epic",
        "login",
        "first",
    )
    run(
        "task",
        "create",
        "-t",
        "scripted",
        "--name",
        "later",
        "--action",
        "backlog",
        "--depends-on",
        "base",
        "--tag",
        "ui",
        "second",
    )
    listed = json.loads(run("task", "list", "--tag", "auth", "-o", "json"))
    assert [t["name"] for t in listed] == ["base"]
    assert listed[0]["source"] == "cli" and listed[0]["priority"] == 75
    assert [t["name"] for t in json.loads(run("task", "list", "--epic", "login", "-o", "json"))]
    queue = run("task", "list", "--queue")
    assert "later" in queue and "backlog" in queue
    h.wait_idle("base")
    run("task", "progress", "base", "halfway there")
    out = run(
        "task",
        "complete",
        "base",
        "--outcome",
        "success",
        "--output",
        "done",
        "--tokens-in",
        "7",
        "--cost-usd",
        "0.1",
    )
    assert "completed" in out
    status = run("task", "status", "base")
    assert "outcome: SUCCESS" in status and "progress: halfway there" in status
    assert "cost: 7 tokens in" in status
    events = run("task", "events")  # every task's
    assert "base" in events and "outcome" in events and "progress" in events
    # the API: source is the server's to set, a sent one is refused (not a field)
    headers = admin_headers(h.home)
    made = httpx.post(
        f"{url}/api/v2/tasks",
        headers=headers,
        json={"template": "scripted", "prompt": "x", "priority": 101},
        timeout=HTTP_TIMEOUT,
    )
    assert made.status_code == 400 and "priority" in made.text
    page = httpx.get(
        f"{url}/api/v2/events",
        params={"since": 0, "limit": 2},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).json()
    assert len(page["events"]) == 2
    more = httpx.get(
        f"{url}/api/v2/events",
        params={"since": page["next_since"]},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).json()
    assert more["events"][0]["id"] > page["events"][-1]["id"]
    bad = httpx.post(
        f"{url}/api/v2/tasks/later/complete",
        headers=headers,
        json={"outcome": "SUCCESS", "output": "\x1b]0;pwned\x07"},
        timeout=HTTP_TIMEOUT,
    )
    assert bad.status_code in (400, 422)
    # nothing was completed (it left the backlog by itself once its dependency completed)
    assert h.task("later").outcome is None and h.task("later").status not in TERMINAL


def test_wait_returns_when_the_agent_asks(served: tuple[Harness, str]) -> None:
    h, url = served
    client = Client(url, token=admin_token(h.home))
    task = h.create("work")
    h.wait_idle(task.id)
    h.engine.ask(task.id, "Which database?", actor="agent")
    said: list[str] = []
    shown = wait_until_idle(client, client.get_task(task.id), 30, said.append)
    assert shown["state"] == "input_required"
    assert said[-2:] == [
        "the agent asks: Which database?",
        f"answer with: dockyard task send {task.name} ANSWER",
    ]
    listed = tasks_table(client.list_tasks(owner="admin"), owners=True)
    assert "input_required" in listed and "asks: Which database?" in listed


def test_the_openapi_document_describes_every_public_task_field(
    served: tuple[Harness, str],
) -> None:
    h, url = served
    doc = httpx.get(
        f"{url}/openapi.json", headers=admin_headers(h.home), timeout=HTTP_TIMEOUT
    ).json()
    task_fields = set(doc["components"]["schemas"]["Task"]["properties"])
    shown = set(h.create("described").public())
    assert shown == task_fields
    assert {"priority", "outcome", "question", "cost_usd", "depends_on"} <= task_fields
    assert not {"bridge_token", "resolved", "lease_owner"} & task_fields
    create = doc["paths"]["/api/dockyard/v1/tasks"]["post"]["responses"]["201"]
    assert create["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Task"}
