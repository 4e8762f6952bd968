"""Two engines on one database (two servers sharing it) keep the queue's order and never
admit a task twice: on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from provisioner.lifecycle import ErrorClass, Status
from provisioner.model import QueueFields
from provisioner.queueing import parse_completion
from tests.fake_engine import bridge_cache, harness_at
from tests.polling import wait_until
from tests.postgres import postgres_cluster, store_url

__all__ = ["bridge_cache", "postgres_cluster", "store_url"]


def test_priority_order_holds_across_two_engines(
    tmp_path: Path, bridge_cache: Path, store_url: str
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url, max_workspaces=1) as h:
        second = h.new_engine(max_workspaces=1)
        second.start()
        try:
            holder = h.create("holds the slot")
            h.wait_idle(holder.id)
            # created through both engines, as through two servers
            made = {
                prio: (h.engine if i % 2 else second).create_task(
                    template="scripted",
                    preset=None,
                    prompt=f"priority {prio}",
                    parameters={"work_seconds": 0.05},
                    name=f"p{prio}",
                    owner="admin",
                    queue=QueueFields(priority=prio),
                )
                for i, prio in enumerate((10, 90, 50))
            }
            order: list[int] = []
            running = holder
            for _ in range(3):
                h.engine.complete(running.id, parse_completion({"outcome": "SUCCESS"}))
                started = wait_until(
                    lambda: next(
                        (
                            (p, t)
                            for p, t in made.items()
                            if p not in order and h.task(t.id).status != Status.PENDING
                        ),
                        None,
                    ),
                    20,
                    "the next task to start",
                )
                order.append(started[0])
                running = started[1]
                h.wait_idle(running.id)
            assert order == [90, 50, 10]
            for task in made.values():
                claims = [
                    e
                    for e in h.store.events(task.id)
                    if e["kind"] == "status" and e["to_value"] == "initializing"
                ]
                assert len(claims) == 1, f"{task.name} admitted {len(claims)} times"
                assert h.backend.starts(task.id) == 1
        finally:
            second.stop()


def test_a_stop_on_purpose_by_one_engine_is_not_a_death_to_the_other(
    tmp_path: Path, bridge_cache: Path
) -> None:
    # The other engine sees the workspace go down while the pausing (or completing)
    # engine stops it: the stopping mark in the store tells it not to fail the task.
    with harness_at(tmp_path / "home", bridge_cache) as h:
        second = h.new_engine()  # not started: driven by hand
        task = h.create("pause me")
        h.wait_idle(task.id)
        # what a pause does first, held where the pause holds it
        with h.engine._lock_for(h.engine._task_locks, task.id):
            h.engine._stop_follower(task.id, wait=False)
            h.engine.mark_stopping(task.id)
            h.backend.stop(task.id)
            second.workspace_died(task.id)
            second.fail_active(task.id, "agent exited", ErrorClass.PERMANENT, stop=True)
            assert h.task(task.id).status == Status.ACTIVE
        assert h.engine.pause(task.id).status == Status.PAUSED
        # without the mark the same sight is a death
        other = h.create("dies")
        h.wait_idle(other.id)
        h.backend.stop(other.id)
        second.workspace_died(other.id)
        h.wait_status(other.id, Status.ERROR)
