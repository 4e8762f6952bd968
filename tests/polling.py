"""Waiting in tests: poll a check until it holds, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# A request to a real server in a test: generous, because on a loaded machine (CI builds
# images beside the fast tier on 2 cores) an answer can take long, and httpx's default
# (5 s) then fails a test that only had to wait. Under a load of ~15 on 2 cores a test
# server was seen answering a plain 400 after 30 s. A timeout that is part of what a test
# checks is written out where it is used.
HTTP_TIMEOUT = 60.0


def wait_until(
    check: Callable[[], T], timeout: float = 30, what: str = "", interval: float = 0.02
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)
