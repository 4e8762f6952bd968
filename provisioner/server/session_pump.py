"""A workspace session's output, read on a thread of its own and handed to the event loop.

A shell may stay open for hours: its blocking reads must not hold one of the threads
every synchronous route shares (anyio's pool has 40), so each session gets a daemon
thread that ends with its output.
"""

from __future__ import annotations

import asyncio
import threading

from provisioner.backends.base import WorkspaceSession


class SessionPump:
    """Reads a session's output into a queue; `next()` awaits the next piece."""

    def __init__(self, session: WorkspaceSession, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self._loop = loop
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        # at most 64 pieces unread: a slow client slows the command down
        self._room = threading.Semaphore(64)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="workspace-session")
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                stream, data = self.session.read()
            except Exception:  # the connection to the workspace broke: the output ends
                stream, data = 0, b""
            while not self._room.acquire(timeout=0.5):
                if self._stopped.is_set():
                    return
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, (stream, data))
            except RuntimeError:  # the loop has closed
                return
            if not data:
                return

    async def next(self) -> tuple[int, bytes]:
        """(stream, bytes); (0, b"") once the output has ended."""
        item = await self._queue.get()
        self._room.release()
        return item

    def stop(self) -> None:
        """Nobody reads any more: the thread ends once the session's output does (the
        caller closes the session)."""
        self._stopped.set()
