"""The follower hands the agent's reports (dockyard-task) to the engine: in order, each
once, checked again, with its cursor kept in the store across restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from provisioner.engine import follower
from provisioner.engine.follower import report_for_engine
from provisioner.lifecycle import Status
from provisioner.store.store import Store, sqlite_url
from tests.polling import wait_until
from tests.stored import stored_task


def report(seq: int, kind: str = "progress", **fields: Any) -> dict[str, Any]:
    fields = fields or {"note": f"note {seq}"}
    return {
        "seq": seq,
        "id": f"{seq:032x}",
        "time": "2026-01-01T00:00:00.000Z",
        "kind": kind,
        **fields,
    }


class ReportingBridge:
    """A bridge client whose log replies carry reports after the follower's cursor."""

    def __init__(self, reports: list[dict[str, Any]], last_seq: int | None = None) -> None:
        self.reports = reports
        self.last_seq = last_seq
        self.asked: list[int | None] = []

    def log(self, after: int, reports_after: int | None = None, **_: object) -> dict[str, Any]:
        self.asked.append(reports_after)
        time.sleep(0.01)
        start = reports_after or 0
        page = [r for r in self.reports if r["seq"] > start][:2]  # a page at a time
        newest = (
            self.last_seq
            if self.last_seq is not None
            else (self.reports[-1]["seq"] if self.reports else 0)
        )
        return {
            "entries": [],
            "status": {"dockyard": {"state": "idle"}},
            "reports": page,
            "reports_last_seq": newest,
        }

    def prompts(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    yield store
    store.close()


def follow(
    store: Store, task_id: str, bridge: ReportingBridge, until: int, applied: list[dict[str, Any]]
) -> follower.Follower:
    """Run a follower on `bridge` until `until` reports were applied (or it ends)."""

    def apply_report(task_id_: str, report: dict[str, Any]) -> bool:
        assert task_id_ == task_id
        applied.append(report)
        return True

    running = SimpleNamespace(running=True, restarting=False, endpoint="http://x")
    engine = SimpleNamespace(
        store=store,
        backend=SimpleNamespace(observe=lambda _: running),
        deliver_prompts=lambda task, client: None,
        endpoints={},
        follower_done=lambda f: None,
        apply_report=apply_report,
    )
    thread = follower.Follower(engine, task_id)  # type: ignore[arg-type]
    thread._client = lambda: bridge  # type: ignore[method-assign,assignment,return-value]
    thread.start()
    wait_until(
        lambda: not thread.is_alive() or len(applied) >= until, what=f"{until} reports applied"
    )
    thread.ended_by_itself = not thread.is_alive()  # type: ignore[attr-defined]
    # it ends after its current poll, the cursor of what it applied stored: no sleep needed
    thread.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return thread


def test_reports_are_applied_in_order_once_and_remembered(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower, "POLL_WAIT_S", 0.01)
    task = stored_task(store, Status.ACTIVE, state="idle")
    assert store.report_seq(task.id) == 0
    bridge = ReportingBridge([report(1), report(2, "ask", question="Which database?"), report(3)])
    applied: list[dict[str, Any]] = []
    follow(store, task.id, bridge, 3, applied)
    assert applied == [
        {"id": f"{1:032x}", "kind": "progress", "note": "note 1"},
        {"id": f"{2:032x}", "kind": "ask", "question": "Which database?"},
        {"id": f"{3:032x}", "kind": "progress", "note": "note 3"},
    ]
    assert store.report_seq(task.id) == 3
    assert bridge.asked[0] == 0
    # a restarted follower (a server restart) reads on from the store's cursor
    bridge.reports.append(report(4, "usage", tokens_in=5, tokens_out=6))
    again: list[dict[str, Any]] = []
    follow(store, task.id, bridge, 1, again)
    assert again == [{"id": f"{4:032x}", "kind": "usage", "tokens_in": 5, "tokens_out": 6}]
    assert bridge.asked[-1] == 4


def test_a_complete_report_ends_the_follower(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follower, "POLL_WAIT_S", 0.01)
    task = stored_task(store, Status.ACTIVE, state="idle")
    reports = [report(1), report(2, "complete", outcome="SUCCESS", output="done"), report(3)]
    applied: list[dict[str, Any]] = []
    thread = follow(store, task.id, ReportingBridge(reports), 99, applied)
    assert [r["kind"] for r in applied] == ["progress", "complete"]
    assert applied[1] == {
        "id": f"{2:032x}",
        "kind": "complete",
        "outcome": "SUCCESS",
        "output": "done",
    }
    assert store.report_seq(task.id) == 2
    assert thread.ended_by_itself  # type: ignore[attr-defined]


def test_a_hostile_bridges_reports_are_checked_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bridge runs inside the workspace: what it hands over is checked as the agent's
    monkeypatch.setattr(follower, "POLL_WAIT_S", 0.01)
    task = stored_task(store, Status.ACTIVE, state="idle")
    reports = [
        report(1, note="x" * 5000),
        report(2, "complete", outcome="WON"),
        {**report(3), "task_id": "another-task"},
        {**report(4), "id": "../../etc"},
        report(5, note="fine"),
    ]
    applied: list[dict[str, Any]] = []
    follow(store, task.id, ReportingBridge(reports), 1, applied)
    assert applied == [{"id": f"{5:032x}", "kind": "progress", "note": "fine"}]
    assert store.report_seq(task.id) == 5


def test_a_bridge_that_numbers_afresh_is_read_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower, "POLL_WAIT_S", 0.01)
    task = stored_task(store, Status.ACTIVE, state="idle")
    store.set_report_seq(task.id, 7)
    store.set_report_seq(task.id, 5)  # never back, but to 0
    assert store.report_seq(task.id) == 7
    # its state dir was lost: its reports start at 1 again (new ids)
    bridge = ReportingBridge([report(1, note="after the loss")])
    applied: list[dict[str, Any]] = []
    follow(store, task.id, bridge, 1, applied)
    assert applied == [{"id": f"{1:032x}", "kind": "progress", "note": "after the loss"}]
    assert bridge.asked[:2] == [7, 0]
    assert store.report_seq(task.id) == 1


def test_report_for_engine() -> None:
    assert report_for_engine("x") is None
    assert report_for_engine({"seq": 1, "kind": "progress", "note": "n"}) is None  # no id
    assert report_for_engine(report(1, "usage", tokens_in=1, tokens_out=2, cost_usd=0.5)) == {
        "id": f"{1:032x}",
        "kind": "usage",
        "tokens_in": 1,
        "tokens_out": 2,
        "cost_usd": 0.5,
    }
