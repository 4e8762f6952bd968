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
