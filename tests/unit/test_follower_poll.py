"""The follower's poll sent ahead: its reply or its error reach the follower's thread."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from provisioner.bridge.client import BridgeUnreachable
from provisioner.engine import follower
from provisioner.engine.follower import _Poll
from provisioner.lifecycle import Status
from provisioner.model import utcnow
from provisioner.store.store import Store, sqlite_url
from tests.polling import wait_until
from tests.stored import stored_task


def test_poll_ahead_runs_in_its_own_thread_and_hands_the_reply_over() -> None:
    seen: list[str] = []

    def call() -> dict[str, object]:
        seen.append(threading.current_thread().name)
        return {"entries": [{"seq": 1}]}

    poll = _Poll(call, name="follow-x-poll")
    assert poll.result() == {"entries": [{"seq": 1}]}
    assert seen == ["follow-x-poll"]


def test_poll_ahead_raises_its_error_in_the_caller() -> None:
    def call() -> dict[str, object]:
        raise BridgeUnreachable("bridge at http://x unreachable")

    with pytest.raises(BridgeUnreachable, match="unreachable"):
        _Poll(call, name="follow-x-poll").result()


class BlinkingBridge:
    """A bridge client whose poll sent ahead fails once (a connection reset mid-flood)."""

    def __init__(self, calls: list[int]) -> None:
        self.calls = calls

    def log(self, after: int, **_: object) -> dict[str, Any]:
        self.calls.append(after)
        if len(self.calls) == 2:
            raise BridgeUnreachable("bridge at http://x unreachable: connection reset")
        seq = after + 1
        entry = {"seq": seq, "type": "output", "content": f"line {seq}", "time": utcnow()}
        return {"entries": [entry], "status": {"dockyard": {"state": "working"}}}

    def prompts(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def test_a_failed_poll_ahead_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the follower's own loop against a real store; the bridge fails once mid-flood
    monkeypatch.setattr(follower, "POLL_WAIT_S", 0.01)
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    task = stored_task(store, Status.ACTIVE, state="working")
    calls: list[int] = []
    running = SimpleNamespace(running=True, restarting=False, endpoint="http://x")
    engine = SimpleNamespace(
        store=store,
        backend=SimpleNamespace(observe=lambda task_id: running),
        deliver_prompts=lambda task, client: None,
        endpoints={},
        follower_done=lambda f: None,
    )
    follow = follower.Follower(engine, task.id)  # type: ignore[arg-type]
    follow._client = lambda: BlinkingBridge(calls)  # type: ignore[method-assign]
    follow.start()
    try:
        wait_until(lambda: len(store.logs(task.id)) >= 5, what="five lines stored")
    finally:
        follow.stop()
        follow.join(timeout=30)
    # it polled again after the failure, from what it had stored, and lost nothing
    seqs = [row["seq"] for row in store.logs(task.id)]
    assert seqs[:5] == [1, 2, 3, 4, 5], (seqs, calls)
    store.close()


def test_the_first_client_goes_to_the_endpoint_given_and_later_ones_ask_the_backend(
    tmp_path: Path,
) -> None:
    # the provisioner hands over the address it just reached: the follower's first client
    # needs no Docker call; once that one is dropped (a failed poll), the backend decides
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    task = stored_task(store, Status.ACTIVE, state="working")
    looked: list[str] = []

    def observe(task_id: str) -> SimpleNamespace:
        looked.append(task_id)
        return SimpleNamespace(running=True, restarting=False, endpoint="http://10.0.0.9:7777")

    engine = SimpleNamespace(store=store, backend=SimpleNamespace(observe=observe))
    follow = follower.Follower(engine, task.id, "http://10.0.0.8:7777")  # type: ignore[arg-type]
    first = follow._client()
    assert first is not None and first.base_url == "http://10.0.0.8:7777"
    assert looked == []
    second = follow._client()
    assert second is not None and second.base_url == "http://10.0.0.9:7777"
    assert looked == [task.id]
    first.close()
    second.close()
    store.close()
