"""The state machine's legal and illegal moves."""

from __future__ import annotations

import pytest

from provisioner.errors import IllegalTransition
from provisioner.lifecycle import EXPIRE, TERMINAL, Status, can_transition, check_transition


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (Status.PENDING, Status.INITIALIZING),
        (Status.INITIALIZING, Status.ACTIVE),
        (Status.INITIALIZING, Status.ERROR),
        (Status.ACTIVE, Status.PAUSED),
        (Status.ACTIVE, Status.ERROR),
        (Status.PAUSED, Status.INITIALIZING),
        (Status.ERROR, Status.INITIALIZING),
        (Status.ACTIVE, Status.COMPLETED),
        (Status.BACKLOG, Status.PENDING),
        # queue-only tasks: claimed by a worker, started, or ended from the claim
        (Status.PENDING, Status.CLAIMED),
        (Status.CLAIMED, Status.ACTIVE),
        (Status.CLAIMED, Status.PENDING),
        (Status.CLAIMED, Status.COMPLETED),
        (Status.CLAIMED, Status.FAILED),
        (Status.CLAIMED, Status.CANCELLED),
        # offers: accepted (claimed), rejected or run out (pending)
        (Status.PENDING, Status.OFFERED),
        (Status.OFFERED, Status.CLAIMED),
        (Status.OFFERED, Status.PENDING),
        (Status.OFFERED, Status.CANCELLED),
    ],
)
def test_legal_moves(src: Status, dst: Status) -> None:
    check_transition(src, dst)
    assert can_transition(src, dst)


@pytest.mark.parametrize(
    ("src", "dst", "fragment"),
    [
        (Status.PAUSED, Status.PAUSED, "already paused"),
        (Status.PENDING, Status.PAUSED, "has not started yet"),
        (Status.ACTIVE, Status.INITIALIZING, "already running"),
        (Status.COMPLETED, Status.INITIALIZING, r"has ended \(completed\)"),
        (Status.PENDING, Status.ACTIVE, "a pending task cannot"),
        (Status.PENDING, Status.COMPLETED, "nobody has claimed or started it"),
        (Status.CLAIMED, Status.INITIALIZING, "never provisioned"),
        (Status.CLAIMED, Status.PAUSED, "only a workspace can be paused"),
        (Status.BACKLOG, Status.CLAIMED, "a backlog task cannot"),
        (Status.OFFERED, Status.COMPLETED, "must accept it first"),
        (Status.OFFERED, Status.ACTIVE, "must accept it first"),
    ],
)
def test_illegal_moves_say_why(src: Status, dst: Status, fragment: str) -> None:
    with pytest.raises(IllegalTransition, match=fragment):
        check_transition(src, dst)


def test_terminal_statuses_go_nowhere_but_a_failed_one_may_be_retried() -> None:
    for src in TERMINAL:
        for dst in Status:
            assert not can_transition(src, dst)
    # a retry (`task retry`, a retry policy) queues a failed task again, and only that;
    # completed and cancelled stay final whatever the action
    assert can_transition(Status.FAILED, Status.PENDING, action="retry")
    check_transition(Status.FAILED, Status.PENDING, action="retry")
    with pytest.raises(IllegalTransition, match="dockyard task retry"):
        check_transition(Status.FAILED, Status.PENDING)
    for src in (Status.COMPLETED, Status.CANCELLED):
        for dst in Status:
            assert not can_transition(src, dst, action="retry")
    assert not can_transition(Status.FAILED, Status.ACTIVE, action="retry")


def test_every_live_status_can_be_cancelled() -> None:
    for src in Status:
        if src not in TERMINAL:
            assert can_transition(src, Status.CANCELLED), src


def test_phases_are_timed_one_after_another() -> None:
    from datetime import UTC, datetime, timedelta

    from provisioner.lifecycle import advance_phases

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    phases = advance_phases([], "image", t0)
    phases = advance_phases(phases, "create", t0 + timedelta(seconds=2.5))
    phases = advance_phases(phases, None, t0 + timedelta(seconds=3))
    assert phases == [
        {"phase": "image", "started_at": "2026-01-01T00:00:00.000Z", "duration_s": 2.5},
        {"phase": "create", "started_at": "2026-01-01T00:00:02.500Z", "duration_s": 0.5},
    ]


def test_only_an_expired_lease_takes_an_active_task_back_to_pending() -> None:
    assert not can_transition(Status.ACTIVE, Status.PENDING)
    assert can_transition(Status.ACTIVE, Status.PENDING, action=EXPIRE)
    # expiry adds that one move and no other (a final status stays final)
    added = {
        (src, dst)
        for src in Status
        for dst in Status
        if can_transition(src, dst, action=EXPIRE) and not can_transition(src, dst)
    }
    assert added == {(Status.ACTIVE, Status.PENDING)}
