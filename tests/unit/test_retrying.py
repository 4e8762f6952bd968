"""The pure retry decision: which errors, how many times, how long to wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from provisioner.lifecycle import ErrorClass, Status
from provisioner.retrying import attempt_line, retry_prompt, should_retry, stamp
from tests.stored import new_task

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("klass", ["TRANSIENT", "TIMEOUT", ErrorClass.TIMEOUT, "transient"])
def test_transient_and_timeout_are_retried_with_backoff(klass: object) -> None:
    task = new_task(Status.ERROR, retries=3, attempt=1)
    assert should_retry(task, klass, NOW) == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    "klass", ["PERMANENT", "POLICY", "DEPENDENCY", "UNKNOWN", None, "", "nonsense", 42]
)
def test_other_errors_are_never_retried(klass: object) -> None:
    task = new_task(Status.ERROR, retries=10, attempt=1)
    assert should_retry(task, klass, NOW) is None


def test_retries_run_out_and_the_wait_doubles_to_a_cap() -> None:
    waits = []
    for attempt in range(1, 12):
        task = new_task(Status.ERROR, retries=10, attempt=attempt)
        when = should_retry(task, "TRANSIENT", NOW)
        waits.append(None if when is None else (when - NOW).total_seconds())
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300, None]
    assert should_retry(new_task(Status.ERROR, retries=0), "TRANSIENT", NOW) is None


def test_words() -> None:
    task = new_task(Status.ERROR, retries=2)
    assert attempt_line(task, 2) == "attempt 2 of 3"
    assert attempt_line(task, 4) == "attempt 4"  # past the allowance: a retry by hand
    assert stamp(NOW) == "2026-11-30T12:00:00.000Z"
    # what the agent is told quotes its error, but never a key for its terminal
    told = retry_prompt(2, "TRANSIENT: rate limited\x1b[2J\x03")
    assert "attempt 2" in told and "rate limited" in told
    assert all(ch.isprintable() for ch in told)
