"""Dependencies, backlog, sprints, epics and priority changes on a real engine (fake
backend: the real bridge and scripted agent as local processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.errors import ParameterError, TaskConflict
from provisioner.lifecycle import Status
from provisioner.model import QueueFields
from provisioner.queueing import Cost, parse_completion
from tests.fake_engine import Harness, Sampler, bridge_cache, fake, harness_at
from tests.postgres import postgres_cluster, store_url
from tests.serving import admin_env, serve

__all__ = ["bridge_cache", "fake", "postgres_cluster", "store_url"]

SUCCESS = parse_completion({"outcome": "SUCCESS"})


def _events(h: Harness, ref: str, kind: str) -> list[dict[str, object]]:
    return [e for e in h.store.events(h.task(ref).id) if e["kind"] == kind]


def _after(*deps: str, **fields: object) -> QueueFields:
    return QueueFields(depends_on=deps, **fields)  # type: ignore[arg-type]


def test_a_dependent_starts_only_after_its_dependency_completes(fake: Harness) -> None:
    build = fake.create("build it", name="build")
    test = fake.create("test it", name="test", queue=_after("build"))
    assert test.status == Status.PENDING and test.blocked
    assert test.message.startswith("waiting for dependencies: build (")
    fake.wait_idle(build.id)
    waiting = fake.wait_task(
        test.id,
        lambda t: t.message == "waiting for dependencies: build (active)",
        "the dependent naming its active dependency",
    )
    assert waiting.status == Status.PENDING
    assert not fake.backend.observe(test.id).exists  # nothing provisioned for it
    assert test.id not in {s.id for s in fake.engine.capacity().queue}  # not in line

    fake.engine.complete(build.id, SUCCESS)
    fake.wait_idle(test.id)
    assert [(e["from_value"], e["to_value"]) for e in _events(fake, test.id, "dependency")] == [
        ("waiting", "ready")
    ]
    assert fake.task(test.id).blocked is False


def test_failure_propagates_to_dependents_and_theirs(fake: Harness) -> None:
    build = fake.create("build it", name="build")
    test = fake.create("test it", name="test", queue=_after("build"))
    deploy = fake.create("deploy it", name="deploy", queue=_after("test"))
    fake.wait_idle(build.id)
    fake.engine.complete(build.id, parse_completion({"outcome": "FAILED"}))
    failed = fake.wait_status(test.id, Status.FAILED)
    assert failed.error_class == "DEPENDENCY"
    assert failed.message == "dependency build failed"
    after = fake.wait_status(deploy.id, Status.FAILED)
    assert (after.error_class, after.message) == ("DEPENDENCY", "dependency test failed")
    status = [e for e in _events(fake, test.id, "status") if e["to_value"] == "failed"]
    assert status[0]["actor"] == "engine" and status[0]["reason"] == "dependency build failed"
    assert not fake.backend.observe(test.id).exists  # it never ran


def test_with_the_wait_policy_a_dependent_keeps_waiting(fake: Harness) -> None:
    build = fake.create("build it", name="build")
    test = fake.create("test it", name="test", queue=_after("build", on_dependency_failure="wait"))
    fake.engine.complete(build.id, parse_completion({"outcome": "CANCELLED"}))
    waiting = fake.wait_task(
        test.id, lambda t: "was cancelled" in t.message, "the dependent saying so"
    )
    assert waiting.status == Status.PENDING and waiting.blocked
    assert waiting.message == (
        "waiting for dependencies: build was cancelled; retry it "
        "(dockyard task retry build) or delete this task"
    )
    assert _events(fake, test.id, "dependency")[-1]["to_value"] == "dependency failed"
    fake.engine.delete(test.id)  # what it says to do works


def test_deleting_a_dependency_counts_as_cancelled_unless_it_had_completed(
    fake: Harness,
) -> None:
    a = fake.create("a", name="a")
    b = fake.create("b", name="b")
    both = fake.create("both", name="both", queue=_after("a", "b"))
    fake.wait_idle(a.id)
    fake.engine.complete(a.id, SUCCESS)
    fake.engine.delete(a.id)  # completed: no longer waited for
    dropped = fake.task(both.id)
    assert dropped.depends_on == [b.id] and dropped.status == Status.PENDING
    assert _events(fake, both.id, "dependency")[-1]["reason"] == (
        "a completed and was deleted: no longer waited for"
    )
    fake.engine.delete(b.id)  # not completed: counts as cancelled
    failed = fake.wait_status(both.id, Status.FAILED)
    assert (failed.error_class, failed.message) == ("DEPENDENCY", "dependency b was deleted")


def test_a_task_cannot_depend_on_itself_or_close_a_cycle(fake: Harness) -> None:
    first = fake.create("first", name="first")
    # a new task cannot be named by anyone yet: naming itself is an unknown task
    with pytest.raises(ParameterError, match="Unknown dependency 'second'"):
        fake.create("second", name="second", queue=_after("second"))
    # a cycle already in the graph the new task joins is refused, naming its tasks
    fake.store.record(first.id, "dependency", actor="test", depends_on=[first.id])
    with pytest.raises(ParameterError, match="Dependency cycle: first -> first"):
        fake.create("third", name="third", queue=_after("first"))
    assert [t.name for t in fake.store.list_tasks()] == ["first"]


@pytest.fixture
def two_slots(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=2) as h:
        h.sampler = Sampler(h)
        h.sampler.start()
        yield h
        h.sampler.done.set()


def test_a_blocked_task_does_not_hold_up_the_ones_behind_it(two_slots: Harness) -> None:
    h = two_slots
    build = h.create("build", name="build")
    h.wait_idle(build.id)
    # first in priority, but waiting for its dependency: it holds no place in line
    blocked = h.create("urgent follow-up", name="urgent", queue=_after("build", priority=90))
    later = h.create("low", name="low", queue=QueueFields(priority=10))
    h.wait_idle(later.id)
    assert h.task(blocked.id).status == Status.PENDING
    assert h.engine.capacity().waiting == 0
    h.engine.complete(build.id, SUCCESS)
    h.wait_idle(blocked.id)
    h.sampler.check(2)


@pytest.fixture
def capped(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=1) as h:
        h.sampler = Sampler(h)
        h.sampler.start()
        yield h
        h.sampler.done.set()


def test_backlog_moves_up_by_itself_once_nothing_else_waits(capped: Harness) -> None:
    h = capped
    running = h.create("running", name="running")
    h.wait_idle(running.id)
    waiting = h.create("waiting", name="waiting")
    parked = h.create("someday", name="someday", queue=QueueFields(action="backlog"))
    h.wait_task(waiting.id, lambda t: t.message.endswith("1st in line"), "waiting in line")
    h.engine.wake()
    assert h.task(parked.id).status == Status.BACKLOG  # something else waits
    h.engine.complete(running.id, SUCCESS)
    h.wait_idle(waiting.id)
    moved = h.wait_status(parked.id, Status.PENDING)
    assert moved.message.startswith("waiting for capacity")
    promote = _events(h, parked.id, "promote")
    assert [(e["actor"], e["reason"]) for e in promote] == [("engine", "nothing else waits")]
    h.engine.complete(waiting.id, SUCCESS)
    h.wait_idle(parked.id)
    h.sampler.check()


def test_promote_by_hand_queues_behind_the_waiting_ones(capped: Harness) -> None:
    h = capped
    running = h.create("running", name="running")
    h.wait_idle(running.id)
    waiting = h.create("waiting", name="waiting")
    parked = h.create("someday", name="someday", queue=QueueFields(action="backlog"))
    moved = h.engine.promote(parked.id, actor="user:alice", reason="needed for the release")
    assert moved.status == Status.PENDING
    assert [s.id for s in h.engine.capacity().queue] == [waiting.id, parked.id]
    promote = _events(h, parked.id, "promote")
    assert [(e["actor"], e["reason"]) for e in promote] == [
        ("user:alice", "needed for the release")
    ]
    status = _events(h, parked.id, "status")[-1]
    assert (status["from_value"], status["to_value"], status["actor"]) == (
        "backlog",
        "pending",
        "user:alice",
    )
    with pytest.raises(TaskConflict, match="not in the backlog"):
        h.engine.promote(parked.id)
    with pytest.raises(ParameterError, match="control character"):
        h.engine.promote(running.id, reason="\x1b[2Jwiped")


def test_priority_change_reorders_the_queue(capped: Harness) -> None:
    h = capped
    running = h.create("running", name="running")
    h.wait_idle(running.id)
    low = h.create("low", name="low", queue=QueueFields(priority=10))
    high = h.create("high", name="high", queue=QueueFields(priority=90))
    assert [s.id for s in h.engine.capacity().queue] == [high.id, low.id]
    changed = h.engine.set_priority(low.id, "high", actor="user:alice", reason="customer waiting")
    assert changed.priority == 75
    assert [s.id for s in h.engine.capacity().queue] == [high.id, low.id]  # 90 beats 75
    h.engine.set_priority(low.id, 95, actor="user:alice")
    assert [s.id for s in h.engine.capacity().queue] == [low.id, high.id]
    h.wait_task(low.id, lambda t: t.message.endswith("1st in line"), "low told it is first")
    events = [(e["from_value"], e["to_value"], e["actor"]) for e in _events(h, low.id, "priority")]
    assert events == [("10", "75", "user:alice"), ("75", "95", "user:alice")]
    assert _events(h, low.id, "priority")[0]["reason"] == "customer waiting"
    for bad in (101, -1, "urgent", True, "5e1"):
        with pytest.raises(ParameterError, match="priority"):
            h.engine.set_priority(low.id, bad)
    h.engine.complete(running.id, SUCCESS)
    h.wait_idle(low.id)
    assert h.task(high.id).status == Status.PENDING
    with pytest.raises(TaskConflict, match="has ended"):
        h.engine.set_priority(running.id, 10)
    h.sampler.check()


def test_a_sprint_runs_in_order_and_its_epic_shows_progress_and_cost(fake: Harness) -> None:
    sprint = QueueFields(action="sprint", epic="login")
    one = fake.create("one", name="one", queue=sprint)
    two = fake.create("two", name="two", queue=QueueFields(action="sprint", epic="login"))
    three = fake.create("three", name="three", queue=QueueFields(action="sprint", epic="login"))
    other = fake.create("elsewhere", name="elsewhere", queue=QueueFields(epic="login"))
    assert fake.task(two.id).depends_on == [one.id]
    assert fake.task(three.id).depends_on == [one.id, two.id]
    assert fake.task(other.id).depends_on == []  # not a sprint task: runs when it can
    fake.wait_idle(one.id)
    fake.wait_idle(other.id)
    assert fake.task(two.id).status == Status.PENDING
    fake.engine.add_usage(one.id, Cost(100, 10, 0.25, "m"), actor="agent")
    fake.engine.complete(one.id, parse_completion({"outcome": "SUCCESS", "tokens_in": 5}))
    fake.wait_idle(two.id)
    three_now = fake.wait_task(
        three.id, lambda t: t.message == "waiting for dependencies: two (active)", "three waits"
    )
    assert three_now.status == Status.PENDING
    fake.engine.progress(two.id, "halfway", actor="agent")
    epic = fake.engine.epic("login", None)
    assert [t["name"] for t in epic["tasks"]] == ["one", "two", "three", "elsewhere"]
    assert epic["progress"] == "1 of 4 completed"
    assert (epic["tokens_in"], epic["tokens_out"], epic["cost_usd"]) == (105, 10, 0.25)
    two_row = epic["tasks"][1]
    assert (two_row["status"], two_row["progress"], two_row["depends_on"]) == (
        "active",
        "halfway",
        ["one"],
    )
    fake.engine.complete(two.id, SUCCESS)
    fake.wait_idle(three.id)
    # a sprint task added after some ended waits only for the open ones
    four = fake.create("four", name="four", queue=QueueFields(action="sprint", epic="login"))
    assert fake.task(four.id).depends_on == [three.id]


def test_cli_priority_promote_and_epic_status(capped: Harness, tmp_path: Path) -> None:
    h = capped
    with serve(h.engine, h.home) as url:
        env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(tmp_path / "cli")}

        def run(*args: str, code: int = 0) -> str:
            result = CliRunner().invoke(dockyard, list(args), env=env)
            assert result.exit_code == code, result.output
            return result.output

        base = ("task", "create", "-t", "scripted", "--param", "work_seconds=0.05")
        run(*base, "--name", "one", "--epic", "rel", "--action", "sprint", "first")
        h.wait_idle("one")
        run(*base, "--name", "two", "--epic", "rel", "--action", "sprint", "second")
        run(*base, "--name", "plain", "waits for the slot")  # holds the backlog back
        run(*base, "--name", "later", "--epic", "rel", "--action", "backlog", "someday")
        assert "two: priority 75" in run("task", "priority", "two", "high", "--reason", "now")
        run("task", "priority", "two", "101", code=2)  # refused before it is sent
        out = run("task", "promote", "later", "--reason", "release")
        assert "later: pending" in out and "It is waiting for capacity" in out
        queue = run("task", "list", "--queue")
        assert "later" in queue
        epic = run("epic", "status", "rel")
        assert epic.splitlines()[0].split() == [
            "NAME",
            "STATUS",
            "PRI",
            "ACTION",
            "AFTER",
            "PROGRESS",
        ]
        rows = {line.split()[0]: line.split() for line in epic.splitlines()[1:4]}
        assert rows["two"][1:5] == ["pending", "75", "sprint", "one"]
        assert "progress: 0 of 3 completed" in epic and "cost: 0 tokens in" in epic
        shown = json.loads(run("epic", "status", "rel", "-o", "json"))
        assert [t["name"] for t in shown["tasks"]] == ["one", "two", "later"]
        events = run("task", "events", "two")
        assert "priority" in events and "50 -> 75" in events and "now" in events
        refused = CliRunner().invoke(dockyard, ["epic", "status", "nope"], env=env)
        assert refused.exit_code == 1 and "No epic 'nope'" in refused.output


def test_two_engines_record_each_dependency_change_once(
    tmp_path: Path, bridge_cache: Path, store_url: str
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url) as h:
        second = h.new_engine()
        second.start()
        try:
            build = h.create("build", name="build")
            test = h.create("test", name="test", queue=_after("build"))
            doomed = h.create("doomed", name="doomed", queue=_after("test"))
            h.wait_idle(build.id)
            h.engine.complete(build.id, SUCCESS)
            h.wait_idle(test.id)
            h.engine.complete(test.id, parse_completion({"outcome": "FAILED"}))
            h.wait_status(doomed.id, Status.FAILED)
            for engine in (h.engine, second):  # both look again: nothing more happens
                engine.reconcile()
            moves = [(e["from_value"], e["to_value"]) for e in _events(h, test.id, "dependency")]
            assert moves == [("waiting", "ready")]
            claims = [e for e in _events(h, test.id, "status") if e["to_value"] == "initializing"]
            assert len(claims) == 1
            failed = [e for e in _events(h, doomed.id, "status") if e["to_value"] == "failed"]
            assert len(failed) == 1
        finally:
            second.stop()
