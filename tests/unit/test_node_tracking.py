"""A backend with nodes (swarm): the engine records where a workspace is placed, and a
workspace whose node goes away turns its task to error naming the node (fast tier: the
fake backend, told what a cluster would say)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from provisioner.backends.base import Observed
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake  # noqa: F401


def _on_node(h: Harness, monkeypatch: pytest.MonkeyPatch, lost: Callable[[], str]) -> None:
    """The fake backend's observations, as a cluster backend placing everything on n7."""
    real = h.backend.observe

    def observe(task_id: str) -> Observed:
        seen = dataclasses.replace(real(task_id), node="n7")
        why = lost()
        if why and seen.exists:
            return dataclasses.replace(seen, running=False, endpoint=None, lost=why)
        return seen

    monkeypatch.setattr(h.backend, "observe", observe)


def test_the_node_is_recorded_and_a_lost_node_errors_the_task_naming_it(
    fake: Harness,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = {"why": ""}
    _on_node(fake, monkeypatch, lambda: lost["why"])
    task = fake.create("hello")
    fake.wait_idle(task.id)
    assert fake.task(task.id).node == "n7"
    events = [e for e in fake.store.events(task.id) if e["kind"] == "node"]
    assert [(e["to_value"], e["actor"]) for e in events] == [("n7", "engine")]

    lost["why"] = "node n7 is drained"
    fake.backend.stop(task.id)  # the node's container ends: the bridge goes away
    failed = fake.wait_status(task.id, Status.ERROR)
    assert "workspace stopped: node n7 is drained" in failed.message

    lost["why"] = ""  # the node is back: a resume starts it there again
    fake.engine.resume(task.id)
    fake.wait_idle(task.id)
    # recorded once: the node did not change
    assert len([e for e in fake.store.events(task.id) if e["kind"] == "node"]) == 1


def _drained(h: Harness, monkeypatch: pytest.MonkeyPatch, drained: dict[str, bool]) -> None:
    """As _on_node, with n7 drained while drained["on"]: the node is up, Swarm stopped
    its workspaces on purpose."""
    real = h.backend.observe

    def observe(task_id: str) -> Observed:
        seen = dataclasses.replace(real(task_id), node="n7")
        if drained["on"] and seen.exists:
            why = "node n7 is drained"
            return dataclasses.replace(seen, running=False, endpoint=None, lost=why, drained=True)
        return seen

    monkeypatch.setattr(h.backend, "observe", observe)


def test_a_drained_node_pauses_the_tasks_of_templates_that_ask_and_errors_the_rest(
    fake: Harness,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drained = {"on": False}
    _drained(fake, monkeypatch, drained)
    name = fake.add_scripted_variant("drain-pauses", workspace={"placement": {"on_drain": "pause"}})
    pausing = fake.create("keep me", template=name)
    erring = fake.create("fail me")  # the default: error, as before the option
    fake.wait_idle(pausing.id)
    fake.wait_idle(erring.id)
    assert fake.task(pausing.id).policy["on_drain"] == "pause"  # pinned in the task

    drained["on"] = True
    for task in (pausing, erring):
        fake.backend.stop(task.id)  # Swarm stops the drained node's containers
    paused = fake.wait_status(pausing.id, Status.PAUSED)
    assert "node n7 is drained" in paused.message and "resume it" in paused.message
    failed = fake.wait_status(erring.id, Status.ERROR)
    assert "workspace stopped: node n7 is drained" in failed.message
    moves = [
        (e["from_value"], e["to_value"], e["actor"])
        for e in fake.store.events(pausing.id)
        if e["kind"] == "status"
    ]
    assert moves[-1] == ("active", "paused", "engine")
    assert ("active", "error") not in [m[:2] for m in moves]  # paused, never errored

    drained["on"] = False  # the node is active again: resumed there, its session kept
    fake.engine.resume(pausing.id)
    fake.wait_idle(pausing.id)
    fake.engine.send(pausing.id, "after the drain")
    fake.wait_output(pausing.id, "Done: after the drain")
    resumed = [line for line in fake.output(pausing.id) if line.startswith("Resumed")]
    assert resumed and "previous context: 0 inputs" not in resumed[-1], resumed
