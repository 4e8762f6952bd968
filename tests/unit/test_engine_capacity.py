"""Admission on the fake backend: with a capacity limit, tasks past it wait as pending and
start in priority then arrival order as slots free; never more workspaces than the limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.lifecycle import Status
from provisioner.model import QueueFields
from provisioner.store import records
from tests.fake_engine import Harness, Sampler, bridge_cache, harness_at, wait_until

__all__ = ["bridge_cache"]


@pytest.fixture
def capped(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=1) as h:
        h.sampler = Sampler(h)
        h.sampler.start()
        yield h
        h.sampler.done.set()


def test_tasks_past_the_limit_wait_and_start_in_order_as_slots_free(capped: Harness) -> None:
    first = capped.create("first job")
    capped.wait_idle(first.id)
    second = capped.create("second job")
    assert second.status == Status.PENDING
    assert second.message == "waiting for capacity: 1 of 1 workspaces in use; 1st in line"
    third = capped.create("third job")
    assert third.message == "waiting for capacity: 1 of 1 workspaces in use; 2nd in line"
    usage = capped.engine.capacity()
    assert (usage.limit, usage.in_use, usage.waiting) == (1, 1, 2)
    assert [s.id for s in usage.queue] == [second.id, third.id]
    # a prompt sent to a waiting task is kept
    capped.engine.send(third.id, "and then this")
    # the reconcile loop leaves them waiting with their place in line
    capped.wait_task(third.id, lambda t: t.message.endswith("2nd in line"), "third told its place")
    assert capped.task(second.id).status == Status.PENDING
    assert not capped.backend.observe(second.id).exists  # nothing provisioned for it

    capped.engine.pause(first.id)  # frees the slot: the second starts, the third moves up
    capped.wait_idle(second.id)
    capped.wait_task(
        third.id,
        lambda t: t.message == "waiting for capacity: 1 of 1 workspaces in use; 1st in line",
        "third first in line",
    )
    # a resume past the limit waits too, behind the tasks already waiting
    resumed = capped.engine.resume(first.id)
    assert resumed.status == Status.PENDING
    assert resumed.message.startswith("waiting for capacity to resume: 1 of 1")
    assert [s.id for s in capped.engine.capacity().queue] == [third.id, first.id]

    capped.engine.delete(second.id)
    capped.wait_output(third.id, "Done: and then this")
    out = capped.output(third.id)
    assert out.index("Done: third job") < out.index("Working on: and then this")
    assert capped.task(first.id).status == Status.PENDING
    capped.engine.pause(third.id)
    capped.wait_idle(first.id)
    out = capped.wait_output(first.id, "Resumed (previous context: 1 inputs)")
    assert out.count("Working on: first job") == 1
    capped.sampler.check()


def test_higher_priority_starts_first(capped: Harness) -> None:
    first = capped.create("first")
    capped.wait_idle(first.id)
    low = capped.create("low", queue=QueueFields(priority=10))
    high = capped.create("high", queue=QueueFields(priority=90))
    assert [s.id for s in capped.engine.capacity().queue] == [high.id, low.id]
    capped.wait_task(low.id, lambda t: t.message.endswith("2nd in line"), "low behind high")
    capped.engine.delete(first.id)
    capped.wait_idle(high.id)
    assert capped.task(low.id).status == Status.PENDING
    capped.sampler.check()


def test_a_failed_workspace_is_stopped_so_it_holds_no_slot(capped: Harness) -> None:
    failing = capped.create("doomed")
    capped.wait_idle(failing.id)
    waiting = capped.create("waiting")
    capped.backend.die(failing.id, exit_code=1)
    # it died by itself; with a limit an errored workspace is stopped too, and the
    # waiting task gets the slot
    failed = capped.wait_status(failing.id, Status.ERROR)
    assert "exited with code 1" in failed.message
    capped.wait_idle(waiting.id)
    assert any("Done: doomed" in line for line in capped.output(failing.id))  # logs kept
    capped.sampler.check()


def test_a_failing_task_never_runs_beside_the_one_taking_its_slot(capped: Harness) -> None:
    capped.backend.stop_delay = 0.5  # a workspace slow to shut down (docker stop's grace)
    task = capped.create("hi")
    capped.wait_idle(task.id)
    waiting = capped.create("next")
    capped.engine.send(task.id, "/exit 4")
    capped.wait_status(task.id, Status.ERROR)
    capped.wait_idle(waiting.id)
    wait_until(lambda: not capped.backend.observe(task.id).running, 30, "the failed one stops")
    assert capped.backend.observe(task.id).exists  # stopped, its disk kept for inspection
    capped.sampler.check()


def test_prompts_sent_to_a_waiting_task_reach_the_agent_in_order(capped: Harness) -> None:
    first = capped.create("first")
    capped.wait_idle(first.id)
    waiting = capped.create("start")
    sent = [f"/write f{i}.txt {i}" for i in range(8)]
    # sent within one millisecond (made certain by holding the store's clock still)
    with pytest.MonkeyPatch.context() as clock:
        now = records.utcnow()
        clock.setattr(records, "utcnow", lambda: now)
        for text in sent:
            capped.engine.send(waiting.id, text)
    capped.engine.delete(first.id)
    capped.wait_task(
        waiting.id,
        lambda t: (
            t.state == "idle" and all(p["state"] == "taken" for p in capped.store.prompts(t.id))
        ),
        "every prompt taken",
        timeout=20,
    )
    got = [e["content"] for e in capped.store.logs(waiting.id) if e["type"] == "input"]
    assert sorted(got) == sorted(["start", *sent])  # none lost, none twice
    assert got == ["start", *sent]
