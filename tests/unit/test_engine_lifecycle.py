"""The engine's task lifecycle on the fake backend (real store, catalog, bridge and agent)."""

from __future__ import annotations

from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake

__all__ = ["bridge_cache", "fake"]


def test_create_reconciles_to_active_idle_through_the_phases(fake: Harness) -> None:
    task = fake.create("hello world")
    assert task.status == Status.PENDING
    done = fake.wait_idle(task.id)
    out = fake.wait_output(task.id, "Done: hello world")
    assert out.count("Working on: hello world") == 1
    assert [p["phase"] for p in done.phases][:3] == ["image", "create", "start"]
    print(done.phases)
