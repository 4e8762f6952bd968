"""The `mcp` SDK's own client over Streamable HTTP, for tests written as plain functions:
each call opens a client session with a bearer token, makes the call and closes it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.polling import HTTP_TIMEOUT

T = TypeVar("T")


class ToolCaller:
    """Calls the MCP server at `url`/mcp as the holder of `token`."""

    def __init__(self, url: str, token: str) -> None:
        self.endpoint = f"{url}/mcp"
        self.token = token

    def session(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run `work` with a connected client (several calls in one session)."""

        async def run() -> T:
            headers = {"Authorization": f"Bearer {self.token}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT) as http,
                Client(streamable_http_client(self.endpoint, http_client=http)) as client,
            ):
                return await work(client)

        return anyio.run(run)

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        async def work(client: Client) -> CallToolResult:
            return await client.call_tool(tool, arguments)

        return self.session(work)

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The answer of a call that must succeed, as the JSON object the tool returned."""
        result = self.call(tool, **arguments)
        assert not result.is_error, (tool, text_of(result))
        return dict(json.loads(text_of(result)))

    def refused(self, tool: str, **arguments: Any) -> str:
        """The message of a call that must fail as a tool error (not a crash)."""
        result = self.call(tool, **arguments)
        assert result.is_error, (tool, text_of(result))
        text = text_of(result)
        # a crash reads only "Error executing tool NAME": an expected refusal says more
        assert text.strip() != f"Error executing tool {tool}", text
        return text


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))
