"""The server's own log: text for people, or JSON lines for a log pipeline.

`--log-format json` (or `log_format: json` in config.yaml) writes one JSON object per
line and per event, and every line carries `task_id` and `request_id` (null when the line
is about no task or no request), so a pipeline can follow one request or one task across
the API, the engine's threads and the follower. The ids come from context variables: the
RequestIds middleware sets the request's (and the task a path names), and the engine's
threads set their task's with provisioner.logcontext.task_context.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from provisioner.errors import DockyardError
from provisioner.logcontext import request_id, task_id
from provisioner.server.guard import ASGIApp, Message, Receive, Scope, Send, header

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_HEADER = "x-request-id"
# a caller's id is kept only if it is short and plain: it lands in every log line
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# the task a request is about, as its path names it: /api/dockyard/v1/tasks/<id or
# name>/...; under /api/v2 (Coder's surface too: /tasks/{user}/{task}) only a task id
_TASK_PATH_RE = re.compile(
    r"^/api/dockyard/v1/tasks/([^/]{1,128})"
    r"|^/api/(?:v2|experimental)/tasks/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:/|$)"
)

# LogRecord's own attributes: anything else on a record came from `extra=` and is kept
_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def check_format(value: object, where: str) -> str:
    """`value` if it is a known log format, else a DockyardError naming `where`."""
    if value not in FORMATS:
        raise DockyardError(
            f"{where}: unknown log format {str(value)[:32]!r}", hint="use text or json"
        )
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, task_id, request_id, and
    whatever the call passed in `extra=`; an exception's traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "task_id": getattr(record, "task_id", None) or task_id.get(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_KEYS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # default=str: a stray object in `extra=` is shown, never a lost line
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(log_format: str) -> None:
    """The root logger writes to stderr in `log_format` (text or json)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per bridge poll is noise


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: every request gets an id (the caller's X-Request-ID if it is
    plain, else a new one), answered in X-Request-ID and carried by every line logged
    while it is handled, with an access line when it ends."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log  # JSON logs only: a pipeline wants them, people not
        self.log = logging.getLogger("dockyard.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, REQUEST_HEADER.encode())
        rid = given if given and _REQUEST_ID_RE.fullmatch(given) else new_request_id()
        named = _TASK_PATH_RE.match(str(scope.get("path", "")))
        rid_token = request_id.set(rid)
        task_token = task_id.set((named.group(1) or named.group(2)) if named else None)
        started = time.monotonic()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._access(scope, status, started)
            task_id.reset(task_token)
            request_id.reset(rid_token)

    def _access(self, scope: Scope, status: int, started: float) -> None:
        principal = scope.get("state", {}).get("principal")
        self.log.info(
            "%s %s %s",
            scope.get("method"),
            str(scope.get("path", ""))[:256],
            status,
            extra={
                "method": scope.get("method"),
                "path": str(scope.get("path", ""))[:256],
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "user": getattr(principal, "user", None),
            },
        )
