"""Retries on a real engine (fake backend: the real bridge and scripted agent as local
processes): only TRANSIENT and TIMEOUT errors, with backoff, every attempt an event;
`task complete --outcome FAILED --error-class TRANSIENT` re-queues while retries are left;
`task retry` by hand through the API and the CLI. Time is moved by handing the retry pass
a later `now`, never by sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.engine.retries import Retries
from provisioner.errors import BackendUnavailable, TaskConflict, TemplateError
from provisioner.lifecycle import ErrorClass, Status
from provisioner.model import QueueFields, Task, parse_time
from provisioner.queueing import parse_completion
from provisioner.store.store import Store, sqlite_url
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve
from tests.stored import stored_task

__all__ = ["bridge_cache", "fake"]


def due(h: Harness, task: Task) -> None:
    """Run the retry pass as if the task's retry time had come."""
    later = parse_time(str(task.retry_at)) + timedelta(seconds=1)
    h.engine.retries.run([h.task(task.id)], now=later)


def kinds(h: Harness, task_id: str, kind: str) -> list[dict]:
    return [e for e in h.store.events(task_id) if e["kind"] == kind]


def test_a_transient_engine_error_is_retried_with_backoff_until_retries_run_out(
    fake: Harness,
) -> None:
    fake.backend.create_error = BackendUnavailable("Cannot connect to the Docker daemon")
    task = fake.create("hello", queue=QueueFields(retries=1))
    errored = fake.wait_task(task.id, lambda t: t.retry_at is not None, "a retry scheduled")
    assert errored.status == Status.ERROR and errored.error_class == "TRANSIENT"
    wait = parse_time(str(errored.retry_at)) - parse_time(errored.updated_at)
    assert timedelta(seconds=4) < wait <= timedelta(seconds=5)  # the first backoff step
    (scheduled,) = kinds(fake, task.id, "retry")
    assert scheduled["actor"] == "policy" and "TRANSIENT: " in scheduled["reason"]
    assert "Docker daemon" in scheduled["reason"] and "attempt 2 of 2" in scheduled["reason"]
    fake.engine.retries.run([fake.task(task.id)])  # not due yet: nothing happens
    assert fake.task(task.id).status == Status.ERROR

    fake.backend.create_error = None  # the daemon is back
    due(fake, errored)
    running = fake.wait_idle(task.id)
    assert running.attempt == 2 and running.retry_at is None and running.error_class is None
    moves = [(e["from_value"], e["to_value"], e["actor"]) for e in kinds(fake, task.id, "status")]
    assert ("error", "pending", "policy") in moves
    assert "Done: hello" in fake.output(task.id)  # the first prompt, never taken, went in

    # the second attempt fails the same way: no retries left, it stays in error
    fake.engine.fail(task.id, Status.ACTIVE, "daemon gone again", ErrorClass.TRANSIENT)
    fake.engine.retries.run([fake.task(task.id)], now=datetime.now(UTC) + timedelta(days=1))
    final = fake.task(task.id)
    assert final.status == Status.ERROR and final.retry_at is None and final.attempt == 2
    assert len(kinds(fake, task.id, "retry")) == 2  # scheduled once, started once


def test_permanent_and_unknown_errors_are_never_retried(fake: Harness) -> None:
    fake.backend.image_error = "the Dockerfile does not build"
    task = fake.create("hello", queue=QueueFields(retries=5))
    errored = fake.wait_status(task.id, Status.ERROR)
    assert errored.error_class == "PERMANENT"
    fake.engine.retries.run([errored], now=datetime.now(UTC) + timedelta(days=1))
    assert fake.task(task.id).retry_at is None and fake.task(task.id).status == Status.ERROR
    assert kinds(fake, task.id, "retry") == []


def test_the_templates_retries_apply_unless_the_task_says_otherwise(fake: Harness) -> None:
    name = fake.add_scripted_variant("scripted-retrying", lifecycle={"retries": 3})
    assert fake.create("a", template=name).retries == 3
    assert fake.create("b", template=name, queue=QueueFields(retries=0)).retries == 0
    assert fake.create("c", template=name, queue=QueueFields(retries=1)).retries == 1
    assert fake.create("d").retries == 0  # the scripted template allows none
    for bad in (-1, 11, "lots", 2.5, None):
        variant = fake.add_scripted_variant("scripted-bad-retries", lifecycle={"retries": bad})
        with pytest.raises(TemplateError, match="retries"):
            fake.create("e", template=variant)


