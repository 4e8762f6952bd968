"""The HTTP API: agentapi's endpoints plus /dockyard/* extensions, on ThreadingHTTPServer.

agentapi's routes answer as its OpenAPI document says (agentapi.py serves it, extended, at
/openapi.json); every error is its ErrorModel as application/problem+json, with huma's
statuses: 400 for a body that is not JSON, 422 for one that is not as documented.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:  # what hmac.compare_digest is, without hmac's import of OpenSSL (~3 ms of the start)
    from _operator import _compare_digest as compare_digest
except ImportError:  # another Python: the documented name
    from hmac import compare_digest  # type: ignore[no-redef]

from .activity import STATES
from .agentapi import PROBLEM_JSON, document_bytes, error_detail, problem
from .app import MAX_LIMIT, MAX_WAIT_S, RAW, USER, Bridge, Rejected
from .hooks import parse_event, parse_text
from .mcp_relay import RelayRefused
from .reports import PAGE as REPORTS_PAGE
from .task_command import ReportError, check_report

MAX_BODY = 1 << 20
# SSE: at most one message_update per client this often, and a keepalive when nothing happens
EVENT_INTERVAL_S = 0.1
KEEPALIVE_S = 15.0


class BridgeServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its bridge."""

    daemon_threads = True
    block_on_close = False  # long-polls and SSE streams must not hold up a stop

    def __init__(self, listener: socket.socket, bridge: Bridge) -> None:
        self.bridge = bridge
        self.address_family = listener.family
        super().__init__(listener.getsockname(), Handler, bind_and_activate=False)
        # the launcher bound and listens already (connections made since wait in its
        # backlog); http.server's own bind would also look the host's name up in DNS
        self.socket.close()
        self.socket = listener
        self.server_address = listener.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the bridge."""

    server: BridgeServer
    _body_pending = False
    # headers and body go out in two writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers, 40 ms on Linux, on every reply
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "dockyard-bridge"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: long-polls would flood the container log."""

    # -- plumbing ------------------------------------------------------------------------

    def _send_json(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate echoed back in an error: escaped
            data = json.dumps(body).encode("ascii")
        self._send_bytes(status, data, content_type, headers)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if self._body_pending:
            # an unread body would be parsed as the next request on this connection
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # the answer to a HEAD has the headers alone
            self.wfile.write(data)

    def _error(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """agentapi's error answer: its ErrorModel (RFC 9457 problem details)."""
        self._send_json(status, problem(status, message, errors), PROBLEM_JSON, headers)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.server.bridge.token.encode("utf-8")
        ok = scheme.lower() == "bearer" and compare_digest(token.strip().encode("utf-8"), expected)
        if not ok:
            self._error(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        return ok

    def _from_inside(self) -> bool:
        """Whether the peer is in the workspace: loopback, or this very address (a call
        to the container's own IP); a neighbour on its network is neither."""
        peer = str(self.client_address[0])
        try:
            local = str(self.connection.getsockname()[0])
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except (OSError, ValueError):
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback or peer == local

    def _report_authorized(self) -> bool:
        """POST /dockyard/report: from inside the workspace, with the report key (never
        the bridge token: the server reads reports, only the agent makes them)."""
        if not self._from_inside():
            self._error(403, "reports are taken only from inside the workspace")
            return False
        header = self.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        expected = self.server.bridge.report_key.encode("utf-8")
        if scheme.lower() == "bearer" and compare_digest(key.strip().encode("utf-8"), expected):
            return True
        self._error(
            401,
            "missing or wrong report key (the file $DOCKYARD_REPORT_KEY_FILE names)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        return False

    def _route(self, method: str) -> None:
        length = self.headers.get("Content-Length")
        self._body_pending = bool(length and length.strip() not in ("", "0")) or bool(
            self.headers.get("Transfer-Encoding")
        )
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        routes = _ROUTES.get(method, {})
        if path == "/healthz" and method == "GET":
            self._send_json(200, {"ok": True})
            return
        if path == "/openapi.json" and method == "GET":
            # no token, as agentapi (which has no auth at all) serves it: the document is
            # the same for every bridge, in the zipapp anyone can read, and tells nothing
            # of the task; a client learns the API before it is given the token
            self._send_bytes(200, document_bytes())
            return
        if path in _AGENT_PATHS and method == "POST":
            if not self._report_authorized():
                return
        elif not self._authorized():
            return
        handler = routes.get(path)
        if handler is None:
            allowed = [m for m, table in _ROUTES.items() if path in table]
            if path in ("/healthz", "/openapi.json"):
                allowed = ["GET"]
            if allowed:
                allow = ", ".join(allowed)
                self._error(405, f"{method} is not allowed on {path}", headers={"Allow": allow})
            else:
                self._error(404, f"no such endpoint: {path}")
            return
        try:
            # a blank value (`state=`) is a value, refused as any other wrong one
            handler(self, parse_qs(url.query, keep_blank_values=True))
        except Rejected as exc:
            self._error(exc.status, str(exc), exc.errors)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        """Dispatch a GET."""
        self._route("GET")

    def do_POST(self) -> None:
        """Dispatch a POST."""
        self._route("POST")

    def _other_method(self) -> None:
        """Any other method: a 405 (404 off the routes), as an error like the others
        (http.server answered an HTML 501)."""
        self._route(self.command)

    do_HEAD = _other_method

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>: every method not routed above is answered too
        if name.startswith("do_"):
            return self._other_method
        raise AttributeError(name)

    # -- endpoints -----------------------------------------------------------------------

    def status(self, query: dict[str, list[str]]) -> None:
        """GET /status."""
        self._send_json(200, self.server.bridge.status())

    def messages(self, query: dict[str, list[str]]) -> None:
        """GET /messages."""
        self._send_json(200, {"messages": self.server.bridge.messages()})

    def prompts(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/prompts."""
        self._send_json(200, {"prompts": self.server.bridge.prompts()})

    def log(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/log: entries after a sequence number, long-polling when none."""
        after = _query_number(query, "after", 0, int)
        wait = _query_number(query, "wait", 0.0, float)
        limit = _query_number(query, "limit", 1000, int)
        if after < 0 or wait < 0 or limit < 1:
            raise _invalid("query", "after and wait must be >= 0, limit >= 1")
        state = query.get("state", [None])[-1]
        if state is not None and state not in STATES:
            raise _invalid("query.state", f"state must be one of: {', '.join(STATES)}", state)
        prompts = _query_number(query, "prompts", -1, int)
        reports_after = _query_number(query, "reports_after", -1, int)
        if "reports_after" in query and reports_after < 0:
            raise _invalid("query.reports_after", "reports_after must be >= 0", reports_after)
        body = self.server.bridge.log(
            after, min(wait, MAX_WAIT_S), min(limit, MAX_LIMIT), state, prompts, reports_after
        )
        self._send_json(200, body)

    def reports(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/reports: the agent's reports after a sequence number."""
        after = _query_number(query, "after", 0, int)
        limit = _query_number(query, "limit", REPORTS_PAGE, int)
        if after < 0 or limit < 1:
            raise _invalid("query", "after must be >= 0, limit >= 1")
        self._send_json(200, self.server.bridge.report_page(after, min(limit, REPORTS_PAGE)))

    def report(self, query: dict[str, list[str]]) -> None:
        """POST /dockyard/report: a report the agent makes with dockyard-task
        ({"kind": "complete"|"progress"|"ask"|"usage", ...fields})."""
        body = self._read_json()
        try:
            report = check_report(body)
        except ReportError as exc:
            value = body.get(exc.field) if exc.field in body else None
            if isinstance(value, str) and len(value) > 200:
                value = value[:200] + "..."
            raise _invalid(f"body.{exc.field}", str(exc), value) from None
        self._send_json(200, self.server.bridge.report(report))

    def mcp_message(self, query: dict[str, list[str]]) -> None:
        """POST /dockyard/mcp: one JSON-RPC message of the agent's MCP client (through
        dockyard-mcp), answered with what the server's /mcp answered (mcp_relay.py)."""
        body = self._read_json()
        try:
            answer = self.server.bridge.mcp.submit(json.dumps(body, ensure_ascii=False))
        except RelayRefused as exc:
            self._error(exc.status, str(exc))
            return
        except UnicodeEncodeError:
            raise _invalid("body", "body is not valid Unicode (an unpaired surrogate)") from None
        data = str(answer["body"]).encode("utf-8", "replace")
        self._send_bytes(int(answer["status"]), data, str(answer["content_type"]))

    def mcp_requests(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/mcp/requests?wait=S: the agent's MCP messages for the server to
        answer (each handed out once), long-polling up to `wait` seconds."""
        wait = _query_number(query, "wait", 0.0, float)
        if not 0 <= wait <= MAX_WAIT_S:
            raise _invalid("query.wait", f"wait must be from 0 to {MAX_WAIT_S:g}", wait)
        self._send_json(200, {"requests": self.server.bridge.mcp.take(wait)})

    def mcp_answer(self, query: dict[str, list[str]]) -> None:
        """POST /dockyard/mcp/answer {"id", "status", "content_type", "body"}: the server's
        answer to one of them."""
        body = self._read_json()
        request_id, status = body.get("id"), body.get("status")
        content_type, text = body.get("content_type", "application/json"), body.get("body", "")
        if not isinstance(request_id, str) or not isinstance(text, str):
            raise _invalid("body", "id and body must be strings")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise _invalid("body.status", "status must be an HTTP status (200-599)", status)
        if not isinstance(content_type, str) or not content_type.isprintable():
            raise _invalid("body.content_type", "content_type must be printable text")
        if not self.server.bridge.mcp.answer(request_id, status, content_type[:200], text):
            self._error(404, f"no MCP message {request_id[:40]!r} waits for an answer")
            return
        self._send_json(200, {"ok": True})

    def message(self, query: dict[str, list[str]]) -> None:
        """POST /message: a user prompt (queued) or raw keystrokes (typed now).

        The body is agentapi's MessageRequestBody ({"content", "type"}, both required, no
        other property) plus Dockyard's optional "id"."""
        body = self._read_json()
        content = body.get("content")
        kind = body.get("type")
        prompt_id = body.get("id")
        errors: list[dict[str, Any]] = []

        def refuse(field: str, message: str, value: Any = None) -> None:
            errors.append(error_detail(f"body.{field}", message, value))

        for name in sorted(set(body) - _MESSAGE_FIELDS):
            refuse(name, f"unexpected property {name}", body[name])
        if content is None:
            refuse("content", "expected required property content to be present")
        elif not isinstance(content, str) or not content:
            refuse("content", "content must be a non-empty string", content)
        if kind is None:
            refuse("type", "expected required property type to be present")
        elif kind not in (USER, RAW):
            refuse("type", 'type must be "user" or "raw"', kind)
        elif kind == USER and isinstance(content, str) and content and not content.strip():
            refuse("content", "a user prompt must contain more than whitespace")
        if "id" in body and (not isinstance(prompt_id, str) or not prompt_id.strip()):
            refuse("id", "id must be a non-empty string", prompt_id)
        if errors:
            raise Rejected(422, "; ".join(e["message"] for e in errors), errors)
        assert isinstance(content, str) and isinstance(kind, str)
        _check_unicode("content", content)
        if prompt_id is not None:
            _check_unicode("id", prompt_id)
        new_id = self.server.bridge.submit(content, kind, prompt_id)
        self._send_json(200, {"ok": True, "id": new_id})

    def hook(self, query: dict[str, list[str]]) -> None:
        """POST /dockyard/hook: an agent hook event ({"event": "prompt_submitted"|"stop"|...},
        optionally with "text": what the agent said in the turn)."""
        body = self._read_json()
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise _invalid("body.event", str(exc), body.get("event")) from None
        try:
            lines = parse_text(body)
        except ValueError as exc:
            raise _invalid("body.text", str(exc), body.get("text")) from None
        self._send_json(200, self.server.bridge.hook(event, lines))

    # -- commands beside the agent (commands.py; imported when first used: the bridge's
    # start stays as fast as before) --------------------------------------------------

    def exec_command(self, query: dict[str, list[str]]) -> None:
        """POST /dockyard/exec {"argv", "env", "timeout"}: run a command to its end;
        {"exit_code", "output", "truncated", "timed_out"}."""
        from . import commands

        body = self._read_json()
        try:
            command = commands.check_command(body)
        except commands.Refused as exc:
            raise Rejected(exc.status, str(exc)) from None
        self._send_json(200, commands.run(command, self.server.bridge.config.cwd))

    def _upgrade(self) -> bool:
        """Answer 101 and take the connection over, when the client asked to upgrade."""
        from . import commands

        wanted = self.headers.get("Upgrade", "").strip().lower()
        if wanted != commands.UPGRADE or self._body_pending:
            self._error(
                426,
                f"this endpoint needs Connection: Upgrade and Upgrade: {commands.UPGRADE}",
                headers={"Upgrade": commands.UPGRADE, "Connection": "Upgrade"},
            )
            return False
        self.close_connection = True
        self.send_response(101)
        self.send_header("Upgrade", commands.UPGRADE)
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        return True

    def session(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/session (an upgrade): a command with its input and output open,
        in frames (commands.Session)."""
        from . import commands

        if self._upgrade():
            commands.Session(self.rfile, self.connection, self.server.bridge.config.cwd).serve()

    def connect(self, query: dict[str, list[str]]) -> None:
        """GET /dockyard/connect?port=N (an upgrade): a TCP stream to the workspace's port
        (previews and port-forward on a backend that reaches only the bridge)."""
        from . import commands

        try:
            port = commands.check_port(query.get("port", [""])[-1], self.server.server_port)
        except commands.Refused as exc:
            raise Rejected(exc.status, str(exc)) from None
        try:
            upstream = commands.dial(port)
        except OSError as exc:
            raise Rejected(502, f"nothing answers on port {port} in the workspace: {exc}") from None
        try:
            if self._upgrade():
                commands.splice(self.rfile, self.connection, upstream)
        finally:
            upstream.close()

    def _read_json(self) -> dict[str, Any]:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise Rejected(411, "Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            raise Rejected(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise Rejected(413, f"body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length)
        self._body_pending = False
        try:
            body = json.loads(raw)
        except ValueError as exc:
            # huma's answer to a body it cannot parse: 400, not the 422 of an invalid one
            detail = error_detail("body", f"body must be JSON: {exc}")
            raise Rejected(400, "body must be JSON", [detail]) from None
        if not isinstance(body, dict):
            raise _invalid("body", "body must be a JSON object", body)
        return body

    def events(self, query: dict[str, list[str]]) -> None:
        """GET /events: SSE stream of status_change and message_update."""
        bridge = self.server.bridge
        self.close_connection = True  # the stream ends only when the client goes
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")  # as agentapi: no proxy holds events back
        self.send_header("Connection", "close")
        self.end_headers()
        with bridge.cond:
            status = bridge.status_locked()
            current = {
                "status": status["status"],
                "agent_type": status["agent_type"],
                "state": status["dockyard"]["state"],
            }
            first = [("status_change", current)]
            messages = bridge.conversation.messages()
            first += [("message_update", _message_event(m)) for m in messages]
            sent_status = bridge.status_counter
            sent_message = bridge.conversation.version
            # the newest turn sent so far: it may still grow, and every turn after it is new
            last_id = messages[-1]["id"] if messages else 0
            seen = bridge.version
        self._write_events(first)
        last_write = time.monotonic()
        while not bridge.stopping.is_set():
            events: list[tuple[str, dict[str, Any]]] = []
            with bridge.cond:
                if bridge.version == seen and not bridge.stopping.is_set():
                    bridge.cond.wait(KEEPALIVE_S)
                seen = bridge.version
                events += [("status_change", e) for n, e in bridge.status_events if n > sent_status]
                sent_status = bridge.status_counter
                if bridge.conversation.version != sent_message:
                    sent_message = bridge.conversation.version
                    changed = bridge.conversation.since(last_id)
                    events += [("message_update", _message_event(m)) for m in changed]
                    if changed:
                        last_id = changed[-1]["id"]
            if events:
                self._write_events(events)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= KEEPALIVE_S:
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
                last_write = time.monotonic()
            time.sleep(EVENT_INTERVAL_S)  # coalesce bursts of message updates

    def _write_events(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        chunks = [
            f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            for name, data in events
        ]
        self.wfile.write("".join(chunks).encode("utf-8"))
        self.wfile.flush()


def _check_unicode(field: str, value: str) -> None:
    """Refuse text with an unpaired surrogate (a JSON "\\ud800"): it cannot be typed,
    stored or sent back, and failed the request with no answer at all."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        message = f"{field} is not valid Unicode: an unpaired surrogate at position {exc.start}"
        raise _invalid(f"body.{field}", message) from None


def _invalid(location: str, message: str, value: Any = None) -> Rejected:
    """A request that is not as documented: agentapi's (huma's) 422."""
    return Rejected(422, message, [error_detail(location, message, value)])


def _message_event(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": message["id"],
        "role": message["role"],
        "message": message["content"],
        "time": message["time"],
    }


def _query_number(query: dict[str, list[str]], name: str, default: Any, kind: type) -> Any:
    values = query.get(name)
    if not values:
        return default
    try:
        return kind(values[-1])
    except ValueError:
        raise _invalid(f"query.{name}", f"{name} must be a number", values[-1]) from None


# MessageRequestBody's properties ($schema: huma's link to the schema, which it allows)
_MESSAGE_FIELDS = frozenset({"content", "type", "id", "$schema"})

_GET = {
    "/status": Handler.status,
    "/messages": Handler.messages,
    "/events": Handler.events,
    "/dockyard/log": Handler.log,
    "/dockyard/prompts": Handler.prompts,
    "/dockyard/reports": Handler.reports,
    "/dockyard/mcp/requests": Handler.mcp_requests,
    "/dockyard/session": Handler.session,
    "/dockyard/connect": Handler.connect,
}
REPORT_PATH = "/dockyard/report"
MCP_PATH = "/dockyard/mcp"
# what the agent calls, with its report key from inside the workspace (never the bridge
# token: the server reads these, only the agent makes them)
_AGENT_PATHS = (REPORT_PATH, MCP_PATH)
_POST = {
    "/message": Handler.message,
    "/dockyard/hook": Handler.hook,
    REPORT_PATH: Handler.report,
    MCP_PATH: Handler.mcp_message,
    "/dockyard/mcp/answer": Handler.mcp_answer,
    "/dockyard/exec": Handler.exec_command,
}
_ROUTES = {"GET": _GET, "POST": _POST}


def make_server(bridge: Bridge, listener: socket.socket) -> BridgeServer:
    """The API server on a bound, listening socket (not yet serving)."""
    return BridgeServer(listener, bridge)
