"""Schedules fired by real engines on the fake backend, with a test clock: exactly once per
fire time across two engines sharing a database (SQLite and PostgreSQL), catch-up after a
restart, a fire time a dead server left half made, and overlapping runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from provisioner.engine.engine import Engine
from provisioner.lifecycle import Status
from provisioner.model import parse_time
from provisioner.scheduling import iso, task_name
from provisioner.store.store import Store
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import wait_until
from tests.postgres import postgres_cluster, store_url

__all__ = ["bridge_cache", "postgres_cluster", "store_url"]


class Clock:
    """The schedulers' now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_schedule(store: Store, **changes: Any) -> dict[str, Any]:
    values = {
        "owner": "admin",
        "name": "tidy",
        "cron": "* * * * *",
        "timezone": "UTC",
        "template": "scripted",
        "preset": None,
        "parameters": dict(FAST),
        "target": None,
        "prompt": "tidy up",
        "catch_up": "once",
        "concurrency": "allow",
        "created_by": "user:admin",
        **changes,
    }
    return store.create_schedule(values)


def first_minute(schedule: dict[str, Any]) -> datetime:
    """The first whole minute after the schedule was made."""
    since = parse_time(schedule["since"])
    return since.replace(second=0, microsecond=0) + timedelta(minutes=1)


def made_by(store: Store, schedule: dict[str, Any]) -> list[dict[str, Any]]:
    return store.schedule_runs(schedule["id"])


def settled(store: Store, schedule: dict[str, Any], count: int) -> bool:
    """`count` fire times dealt with, each with its task."""
    fires = store.fires(schedule["id"])
    done = len(fires) == count and all(f["state"] == "started" for f in fires)
    return done and len(made_by(store, schedule)) == count


def run_together(engines: list[Engine]) -> None:
    """Every engine's scheduler pass at once, as servers on one database would."""
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def one(engine: Engine) -> None:
        start.wait()
        try:
            engine.scheduler.run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_engines_fire_each_time_exactly_once(
    tmp_path: Path, bridge_cache: Path, store_url: str
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url) as h:
        second = h.new_engine()
        second.start()
        try:
            schedule = make_schedule(h.store)
            minute = first_minute(schedule)
            clock = Clock(minute - timedelta(seconds=30))
            for engine in (h.engine, second):  # their own loops fire too, racing ours
                engine.scheduler.clock = clock
            run_together([h.engine, second])
            assert made_by(h.store, schedule) == []  # nothing is owed before 09:01
            for n in range(3):
                clock.now = minute + timedelta(minutes=n, seconds=1)
                run_together([h.engine, second])
                # the winner may be an engine's own loop, still making the task
                wait_until(lambda n=n: settled(h.store, schedule, n + 1), 15, f"fire time {n + 1}")
                run_together([h.engine, second])  # and again: still once
                assert len(made_by(h.store, schedule)) == n + 1
            runs = made_by(h.store, schedule)
            names = [r["name"] for r in runs]
            assert names == [task_name("tidy", minute + timedelta(minutes=n)) for n in range(3)]
            fires = h.store.fires(schedule["id"])
            assert [f["state"] for f in fires] == ["started"] * 3
            for run in runs:
                task = h.task(run["id"])
                assert task.source == "cron" and task.schedule_id == schedule["id"]
                assert task.created_by == "schedule:tidy"
                assert [e["kind"] for e in h.store.events(task.id)].count("schedule") == 1
                h.wait_idle(task.id)  # a real task: provisioned, its prompt taken
        finally:
            second.stop()


def test_catch_up_after_a_restart(tmp_path: Path, bridge_cache: Path, store_url: str) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url) as h:
        h.engine.stop()  # its loop would fire too: this server is driven by hand
        first = h.new_engine()
        once = make_schedule(h.store, name="once", catch_up="once")
        skip = make_schedule(h.store, name="skip", catch_up="skip")
        minute = first_minute(once)
        clock = Clock(minute + timedelta(seconds=1))
        first.scheduler.clock = clock
        first.scheduler.run()
        assert len(made_by(h.store, once)) == len(made_by(h.store, skip)) == 1
        first.stop()  # the server is down for three more fire times
        clock.now = minute + timedelta(minutes=3, seconds=30)
        restarted = h.new_engine()
        restarted.scheduler.clock = clock
        restarted.scheduler.run()
        restarted.scheduler.run()
        runs = made_by(h.store, once)
        assert len(runs) == 2  # the missed ones ran once, as the latest fire time
        assert runs[-1]["name"] == task_name("once", minute + timedelta(minutes=3))
        reasons = [e["reason"] for e in h.store.events(runs[-1]["id"]) if e["kind"] == "schedule"]
        assert "2 earlier fire time(s) missed" in reasons[0]
        assert len(made_by(h.store, skip)) == 1  # skip: none of them
        fires = h.store.fires(skip["id"])
        assert fires[0]["state"] == "skipped" and "catch_up is skip" in fires[0]["reason"]
        # back on time, both fire again
        clock.now = minute + timedelta(minutes=4, seconds=2)
        restarted.scheduler.run()
        clock.now = minute + timedelta(minutes=5, seconds=2)
        restarted.scheduler.run()
        assert len(made_by(h.store, once)) == 4 and len(made_by(h.store, skip)) == 3