def test_a_transient_failure_reported_by_the_agent_requeues_it(fake: Harness) -> None:
    task = fake.create("first try", queue=QueueFields(retries=1))
    fake.wait_idle(task.id)
    failed = parse_completion(
        {"outcome": "FAILED", "error_class": "TRANSIENT", "error_code": "rate_limit"}
    )
    errored = fake.engine.complete(task.id, failed, actor="agent")
    assert errored.status == Status.ERROR and errored.retry_at is not None
    assert errored.outcome is None and errored.error_code == "rate_limit"
    assert task.id not in fake.backend.running_task_ids()  # stopped, its disk kept
    (scheduled,) = kinds(fake, task.id, "retry")
    assert scheduled["actor"] == "agent" and "FAILED (TRANSIENT, rate_limit)" in scheduled["reason"]

    due(fake, errored)
    again = fake.wait_task(
        task.id, lambda t: t.status == Status.ACTIVE and t.attempt == 2, "attempt 2 running"
    )
    assert again.message != "" and again.outcome is None
    # the agent took its prompt before: it is told to go on (its session resumes)
    fake.wait_output(task.id, "Done: This is attempt 2 of this task: the previous attempt "
                     "failed (TRANSIENT: FAILED (TRANSIENT, rate_limit)). Please continue the "
                     "task from where it stands.")  # fmt: skip
    fake.wait_idle(task.id)
    # no retries left: the same report now fails it for good
    done = fake.engine.complete(task.id, failed, actor="agent")
    assert done.status == Status.FAILED and done.outcome == "FAILED"
    # a PERMANENT failure never re-queues, retries or not
    other = fake.create("second", queue=QueueFields(retries=3))
    fake.wait_idle(other.id)
    permanent = parse_completion({"outcome": "FAILED", "error_class": "PERMANENT"})
    assert fake.engine.complete(other.id, permanent).status == Status.FAILED


@pytest.fixture
def served(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def test_task_retry_by_hand_through_the_api_and_cli(
    served: tuple[Harness, str], tmp_path: Path
) -> None:
    h, url = served
    env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(tmp_path / "cli")}
    task = h.create("try me", name="flaky")
    h.wait_idle(task.id)
    h.engine.complete(task.id, parse_completion({"outcome": "FAILED", "output": "tests red"}))
    result = CliRunner().invoke(dockyard, ["task", "retry", "flaky"], env=env)
    assert result.exit_code == 0, result.output
    assert "flaky: attempt 2" in result.output
    retried = h.wait_idle(task.id)
    assert retried.attempt == 2 and retried.finished_at is None and retried.outcome is None
    (event,) = kinds(h, task.id, "retry")
    assert event["actor"].startswith("user:") and "FAILED (UNKNOWN): tests red" in event["reason"]
    assert "attempt 2 of 1" not in event["reason"]  # past the allowance: no "of"

    # only a failed task or one in error: a running, a completed one is refused (409)
    headers = admin_headers(h.home)
    reply = httpx.post(f"{url}/api/v2/tasks/flaky/retry", headers=headers, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 409 and "it is active" in reply.text
    h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    reply = httpx.post(f"{url}/api/v2/tasks/flaky/retry", headers=headers, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 409 and "completed" in reply.text
    result = CliRunner().invoke(dockyard, ["task", "retry", "nope"], env=env)
    assert result.exit_code != 0 and "No task 'nope'" in result.output
    with pytest.raises(TaskConflict):
        h.engine.retries.retry(h.task(task.id), actor="user")
    status = CliRunner().invoke(dockyard, ["task", "status", "flaky"], env=env).output
    assert "attempt 2," not in status and "attempt 2" in status  # past its allowance of 0

    for bad in (-1, 11, "3; drop", 1.5, True):
        made = httpx.post(
            f"{url}/api/v2/tasks",
            headers=headers,
            json={"template": "scripted", "prompt": "x", "retries": bad},
            timeout=HTTP_TIMEOUT,
        )
        assert made.status_code == 400 and "retries" in made.text, (bad, made.text)

    # a task waiting for its retry says when in `task status`
    waiting = h.create("rate limited soon", name="waiting", queue=QueueFields(retries=1))
    h.wait_idle(waiting.id)
    transient = parse_completion({"outcome": "FAILED", "error_class": "TRANSIENT"})
    h.engine.complete(waiting.id, transient, actor="agent")
    status = CliRunner().invoke(dockyard, ["task", "status", "waiting"], env=env).output
    assert "attempt 1 of 2" in status and "retry: attempt 2 starts at 20" in status


class _Port:
    """What the retry pass needs of an engine: a store and a nudge."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_two_engines_seeing_one_error_schedule_one_retry(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        task = stored_task(
            store, Status.ERROR, retries=2, error_class="TIMEOUT", message="phase start timed out"
        )
        seen = store.get(task.id)  # both engines read it before either acts
        one, other = Retries(_Port(store)), Retries(_Port(store))
        one.run([seen])
        other.run([seen])
        (event,) = [e for e in store.events(task.id) if e["kind"] == "retry"]
        assert event["reason"] == "TIMEOUT: phase start timed out; attempt 2 of 3 in 5s"
        when = store.get(task.id).retry_at
        later = parse_time(str(when)) + timedelta(seconds=1)
        one.run([store.get(task.id)], now=later)
        other.run([seen], now=later)  # its view is stale: the compare-and-set refuses it
        queued = store.get(task.id)
        assert (queued.status, queued.attempt, queued.retry_at) == (Status.PENDING, 2, None)
        assert len([e for e in store.events(task.id) if e["kind"] == "retry"]) == 2
    finally:
        store.close()
