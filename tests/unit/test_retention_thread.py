"""Retention keeps a finished task's branch (git, up to minutes) and then removes its
workspace on the sweeper's own thread, never in the reconcile pass (fast tier: a real
engine on the fake backend). The keep is held with a gate around the engine's keep call:
what is under test is the engine's scheduling, not git."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from provisioner import retention as rules
from provisioner.engine.kept import KeptBundles
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.queueing import parse_completion
from provisioner.retention import removed, retry_keep_in
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import wait_until

__all__ = ["bridge_cache"]

HOLD_S = 30.0  # a gate never held longer than this, whatever the test does


@dataclass
class Gate:
    """Stands in for GitWork.keep_before_removal: each call waits until opened, then
    answers `result` (True: kept, the workspace may go)."""

    h: Harness
    result: bool = True
    opened: threading.Event = field(default_factory=threading.Event)
    calls: list[str] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    at_once: int = 0
    most_at_once: int = 0
    present_at_end: list[bool] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, task: Task, kept: KeptBundles, *, actor: str) -> bool:
        with self._lock:
            self.calls.append(task.id)
            self.threads.add(threading.current_thread().name)
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            assert self.opened.wait(HOLD_S), "the test never opened the gate"
            self.present_at_end.append(task.id in self.h.backend.task_ids())
            return self.result
        finally:
            with self._lock:
                self.at_once -= 1

    def entered(self, count: int = 1) -> None:
        wait_until(lambda: len(self.calls) >= count, 15, f"{count} keep call(s)")


@pytest.fixture
def h(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache) as harness:
        harness.add_scripted_variant("brief", lifecycle={"retention": "1s"})
        yield harness


def _gated(h: Harness, **kwargs: Any) -> Gate:
    gate = Gate(h, **kwargs)
    h.engine.gitwork.keep_before_removal = gate  # type: ignore[method-assign]
    return gate


def _finished(h: Harness, name: str) -> Task:
    """A task of the `brief` template (retention 1s), idle, then completed, with a base
    commit so that retention keeps its branch first."""
    task = h.create("/write out.txt work", name=name, template="brief")
    h.wait_idle(task.id)
    h.store.update(task.id, Status.ACTIVE, actor="test", base_commit="a" * 40)
    h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    return task


def test_retry_rule_is_bounded() -> None:
    assert retry_keep_in(1) == rules.KEEP_RETRY_S
    assert retry_keep_in(rules.KEEP_TRIES - 1) == rules.KEEP_RETRY_S * (rules.KEEP_TRIES - 1)
    assert retry_keep_in(rules.KEEP_TRIES) is None and retry_keep_in(99) is None
    assert retry_keep_in(0) == rules.KEEP_RETRY_S  # never "at once" in a loop


def test_a_pass_admits_and_starts_a_task_while_a_keep_is_held(h: Harness) -> None:
    gate = _gated(h)
    first = _finished(h, "first")
    gate.entered()
    # the keep runs on retention's thread, not the engine's reconcile loop
    assert gate.threads == {"retention"}
    # meanwhile the pass goes on: a new task is admitted and reaches active
    newcomer = h.create("/write new.txt hi", name="newcomer")
    h.wait_idle(newcomer.id)
    h.wait_output(newcomer.id, "Wrote new.txt")
    # another task finishing is swept while the first is held; the first is not handed
    # over again (one keep of a task at a time), the second waits its turn
    second = _finished(h, "second")
    wait_until(lambda: second.id in h.engine.retention_sweeper.busy(), 15, "second handed over")
    assert first.id in h.backend.task_ids() and not removed(h.task(first.id))
    gate.opened.set()
    for task in (first, second):
        h.wait_task(task.id, removed, "the workspace removed by retention")
        assert task.id not in h.backend.task_ids()
    # each kept once, in order, one at a time, each workspace still there as its keep ended
    assert gate.calls == [first.id, second.id]
    assert gate.most_at_once == 1 and gate.present_at_end == [True, True]
    for task in (first, second):
        events = [e["kind"] for e in h.store.events(task.id)]
        assert events.count("retention") == 1
    assert h.task(newcomer.id).status == Status.ACTIVE


def test_a_delete_during_a_keep_waits_for_it_and_does_not_keep_again(h: Harness) -> None:
    gate = _gated(h)
    kept_by_delete: list[str] = []
    h.engine.gitwork.keep = lambda t, kept, actor: kept_by_delete.append(t.id)  # type: ignore[method-assign,assignment,return-value]
    task = _finished(h, "deleted")
    gate.entered()
    deleted = threading.Event()

    def delete() -> None:
        h.engine.delete(task.id)
        deleted.set()

    threading.Thread(target=delete, daemon=True).start()
    # the delete holds until the keep under way ends (the task's lock); the short wait
    # only gives it the chance to go wrong, it cannot fail a correct engine
    assert not deleted.wait(0.3)
    assert task.id in h.backend.task_ids()
    gate.opened.set()
    wait_until(deleted.is_set, 15, "the delete to end")
    assert task.id not in h.backend.task_ids()
    # kept once, by retention, the workspace there until then; the delete found it
    # removed and kept nothing again
    assert gate.calls == [task.id] and gate.present_at_end == [True]
    assert kept_by_delete == []


def test_a_server_stopped_mid_keep_leaves_the_workspace_for_the_next(h: Harness) -> None:
    gate = _gated(h)
    task = _finished(h, "interrupted")
    gate.entered()
    h.engine.stop()  # returns at once: its loop never waits on the keep
    gate.opened.set()
    wait_until(lambda: not h.engine.retention_sweeper.busy(), 15, "the keep to end")
    # kept, but the server stopped: the workspace is not removed
    assert task.id in h.backend.task_ids() and not removed(h.task(task.id))
    assert "retention" not in [e["kind"] for e in h.store.events(task.id)]
    # the next server keeps it again, then removes it
    h.engine = h.new_engine()
    again = _gated(h)
    again.opened.set()
    h.engine.start()
    h.wait_task(task.id, removed, "the workspace removed by the next server")
    assert again.calls == [task.id] and again.present_at_end == [True]
    assert task.id not in h.backend.task_ids()


def test_a_failed_keep_leaves_the_workspace_until_the_last_try(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules, "KEEP_RETRY_S", 0.2)
    gate = _gated(h, result=False)
    gate.opened.set()
    task = _finished(h, "unkeepable")
    gate.entered()
    wait_until(lambda: not h.engine.retention_sweeper.busy(), 15, "the first keep to end")
    assert task.id in h.backend.task_ids() and not removed(h.task(task.id))
    notes = [line for line in h.store.logs(task.id) if "could not be kept" in line["content"]]
    assert notes and "tries again" in notes[0]["content"]
    # tried again later; after the last try the workspace goes all the same
    h.wait_task(task.id, removed, "the workspace removed after the last try")
    assert gate.calls == [task.id] * rules.KEEP_TRIES
    assert gate.present_at_end == [True] * rules.KEEP_TRIES
