"""The follower's poll sent ahead: its reply or its error reach the follower's thread."""

from __future__ import annotations

import threading

import pytest

from provisioner.bridge.client import BridgeUnreachable
from provisioner.engine.follower import _Poll


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
