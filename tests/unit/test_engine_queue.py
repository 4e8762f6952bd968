"""The queue on the fake backend (a real engine, store, bridge and agent): priority order,
interrupts preempting an idle task, targets' limits (parallel exempt), routing by target,
codebase and global, and a codebase no target serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import paths
from provisioner.engine.routing import check_targets
from provisioner.errors import DockyardError, ParameterError
from provisioner.lifecycle import Status
from provisioner.model import QueueFields, Task
from provisioner.routing import parse_targets
from provisioner.server.main import build_engine
from tests.fake_engine import Harness, Sampler, bridge_cache, harness_at, wait_until

__all__ = ["bridge_cache"]

ROUTES: dict[str, Any] = {
    "builder": {"template": "scripted", "max_concurrent": 1, "codebases": ["api-server", "global"]},
    "reviewer": {"template": "scripted", "preset": "slow", "codebases": ["web", "global"]},
}
WORKING = {"work_seconds": 120}  # busy until the test ends


@pytest.fixture
def capped(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=1) as h:
        h.sampler = Sampler(h)
        h.sampler.start()
        yield h
        h.sampler.done.set()


@pytest.fixture
def routed(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache, targets=parse_targets(ROUTES)) as h:
        yield h


def kinds(h: Harness, task: Task, kind: str) -> list[dict[str, Any]]:
    return [e for e in h.store.events(task.id) if e["kind"] == kind]


def test_higher_priority_runs_first_then_arrival(capped: Harness) -> None:
    blocker = capped.create("blocker")
    capped.wait_idle(blocker.id)
    low = capped.create("low", queue=QueueFields(priority=10))
    high = capped.create("high", queue=QueueFields(priority=90))
    mid = capped.create("mid", queue=QueueFields(priority=50))
    mid_later = capped.create("mid later", queue=QueueFields(priority=50))
    order = [high.id, mid.id, mid_later.id, low.id]
    assert [s.id for s in capped.engine.capacity().queue] == order
    capped.engine.delete(blocker.id)
    for running in order:
        capped.wait_idle(running)
        for later in order[order.index(running) + 1 :]:
            assert capped.task(later).status == Status.PENDING
        capped.engine.pause(running)
    capped.sampler.check()


def test_an_interrupt_pauses_the_lowest_priority_idle_task_never_a_working_one(
    tmp_path: Path, bridge_cache: Path
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=3) as h:
        busy = h.create("busy", queue=QueueFields(priority=1), parameters=WORKING)
        low = h.create("idle low", queue=QueueFields(priority=10))
        mid = h.create("idle mid", queue=QueueFields(priority=30))
        h.wait_idle(low.id)
        h.wait_idle(mid.id)
        h.wait_task(busy.id, lambda t: t.state == "working", "busy working")
        urgent = h.create("urgent", queue=QueueFields(priority=50, action="interrupt"))
        h.wait_idle(urgent.id)
        paused = h.wait_status(low.id, Status.PAUSED)
        assert paused.message == f"preempted by interrupt task {urgent.name} (priority 50)"
        assert h.task(busy.id).status == Status.ACTIVE  # working: never preempted
        assert h.task(mid.id).status == Status.ACTIVE  # not the lowest priority
        (mine,) = wait_until(lambda: kinds(h, urgent, "preempt"), 30, "the preempt event")
        assert mine["actor"] == "engine" and low.name in mine["reason"]
        assert mine["to_value"] == low.id
        (theirs,) = wait_until(lambda: kinds(h, paused, "preempt"), 30, "the victim's event")
        assert urgent.name in theirs["reason"] and theirs["actor"] == "engine"
        (pause,) = [e for e in kinds(h, paused, "status") if e["to_value"] == "paused"]
        assert pause["actor"] == "engine" and urgent.name in pause["reason"]

        # none left to pause (working, or not of lower priority): it waits at the head
        waiting = h.create("second", queue=QueueFields(priority=40))
        stuck = h.create("stuck", queue=QueueFields(priority=20, action="interrupt"))
        h.wait_task(
            stuck.id,
            lambda t: t.message.endswith("no idle task of lower priority to pause"),
            "told there is nobody to preempt",
        )
        assert stuck.message.endswith("1st in line")  # ahead of the priority-40 task
        assert [s.id for s in h.engine.capacity().queue] == [stuck.id, waiting.id]
        assert h.task(mid.id).status == Status.ACTIVE  # priority 30 > 20: kept
        assert h.task(busy.id).status == Status.ACTIVE
        assert not kinds(h, stuck, "preempt")
        # the preempted task keeps its work: a prompt resumes it (once a slot frees)
        h.engine.delete(urgent.id)
        h.wait_idle(stuck.id)


def test_a_targets_limit_holds_its_tasks_only_and_parallel_ones_pass(routed: Harness) -> None:
    first = routed.create("first", template=None, queue=QueueFields(target="builder"))
    routed.wait_idle(first.id)
    second = routed.create("second", template=None, queue=QueueFields(target="builder"))
    assert second.status == Status.PENDING
    assert second.message == "waiting for target builder: 1 of 1 of its tasks running; 1st in line"
    side = routed.create(
        "side", template=None, queue=QueueFields(target="builder", action="parallel")
    )
    other = routed.create("unrouted")  # no target: nothing but the server's limit
    routed.wait_idle(side.id)
    routed.wait_idle(other.id)
    assert routed.task(second.id).status == Status.PENDING
    usage = routed.engine.capacity()
    assert usage.target_live == {"builder": 1}  # the parallel one is not counted
    routed.engine.pause(first.id)
    routed.wait_idle(second.id)
    # a resume waits for the target's limit too
    resumed = routed.engine.resume(first.id)
    assert resumed.status == Status.PENDING
    assert resumed.message.startswith("waiting for target builder to resume: 1 of 1")


def test_an_interrupt_held_by_its_targets_limit_pauses_a_task_of_that_target(
    routed: Harness,
) -> None:
    other = routed.create("elsewhere", queue=QueueFields(priority=1))  # no target
    builder = routed.create("builder", template=None, queue=QueueFields(target="builder"))
    routed.wait_idle(other.id)
    routed.wait_idle(builder.id)
    urgent = routed.create(
        "urgent",
        template=None,
        queue=QueueFields(target="builder", action="interrupt", priority=60),
    )
    routed.wait_idle(urgent.id)
    assert routed.task(builder.id).status == Status.PAUSED
    # the lower-priority task of no target frees no place under builder's limit: kept
    assert routed.task(other.id).status == Status.ACTIVE


def test_tasks_route_by_target_codebase_and_global(routed: Harness) -> None:
    built = routed.create("by target", template=None, queue=QueueFields(target="reviewer"))
    assert (built.template, built.preset, built.target) == ("scripted", "slow", "reviewer")
    api = routed.create("by codebase", template=None, queue=QueueFields(codebase="api-server"))
    assert (api.target, api.preset) == ("builder", "default")
    web = routed.create("web", template=None, queue=QueueFields(codebase="web"))
    assert web.target == "reviewer"
    # global: both serve it; the least loaded (builder has 1, reviewer 2) takes it
    assert routed.create("g", template=None, queue=QueueFields(codebase="global")).target == (
        "builder"
    )
    # an explicit template overrides the target's (and its preset)
    mine = routed.create("own", queue=QueueFields(target="reviewer"), preset=None)
    assert (mine.template, mine.preset, mine.target) == ("scripted", "default", "reviewer")
    with pytest.raises(ParameterError, match="Unknown target 'nope'"):
        routed.create("x", template=None, queue=QueueFields(target="nope"))
    with pytest.raises(ParameterError, match="No template given"):
        routed.create("x", template=None)
    routed.wait_idle(api.id)


def test_a_codebase_no_target_serves_waits_then_runs_once_one_does(routed: Harness) -> None:
    lost = routed.create("mobile work", template=None, queue=QueueFields(codebase="mobile"))
    assert lost.status == Status.PENDING and lost.target is None and lost.template == ""
    why = "waiting for a target serving codebase mobile: no target in the server's config serves it"
    assert lost.message == why
    after = routed.create("after it", queue=QueueFields(priority=10))
    routed.wait_idle(after.id)  # it holds up nobody
    routed.wait_task(lost.id, lambda t: t.message == why, "still waiting, saying why")
    # the parameters given wait in the secret store, never in the database
    assert routed.task(lost.id).parameters == {}
    # the server restarts with a target serving it
    routed.engine.stop()
    routes = {**ROUTES, "mobile": {"template": "scripted", "codebases": ["mobile"]}}
    # (a real server keeps its secret store in its home; the harness's is in memory)
    secrets = routed.engine.secrets
    routed.engine = routed.new_engine(targets=parse_targets(routes), secrets=secrets)
    routed.engine.start()
    done = routed.wait_idle(lost.id)
    assert (done.target, done.template, done.preset) == ("mobile", "scripted", "default")
    assert done.parameters["work_seconds"] == 0.05  # what it was created with
    (route,) = kinds(routed, done, "route")
    assert route["to_value"] == "mobile" and "serves codebase mobile" in route["reason"]


def test_a_task_no_target_serves_holds_back_no_backlog_task(routed: Harness) -> None:
    routed.create("lost", template=None, queue=QueueFields(codebase="mobile"))
    parked = routed.create("parked", queue=QueueFields(action="backlog"))
    routed.wait_idle(parked.id)  # promoted: the unserved one waits for no slot


def test_an_unserved_task_given_a_template_keeps_it_when_routed(routed: Harness) -> None:
    lost = routed.create("x", queue=QueueFields(codebase="mobile"))
    assert lost.template == "scripted" and lost.status == Status.PENDING
    routed.engine.stop()
    routes = {"mobile": {"template": "scripted", "preset": "slow", "codebases": ["mobile"]}}
    routed.engine = routed.new_engine(targets=parse_targets(routes))
    routed.engine.start()
    done = routed.wait_idle(lost.id)
    assert (done.target, done.preset) == ("mobile", "default")


def test_a_target_with_an_unknown_template_or_preset_stops_the_server(routed: Harness) -> None:
    catalog = routed.catalog()
    check_targets(catalog, parse_targets(ROUTES))
    with pytest.raises(DockyardError, match=r"targets\.b: .*'nope'"):
        check_targets(catalog, parse_targets({"b": {"template": "nope"}}))
    with pytest.raises(DockyardError, match=r"targets\.b: .*'fastest'"):
        check_targets(catalog, parse_targets({"b": {"template": "scripted", "preset": "fastest"}}))


def test_a_bad_targets_config_fails_the_server_before_it_opens_anything(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("targets:\n  b: {template: scripted, codebase: [x]}\n")
    with pytest.raises(DockyardError, match=r"targets\.b: unknown key 'codebase'"):
        build_engine(tmp_path)
    assert not (tmp_path / "dockyard.db").exists()
    (tmp_path / "config.yaml").write_text("targets:\n  b: {template: nope}\n")
    with pytest.raises(DockyardError, match=r"targets\.b: .*'nope'"):
        build_engine(tmp_path)
    assert paths.targets(tmp_path)["b"].template == "nope"  # the file itself parses


def test_a_limited_target_never_runs_more_than_its_limit(routed: Harness) -> None:
    sampler = Sampler(routed)  # the most workspaces the fake ever ran at once
    sampler.start()
    tasks = [
        routed.create(f"job {i}", template=None, queue=QueueFields(target="builder"))
        for i in range(3)
    ]

    def all_ran() -> bool:
        for task in tasks:
            current = routed.task(task.id)
            if current.status == Status.ACTIVE and current.state == "idle":
                routed.engine.pause(task.id)  # its place goes to the next
        return all(routed.task(t.id).status == Status.PAUSED for t in tasks)

    wait_until(all_ran, 30, "every builder task ran and was paused")
    sampler.check(1)
