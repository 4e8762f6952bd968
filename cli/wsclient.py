"""Opening a WebSocket to the server with the CLI's credentials (the `websockets`
library's synchronous client), for `task exec`, `task shell` and `task port-forward`."""

from __future__ import annotations

import contextlib
import json
import ssl
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from cli.client import API, Client, CliError, ServerUnreachable


def ws_url(client: Client, path: str) -> str:
    """The ws:// (or wss://) URL of an API path on the client's server."""
    parts = urlsplit(client.base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + API + path, "", ""))


def segment(value: str) -> str:
    return quote(value, safe="")


def open_socket(client: Client, path: str) -> Any:
    """A connected WebSocket (ServerUnreachable if the server cannot be reached; an
    ApiError-like CliError for a refused handshake)."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    headers = client.headers
    agent = headers.pop("User-Agent", None)
    url = ws_url(client, path)
    context = ssl.create_default_context() if url.startswith("wss:") else None
    try:
        return connect(
            url,
            additional_headers=headers,
            user_agent_header=agent,
            ssl=context,
            max_size=16 * 1024 * 1024,
            open_timeout=30,
            # keepalive pings would end a long shell over a slow link; TCP keeps it
            ping_interval=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        detail = ""
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(exc.response.body or b"{}").get("detail") or ""
        hint = "log in with: dockyard login URL (or set DOCKYARD_TOKEN)" if status == 401 else None
        raise CliError(f"the server refused: HTTP {status} {detail}".strip(), hint) from exc
    except (OSError, WebSocketException) as exc:
        raise ServerUnreachable(client.base_url, str(exc) or type(exc).__name__) from exc


def first_answer(socket: Any) -> dict[str, Any]:
    """The server's first message: {"started"/"connected": true} or an error, raised."""
    from websockets.exceptions import ConnectionClosed

    try:
        answer = json.loads(socket.recv(timeout=60))
    except (ConnectionClosed, TimeoutError, ValueError, TypeError) as exc:
        raise CliError(f"the server closed the session: {exc}") from exc
    if not isinstance(answer, dict):
        raise CliError("the server sent something unexpected")
    if "error" in answer:
        raise CliError(str(answer["error"]), answer.get("hint"))
    return answer