def test_a_fire_time_a_dead_server_left_is_made_once(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        h.engine.stop()
        schedule = make_schedule(h.store)
        minute = first_minute(schedule)
        # a server claimed 09:01, then died before it made the task (its lease is out)
        assert h.store.claim_fire(schedule["id"], iso(minute), "claimed", "dead:1:x", -1, "")
        h.store.schedule_considered(schedule["id"], iso(minute))
        # another claimed 09:02 and made the task, then died before it said so
        second = minute + timedelta(minutes=1)
        h.store.claim_fire(schedule["id"], iso(second), "claimed", "dead:2:x", -1, "")
        h.store.schedule_considered(schedule["id"], iso(second))
        engine = h.new_engine()
        made = engine.create_task(
            template="scripted", preset=None, prompt="tidy up", parameters=dict(FAST),
            name=task_name("tidy", second), owner="admin",
        )  # fmt: skip
        engine.scheduler.clock = Clock(second + timedelta(seconds=5))
        engine.scheduler.run()
        runs = made_by(h.store, schedule)
        assert [r["name"] for r in runs] == [task_name("tidy", minute)]
        states = {f["fire_at"]: (f["state"], f["task_id"]) for f in h.store.fires(schedule["id"])}
        assert states[iso(minute)] == ("started", runs[0]["id"])
        assert states[iso(second)] == ("started", made.id)  # found by its name, not made again


def _overlap_harness(h: Harness, concurrency: str) -> tuple[Engine, Clock, dict[str, Any]]:
    h.engine.stop()  # nothing is admitted: each run stays pending, so still running
    engine = h.new_engine()
    schedule = make_schedule(h.store, name=concurrency, concurrency=concurrency)
    clock = Clock(first_minute(schedule) + timedelta(seconds=1))
    engine.scheduler.clock = clock
    return engine, clock, schedule


def test_overlapping_runs_are_skipped(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        engine, clock, schedule = _overlap_harness(h, "skip")
        engine.scheduler.run()
        clock.now += timedelta(minutes=1)
        engine.scheduler.run()
        assert len(made_by(h.store, schedule)) == 1
        fire = h.store.fires(schedule["id"])[0]
        assert fire["state"] == "skipped" and "still running" in fire["reason"]


def test_overlapping_runs_queue_one_behind(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        engine, clock, schedule = _overlap_harness(h, "queue")
        engine.scheduler.run()
        first = made_by(h.store, schedule)[0]
        for _ in range(2):  # one waits; the next is skipped, not piled up
            clock.now += timedelta(minutes=1)
            engine.scheduler.run()
        states = [f["state"] for f in h.store.fires(schedule["id"])]
        assert states == ["skipped", "queued", "started"]
        assert len(made_by(h.store, schedule)) == 1
        h.store.transition(first["id"], Status.PENDING, Status.CANCELLED, actor="user:admin")
        engine.scheduler.run()
        runs = made_by(h.store, schedule)
        assert len(runs) == 2
        assert [f["state"] for f in h.store.fires(schedule["id"])] == [
            "skipped",
            "started",
            "started",
        ]
        wait_until(lambda: h.store.queued_fire(schedule["id"]) is None, 30, "the queue emptied")


def test_a_removed_owners_schedule_makes_nothing(tmp_path: Path, bridge_cache: Path) -> None:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        h.engine.stop()  # its loop would fire too: driven by hand
        engine = h.new_engine()
        h.store.create_user("erin", "member")
        schedule = make_schedule(h.store, owner="erin")
        h.store.remove_user("erin")
        engine.scheduler.clock = Clock(first_minute(schedule) + timedelta(seconds=1))
        engine.scheduler.run()
        assert made_by(h.store, schedule) == []
        [fire] = h.store.fires(schedule["id"])
        assert fire["state"] == "failed" and "erin was removed" in fire["reason"]
