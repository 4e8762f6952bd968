"""The server's /mcp, called in-process for the in-workspace MCP relay.

The engine's relay threads (engine/mcp_relay.py) hand each message an agent sent from
its workspace to `LocalMcp`, which POSTs it to this very app's /mcp on the server's event
loop, through the whole middleware stack (the guard, then the Authenticator checking the
task's own token, then the MCP app), as any client's request: the task's token decides
what the agent may do, and a refusal is audited like any other.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from provisioner.server.guard import ASGIApp
from provisioner.server.mcp.app import PATH

# longer than any tool takes; the bridge holds the agent's request 120 s
ANSWER_S = 110.0


class LocalMcp:
    """McpCall: (task token, JSON-RPC message) -> (status, content type, body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on `loop`, the server's (the MCP app's task group runs there)."""
        self.loop = loop

    def __call__(self, token: str, message: str) -> tuple[int, str, str]:
        if self.loop is None or self.loop.is_closed():
            return 503, "application/json", json.dumps({"detail": "the server is not running"})
        future = asyncio.run_coroutine_threadsafe(self._post(token, message), self.loop)
        return future.result(timeout=ANSWER_S)

    async def _post(self, token: str, message: str) -> tuple[int, str, str]:
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 0))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", timeout=ANSWER_S
        ) as http:
            reply = await http.post(
                PATH,
                content=message.encode("utf-8", "replace"),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                },
            )
        content_type = reply.headers.get("content-type", "application/json")
        return reply.status_code, content_type, reply.text
