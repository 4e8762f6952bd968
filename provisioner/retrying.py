"""Retries: whether and when a failed attempt of a task is tried again. Pure, no I/O; the
engine's retry pass (engine/retries.py) and `task complete` act on what this decides.

A task allows `retries` automatic retries (its `--retries`, else its template's
`lifecycle.retries`), so at most `retries + 1` attempts. Only errors that may pass by
themselves are retried (RETRYABLE: TRANSIENT and TIMEOUT); a PERMANENT, POLICY,
DEPENDENCY or UNKNOWN error would only fail the same way again, or is not ours to judge.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from provisioner.lifecycle import RETRYABLE, ErrorClass
from provisioner.model import Task
from provisioner.queueing import retry_delay


def error_class_of(value: object) -> ErrorClass | None:
    """The error class a stored or reported value names, or None (unknown text included)."""
    if isinstance(value, ErrorClass):
        return value
    try:
        return ErrorClass(str(value).upper()) if value is not None else None
    except ValueError:
        return None


def should_retry(task: Task, error_class: object, now: datetime) -> datetime | None:
    """When the task's next attempt may start after this one failed with `error_class`,
    or None when it must not be retried automatically.

    Attempt n (1-based) failing waits retry_delay(n): 5 s, 10 s, 20 s... up to 5 minutes.
    Every attempt counts, manual retries included: `attempt` is the attempt number.
    """
    klass = error_class_of(error_class)
    if klass not in RETRYABLE:
        return None
    if task.attempt > task.retries:  # retries N: attempts 1..N may each be retried once
        return None
    return now + timedelta(seconds=retry_delay(task.attempt))


def stamp(when: datetime) -> str:
    """A time as the store writes it (ISO 8601, UTC, milliseconds, `Z`)."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_line(task: Task, attempt: int) -> str:
    """`attempt 2 of 4` (with the task's allowance), or `attempt 5` past it (a manual retry)."""
    most = task.retries + 1
    return f"attempt {attempt} of {most}" if attempt <= most else f"attempt {attempt}"


def retry_prompt(attempt: int, why: str) -> str:
    """What an agent that already took its prompt is told when its task is tried again:
    it resumes its session, so a short note is enough (the original prompt is in it).
    `why` may quote the agent's own output: nothing in it may reach the terminal as a key."""
    shown = "".join(ch if ch.isprintable() else " " for ch in why)[:300]
    return (
        f"This is attempt {attempt} of this task: the previous attempt failed ({shown}). "
        "Please continue the task from where it stands."
    )
