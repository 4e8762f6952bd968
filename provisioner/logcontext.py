"""Which task and which request the current thread (or coroutine) works for, so every
log line can say so (provisioner/server/logformat.py writes them). Pure: no I/O."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dockyard_request_id", default=None
)
task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dockyard_task_id", default=None
)


@contextlib.contextmanager
def task_context(task: str) -> Iterator[None]:
    """Lines logged inside the block (in this thread) carry this task's id."""
    token = task_id.set(task)
    try:
        yield
    finally:
        task_id.reset(token)


def in_task(task: str, fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, run with `task` as the current task (for a pool thread's work)."""

    def run(*args: Any, **kwargs: Any) -> T:
        with task_context(task):
            return fn(*args, **kwargs)

    return run
