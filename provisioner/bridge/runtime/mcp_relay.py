"""The in-workspace MCP endpoint: the agent's MCP messages, held until the server answers.

The workspace has no path to the Dockyard server, and holds no credential of it. So the
relay runs backwards, as reports do: the agent (through `dockyard-mcp`, a stdio MCP
server on its PATH) POSTs each JSON-RPC message to /dockyard/mcp with its report key;
the bridge holds the request; the server's relay for this task long-polls
GET /dockyard/mcp/requests with the bridge token, calls its own /mcp with the task's own
token (scoped to the task and the tasks it creates), and POSTs the answer to
/dockyard/mcp/answer, which the held request then returns.

Memory only: a request the server never took is answered 504 after ANSWER_WAIT_S, and
the agent may try again. Bounded: at most MAX_PENDING requests at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

# long enough for any tool (a create that renders a template); a relay that is away
# (the server restarting) makes the agent wait this long at most, then tells it
ANSWER_WAIT_S = 120.0
MAX_PENDING = 16
MAX_MESSAGE = 1 << 20
MAX_ANSWER = 4 << 20


class RelayRefused(Exception):
    """A message the relay does not take now; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class McpRelay:
    """Messages waiting for the server, and those it took, until each is answered."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._ids = itertools.count(1)
        self._waiting: list[dict[str, Any]] = []  # not yet taken by the server
        self._answers: dict[str, dict[str, Any] | None] = {}  # id -> answer (None: not yet)

    def submit(self, message: str, wait: float = ANSWER_WAIT_S) -> dict[str, Any]:
        """Hand `message` (a JSON-RPC text) to the server and wait for its answer:
        {"status", "content_type", "body"}. RelayRefused when too many are pending or no
        answer came in time."""
        with self.cond:
            if len(self._answers) >= MAX_PENDING:
                raise RelayRefused(
                    429, f"{MAX_PENDING} MCP messages already wait for the server; retry later"
                )
            request_id = str(next(self._ids))
            self._answers[request_id] = None
            self._waiting.append({"id": request_id, "body": message})
            self.cond.notify_all()
            deadline = time.monotonic() + wait
            try:
                while self._answers[request_id] is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RelayRefused(
                            504,
                            f"the Dockyard server did not answer within {wait:g} s (it may "
                            "be restarting); try again",
                        )
                    self.cond.wait(left)
                answer = self._answers[request_id]
                assert answer is not None
                return answer
            finally:
                del self._answers[request_id]
                self._waiting = [r for r in self._waiting if r["id"] != request_id]

    def take(self, wait: float) -> list[dict[str, Any]]:
        """The messages waiting (each given once), waiting up to `wait` s for one."""
        deadline = time.monotonic() + wait
        with self.cond:
            while not self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self.cond.wait(left)
            taken, self._waiting = self._waiting, []
            return taken

    def answer(self, request_id: str, status: int, content_type: str, body: str) -> bool:
        """Answer a message; False when none with that id waits (it timed out)."""
        with self.cond:
            if request_id not in self._answers or self._answers[request_id] is not None:
                return False
            self._answers[request_id] = {
                "status": status,
                "content_type": content_type,
                "body": body,
            }
            self.cond.notify_all()
            return True

    def wake(self) -> None:
        """Let every waiter look again (the bridge stops)."""
        with self.cond:
            self.cond.notify_all()
