"""Crash recovery on the fake backend: workspaces own the agents, so a new Engine on the
same store and backend picks up what runs and follows it again, provisioning nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake, harness_at, wait_until

__all__ = ["bridge_cache", "fake"]

PROVISIONING = ("ensure_image", "create", "start")


def restart_engine(h: Harness) -> int:
    """Stop the engine (as a crash would leave the workspaces) and start a new one on the
    same store and backend; returns where the backend's call log stood."""
    h.engine.stop()
    mark = len(h.backend.calls)
    h.engine = h.new_engine()
    h.engine.start()
    return mark


def assert_transcript_exact(h: Harness, task_id: str) -> None:
    seqs = [e["seq"] for e in h.store.logs(task_id) if e["seq"] is not None]
    assert seqs == list(range(1, len(seqs) + 1)), "transcript has gaps or duplicates"


def test_a_new_engine_follows_running_workspaces_without_provisioning(fake: Harness) -> None:
    task = fake.create("before")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/flood 2000")  # output keeps coming while no engine runs
    mark = restart_engine(fake)
    out = fake.wait_output(task.id, "flood line 2000")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "after the restart")
    out = fake.wait_output(task.id, "Done: after the restart")
    assert [line for line in out if line.startswith("flood line ")] == [
        f"flood line {i}" for i in range(1, 2001)
    ]
    assert out.count("Working on: before") == 1
    assert_transcript_exact(fake, task.id)
    after = [c for c, t in fake.backend.calls[mark:] if t == task.id]
    assert not set(after) & set(PROVISIONING), after  # followed, not provisioned again
    assert fake.backend.starts(task.id) == 1
    statuses = [e["to_value"] for e in fake.store.events(task.id) if e["kind"] == "status"]
    assert statuses == ["pending", "initializing", "active"]


def test_a_workspace_that_died_while_no_engine_ran_is_an_error(fake: Harness) -> None:
    task = fake.create("hi")
    fake.wait_idle(task.id)
    fake.engine.stop()
    fake.backend.die(task.id, exit_code=2)
    restart_engine(fake)
    failed = fake.wait_status(task.id, Status.ERROR)
    assert "workspace stopped: the container exited with code 2" in failed.message
    assert "Done: hi" in failed.message  # the last lines come from the stored logs


def test_a_workspace_whose_task_is_gone_is_removed_on_restart(fake: Harness) -> None:
    task = fake.create("orphan")
    fake.wait_idle(task.id)
    fake.engine.stop()
    assert fake.store.delete(task.id)  # the record went, the removal was cut short
    restart_engine(fake)
    wait_until(lambda: task.id not in fake.backend.task_ids(), 30, "the orphan's removal")
    assert not fake.backend.observe(task.id).exists


def test_two_engines_on_one_store_never_both_act(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        second = h.new_engine()
        second.start()
        try:
            ids = [
                (h.engine if i % 2 == 0 else second)
                .create_task(
                    template="scripted",
                    preset=None,
                    prompt=f"race {i}",
                    parameters={"work_seconds": 0.1},
                    name=None,
                    owner="tester",
                )
                .id
                for i in range(4)
            ]
            for task_id in ids:
                h.wait_idle(task_id)
            for task_id in ids:
                calls = [c for c, t in h.backend.calls if t == task_id]
                assert calls.count("create") == 1 and h.backend.starts(task_id) == 1
                claims = [
                    e
                    for e in h.store.events(task_id)
                    if e["kind"] == "status" and e["to_value"] == "initializing"
                ]
                assert len(claims) == 1, claims
                assert h.output(task_id).count(f"Done: race {ids.index(task_id)}") == 1
        finally:
            second.stop()


def test_the_sweep_spares_a_task_created_while_it_lists_workspaces(fake: Harness) -> None:
    # Another engine creates and provisions a task while this one lists the workspaces:
    # the sweep must not take it for an orphan (it did when it read the tasks first).
    task = fake.create("made meanwhile")
    fake.wait_idle(task.id)
    fake.engine.stop()
    real = fake.backend.task_ids
    record = fake.store.get(task.id)
    fake.store.delete(task.id)  # not stored yet when the sweep begins...

    def listing_while_it_is_created() -> set[str]:
        fake.store.create_task(record, actor="other-engine")  # ...stored while it lists
        return real()

    fake.backend.task_ids = listing_while_it_is_created  # type: ignore[method-assign]
    fake.engine._sweep_orphans()
    assert fake.backend.observe(task.id).exists, "a live task's workspace was removed"


def test_a_task_deleted_while_it_starts_leaves_no_workspace(fake: Harness) -> None:
    # The delete removes the workspace while the start is about to create it. A start
    # that then finds the task cancelled (not yet deleted) leaves what it made behind for
    # the orphan sweep; so the delete waits for the start to end and removes again.
    entered, release, created = threading.Event(), threading.Event(), threading.Event()
    create = fake.backend.create

    def held_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        try:
            return create(*args, **kwargs)
        finally:
            created.set()

    fake.backend.create = held_create  # type: ignore[method-assign]
    task = fake.create("deleted while starting")
    assert entered.wait(30), "the start never reached its create step"
    threading.Timer(0.3, release.set).start()
    fake.engine.delete(task.id)
    assert created.is_set(), "the delete returned while the start was still under way"
    assert fake.backend.task_ids() == set()
