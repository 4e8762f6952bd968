"""Long-polls: hold a request until what it waits for shows in the store, or time is up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

from provisioner.store.store import Store

# the longest a status or prompt long-poll (`?wait=`) holds a request, in seconds
MAX_WAIT = 30.0
# how often a long-poll re-reads the database when nothing in this process woke it
WAIT_RECHECK = 0.025
WAKE_RECHECK = 0.005

T = TypeVar("T")


async def wait_for(
    store: Store,
    read: Callable[[], T],
    done: Callable[[T], bool],
    wait: float,
    recheck: float = WAIT_RECHECK,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """`read()` (in a thread) until `done` says so or `wait` s have passed; the last read.

    Woken at once when this process stores log lines (a prompt taken or an agent's answer
    comes with some), and re-reading every `recheck` s for everything else. With `gone`
    (a request's is_disconnected), it ends once the client has left: a browser that
    navigates away holds nothing open here, and a server's shutdown waits for no one."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:  # called from the follower's thread
        loop.call_soon_threadsafe(woken.set)

    store.log_listeners.add(wake)
    try:
        deadline = loop.time() + wait
        every = recheck
        while True:
            woken.clear()
            value = await run_in_threadpool(read)
            remaining = deadline - loop.time()
            if remaining <= 0 or done(value) or (gone is not None and await gone()):
                return value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, every))
            # the follower stores a taken prompt's line first and its state just after:
            # after a wake, look again soon
            every = min(WAKE_RECHECK, recheck) if woken.is_set() else recheck
    finally:
        store.log_listeners.discard(wake)
