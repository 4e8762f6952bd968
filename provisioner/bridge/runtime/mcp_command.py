#!/usr/bin/env python3
"""dockyard-mcp: Dockyard's MCP server for the agent in this workspace (stdio).

Register it with the agent as a stdio MCP server whose command is `dockyard-mcp` (the
built-in templates do so at setup). It reads JSON-RPC messages, one a line, from stdin
and writes the answers, one a line, to stdout. Each message goes to this workspace's
bridge ($DOCKYARD_BRIDGE_URL, on 127.0.0.1) with the workspace's report key, and the
Dockyard server answers it with the task's own token: the tools of the server's /mcp
(create_task, get_task, get_task_logs, send_message, complete_task...), acting on this
task and the tasks it creates only. The workspace has no path to the server and holds no
credential of it; see docs/agents.md.

The bridge ships this file in its zipapp and installs it on the agent's PATH; it is
standard library only and imports nothing of its package.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

URL_ENV = "DOCKYARD_BRIDGE_URL"
KEY_FILE_ENV = "DOCKYARD_REPORT_KEY_FILE"
DEFAULT_URL = "http://127.0.0.1:7777"
# the bridge holds a message up to 120 s for the server's answer
TIMEOUT_S = 150.0
MAX_LINE = 1 << 20
# JSON-RPC error codes: the SDK's for a failed request, and the spec's for a bad message
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700


def _key(environ: dict[str, str]) -> str:
    path = environ.get(KEY_FILE_ENV)
    if not path:
        raise OSError(f"${KEY_FILE_ENV} is not set: run this inside a Dockyard workspace")
    with open(path, encoding="utf-8") as f:
        key = f.read().strip()
    if not key:
        raise OSError(f"the report key file {path} is empty")
    return key


def _error(message_id: Any, code: int, text: str) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": text}}
    )


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])
    return body[:500].decode("utf-8", "replace")


def relay(line: str, environ: dict[str, str]) -> str | None:
    """The answer line to one message line (None: a notification, nothing to say)."""
    import urllib.error
    import urllib.request

    try:
        message = json.loads(line)
    except ValueError as exc:
        return _error(None, PARSE_ERROR, f"not JSON: {exc}")
    message_id = message.get("id") if isinstance(message, dict) else None
    url = (environ.get(URL_ENV) or DEFAULT_URL).rstrip("/") + "/dockyard/mcp"
    try:
        request = urllib.request.Request(
            url,
            data=line.encode("utf-8"),
            method="POST",
            headers={
                "Authorization": f"Bearer {_key(environ)}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        # never through a proxy the workspace's environment names: the bridge is local
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if message_id is None:
            return None
        detail = _detail(exc.read())
        return _error(message_id, INTERNAL_ERROR, f"Dockyard refused ({exc.code}): {detail}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if message_id is None:
            return None
        reason = getattr(exc, "reason", exc)
        return _error(message_id, INTERNAL_ERROR, f"cannot reach the bridge at {url}: {reason}")
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None  # a notification's 202
    try:
        answer = json.loads(text)
    except ValueError:
        if message_id is None:
            return None
        return _error(message_id, INTERNAL_ERROR, f"not a JSON answer: {text[:200]}")
    return json.dumps(answer)  # one line per message


def main(environ: dict[str, str] | None = None) -> int:
    """Relay stdin to the bridge until stdin ends."""
    env = dict(os.environ if environ is None else environ)
    for raw in sys.stdin.buffer:
        if len(raw) > MAX_LINE:
            sys.stdout.write(_error(None, PARSE_ERROR, "message larger than 1 MiB") + "\n")
            sys.stdout.flush()
            continue
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        answer = relay(line, env)
        if answer is not None:
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
