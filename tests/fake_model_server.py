"""A local fake model server for tests: OpenAI (chat completions, Responses) and Anthropic
HTTP APIs, scripted replies.

Real agents (Aider, Claude Code, Codex, ...) run inside Docker workspaces and talk to a model API
over HTTP. No model API is reachable from the test machines, so tests start this server on
the host and point the agent at it. What the model "says" is decided by the test.

Usage::

    from tests.fake_model_server import FakeModelServer, Reply, ToolCall, last_user_text

    def responder(request: dict, api: str) -> Reply | str:
        # request: the decoded JSON body; api: "openai", "anthropic" or "responses"
        if "hello" in last_user_text(request):
            return Reply(text="Hi!", tool_calls=[ToolCall("write", {"path": "a.txt"})])
        return "OK"  # a plain string is a text-only reply

    with FakeModelServer(responder) as fake:
        fake.base_url                          # http://127.0.0.1:PORT        (from the host)
        fake.base_url_for_containers           # http://172.17.0.1:PORT       (ANTHROPIC_BASE_URL)
        fake.openai_base_url_for_containers    # http://172.17.0.1:PORT/v1    (OPENAI_API_BASE)
        ...
        fake.requests                          # every request so far (RecordedRequest)
        fake.model_requests("openai")          # one API's model calls ("openai": chat completions)
        fake.wait_for_requests(2, timeout=30)  # block until two model calls arrived
        fake.errors                            # exceptions the responder raised

The interface (stable; other tests depend on it):

* ``FakeModelServer(responder=None, host="0.0.0.0", port=0)``: a ThreadingHTTPServer in a
  daemon thread, started by ``start()`` / ``__enter__`` and stopped by ``stop()`` /
  ``__exit__``. Port 0 picks a free port. It binds on every interface so containers on the
  default Docker bridge reach it through the bridge's gateway address (read once from
  ``docker network inspect bridge``; 172.17.0.1 if that fails). Without a responder every
  model call gets the text reply "OK".
* ``responder(request_json, api) -> Reply | ErrorReply | str`` is called for each model
  call, from the server's request thread. ``api`` is ``"openai"`` (``POST
  /v1/chat/completions``), ``"anthropic"`` (``POST /v1/messages``) or ``"responses"``
  (OpenAI's Responses API, ``POST /v1/responses``: Codex). An exception in it is recorded
  in ``errors`` and answered with HTTP 500.
* ``Reply(text="", tool_calls=[], stop_reason=None, delay_s=0, chunk_size=24,
  chunk_delay_s=0, input_tokens=None, output_tokens=None)``. The text becomes an Anthropic
  text block / the OpenAI message content / a Responses ``message`` output item; each
  ``ToolCall(name, input, id=None)`` becomes an Anthropic ``tool_use`` block / an OpenAI
  ``tool_calls`` entry (arguments as a JSON string) / a Responses ``function_call`` item
  (``call_id`` = id, arguments as a JSON string). When the Responses request declares the
  tool as ``{"type": "custom"}`` (a freeform tool such as Codex's ``apply_patch``), the
  item is a ``custom_tool_call`` whose ``input`` is ``input["input"]`` (a string), or the
  JSON of ``input`` otherwise. ``stop_reason`` defaults to ``tool_use``/``end_turn``
  (Anthropic) and ``tool_calls``/``stop`` (OpenAI); in the Responses API a ``length`` /
  ``max_tokens`` / ``max_output_tokens`` stop makes the response ``incomplete``, anything
  else ``completed``. ``delay_s`` waits before answering; when streaming, text and tool
  input are sent in ``chunk_size``-character deltas ``chunk_delay_s`` apart. Token counts
  default to an estimate (characters / 4).
* ``ErrorReply(status=500, message="...", type=None)`` answers with an error body in the
  API's own shape (for retry and error-handling tests).
* ``sequence(*replies)``: a responder that returns the replies in order, then repeats the
  last one.
* Helpers over a request body, for all three APIs: ``last_user_text(body)`` (the text of
  the last user message), ``message_texts(body)`` (every text in system + messages, or in
  instructions + input for the Responses API, in order). For the Responses API also
  ``tool_outputs(body)``: the ``function_call_output`` / ``custom_tool_call_output`` items
  that follow the last user message (what the agent's tools answered this turn).

Endpoints:

* ``POST /v1/chat/completions`` (also ``/chat/completions``): non-streaming JSON, or with
  ``"stream": true`` SSE ``data: {chunk}`` lines ending with ``data: [DONE]``; a usage
  chunk is added when ``stream_options.include_usage`` is set.
* ``POST /v1/messages`` (also ``/messages``, any query string): non-streaming JSON, or SSE
  with ``message_start``, ``content_block_start``/``ping``/``content_block_delta``
  (``text_delta`` or ``input_json_delta``)/``content_block_stop`` per block,
  ``message_delta`` and ``message_stop``.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` (estimated).
* ``POST /v1/responses`` (also ``/responses``): non-streaming JSON (a ``response`` object
  with its ``output`` items and ``usage``), or with ``"stream": true`` SSE events, each as
  ``event: TYPE`` + ``data: {...}`` with a ``sequence_number``: ``response.created``,
  ``response.in_progress``; per message ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta``...,
  ``response.output_text.done``, ``response.content_part.done``,
  ``response.output_item.done``; per function call ``response.output_item.added``,
  ``response.function_call_arguments.delta``..., ``response.function_call_arguments.done``,
  ``response.output_item.done`` (``response.custom_tool_call_input.delta``/``.done`` for a
  custom tool); then ``response.completed`` (or ``response.incomplete``) with the whole
  response. An ``ErrorReply`` is an HTTP error in OpenAI's error shape.
* ``GET /v1/models`` (and ``/models``): one list that both SDKs accept (OpenAI's
  ``object``/``owned_by`` and Anthropic's ``type``/``display_name``/``has_more`` fields).
* ``GET /``, ``HEAD`` anything: 200, for clients that probe the endpoint.
* Any other path: 404; any other method: 405 (both with an error body).

Every request, known or not, is recorded as a ``RecordedRequest(method, path, query,
headers, body, api, time)`` (headers lower-cased; body decoded JSON or None; api None
unless it was a model call: "openai", "anthropic" or "responses"). A ``CONNECT`` is
recorded with its ``host:port`` as path: set ``HTTPS_PROXY``/``HTTP_PROXY`` in a workspace
to ``base_url_for_containers`` (and ``NO_PROXY`` to ``fake.gateway``) and every call an
agent makes to anywhere but the model shows up in ``requests``. Also: ``fake.port``,
``fake.gateway`` (the bridge gateway address) and ``fake.clear()`` (forget the requests
and errors so far).

Streaming responses use chunked transfer encoding, so connections stay reusable (keep-alive)
as with the real APIs.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

OPENAI, ANTHROPIC, RESPONSES = "openai", "anthropic", "responses"
DEFAULT_GATEWAY = "172.17.0.1"
FAKE_MODELS = ("fake-model", "claude-sonnet-4-5", "gpt-4o")


@dataclass
class ToolCall:
    """One tool the model asks to call: an Anthropic tool_use block / an OpenAI tool call."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """What the fake model answers to one call."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    delay_s: float = 0.0
    chunk_size: int = 24
    chunk_delay_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class ErrorReply:
    """An HTTP error answer, in the called API's error shape."""

    status: int = 500
    message: str = "fake model server error"
    type: str | None = None


ReplyLike = Reply | ErrorReply | str
Responder = Callable[[dict[str, Any], str], ReplyLike]


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str  # without the query string; host:port for CONNECT
    query: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # decoded JSON, or None (no body or not JSON)
    api: str | None  # "openai" / "anthropic" / "responses" for model calls, else None
    time: float


def sequence(*replies: ReplyLike) -> Responder:
    """A responder returning `replies` in order, then the last one again and again."""
    if not replies:
        raise ValueError("sequence() needs at least one reply")
    lock = threading.Lock()
    state = {"next": 0}

    def respond(request: dict[str, Any], api: str) -> ReplyLike:
        with lock:
            i = min(state["next"], len(replies) - 1)
            state["next"] += 1
        return replies[i]

    return respond


def _block_texts(content: Any) -> list[str]:
    """The texts in a message's content: a string, or a list of blocks/parts."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif "content" in block:  # an Anthropic tool_result block
                    texts.extend(_block_texts(block["content"]))
    return texts


def _messages(body: dict[str, Any]) -> list[Any]:
    """The conversation: `messages` (chat completions, Anthropic) or `input` (Responses)."""
    if "messages" in body:
        return list(body.get("messages") or [])
    items = body.get("input")
    if isinstance(items, str):  # the Responses API's shorthand: one user message
        return [{"role": "user", "content": items}]
    return list(items) if isinstance(items, list) else []


def message_texts(body: dict[str, Any]) -> list[str]:
    """Every text in a request: the system prompt (Anthropic `system`, Responses
    `instructions`), then each message's content."""
    texts = _block_texts(body.get("system")) + _block_texts(body.get("instructions"))
    for message in _messages(body):
        if isinstance(message, dict):
            texts.extend(_block_texts(message.get("content")))
    return texts


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message ("" if there is none)."""
    for message in reversed(_messages(body)):
        if isinstance(message, dict) and message.get("role") == "user":
            return "\n".join(_block_texts(message.get("content")))
    return ""


_TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def tool_outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results after the last user message of a Responses request (items of type
    function_call_output / custom_tool_call_output: call_id, output), oldest first."""
    found: list[dict[str, Any]] = []
    for item in reversed(_messages(body)):
        if not isinstance(item, dict):
            continue
        if item.get("role") == "user":
            break
        if item.get("type") in _TOOL_OUTPUTS:
            found.append(item)
    return found[::-1]


def _estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def _chunks(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def docker_bridge_gateway() -> str:
    """The default Docker bridge's gateway address: how containers reach the host."""
    try:
        out = subprocess.run(
            ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
        for entry in json.loads(out) or []:
            gateway = entry.get("Gateway")
            if gateway and ":" not in gateway:  # the IPv4 one
                return str(gateway)
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
        pass
    return DEFAULT_GATEWAY


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `requests`, not a log

    # -- plumbing ------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self, api: str | None) -> tuple[RecordedRequest, bytes]:
        raw = self._read_body()
        body: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        parts = urlsplit(self.path)
        entry = RecordedRequest(
            method=self.command,
            # CONNECT's target is host:port, which is no URL
            path=self.path if self.command == "CONNECT" else parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            api=api,
            time=time.time(),
        )
        self.server.fake._record(entry)
        return entry, raw

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _route(self) -> str:
        path = urlsplit(self.path).path.rstrip("/")
        return path[3:] if path.startswith("/v1/") or path == "/v1" else path

    # -- methods -------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._record(None)
        self._send_json(200, {})

    def do_GET(self) -> None:
        route = self._route()
        self._record(None)
        if route in ("", "/v1"):
            self._send_json(200, {"ok": True, "server": "fake-model-server"})
        elif route == "/models":
            self._send_json(200, self.server.fake._models())
        else:
            self._not_found(route)

    def do_POST(self) -> None:
        route = self._route()
        if route == "/chat/completions":
            entry, _ = self._record(OPENAI)
            self._model_call(entry, OPENAI)
        elif route == "/messages":
            entry, _ = self._record(ANTHROPIC)
            self._model_call(entry, ANTHROPIC)
        elif route == "/responses":
            entry, _ = self._record(RESPONSES)
            self._model_call(entry, RESPONSES)
        elif route == "/messages/count_tokens":
            entry, _ = self._record(None)
            body = entry.body if isinstance(entry.body, dict) else {}
            tokens = _estimate_tokens(
                {k: body.get(k) for k in ("system", "messages", "tools") if k in body}
            )
            self._send_json(200, {"input_tokens": tokens})
        else:
            self._record(None)
            self._not_found(route)

    def _other(self) -> None:
        """Any other method (CONNECT from a client told to use this as its proxy, ...)."""
        self._record(None)
        self.close_connection = True
        self._send_json(
            405,
            {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}},
        )

    do_CONNECT = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _other

    def _not_found(self, route: str) -> None:
        message = f"fake model server: no route {self.command} {route or '/'}"
        self._send_json(
            404,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": message, "code": None},
            },
        )

    # -- model calls ---------------------------------------------------------------------

    def _model_call(self, entry: RecordedRequest, api: str) -> None:
        body = entry.body
        if not isinstance(body, dict):
            self._error(api, ErrorReply(400, "the request body must be a JSON object"))
            return
        try:
            reply = self.server.fake._respond(body, api)
        except Exception as exc:
            self.server.fake._record_error(exc)
            self._error(api, ErrorReply(500, f"responder failed: {exc!r}", "api_error"))
            return
        if isinstance(reply, ErrorReply):
            self._error(api, reply)
            return
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        model = str(body.get("model") or "fake-model")
        stream = bool(body.get("stream"))
        try:
            if api == OPENAI:
                if stream:
                    self._openai_stream(body, reply, model)
                else:
                    self._send_json(200, _openai_message(body, reply, model))
            elif api == RESPONSES:
                if stream:
                    self._responses_stream(body, reply, model)
                else:
                    self._send_json(200, _responses_object(body, reply, model))
            elif stream:
                self._anthropic_stream(body, reply, model)
            else:
                self._send_json(200, _anthropic_message(body, reply, model))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer

    def _error(self, api: str, error: ErrorReply) -> None:
        if api == ANTHROPIC:
            kind = error.type or _ANTHROPIC_ERROR_TYPES.get(error.status, "api_error")
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": error.message},
            }
        else:
            kind = error.type or _OPENAI_ERROR_TYPES.get(error.status, "server_error")
            payload = {
                "error": {"message": error.message, "type": kind, "param": None, "code": None}
            }
        extra = {"Retry-After": "0"} if error.status in (429, 503, 529) else None
        self._send_json(error.status, payload, extra)

    def _sse(self, data: Any, event: str | None = None) -> None:
        text = "" if event is None else f"event: {event}\n"
        payload = data if isinstance(data, str) else json.dumps(data)
        self._write_chunk(f"{text}data: {payload}\n\n".encode())

    def _openai_stream(self, body: dict[str, Any], reply: Reply, model: str) -> None:
        cid, created = _new_id("chatcmpl-"), int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        self._start_stream()
        self._sse(chunk({"role": "assistant", "content": ""}))
        if reply.text:
            for piece in _chunks(reply.text, reply.chunk_size):
                self._pause(reply)
                self._sse(chunk({"content": piece}))
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": call.id or _new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            self._sse(chunk({"tool_calls": [head]}))
            for piece in _chunks(json.dumps(call.input), reply.chunk_size):
                self._pause(reply)
                self._sse(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        self._sse(chunk({}, _openai_finish(reply)))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = chunk({})
            usage["choices"] = []
            usage["usage"] = _openai_usage(body, reply)
            self._sse(usage)
        self._sse("[DONE]")
        self._end_stream()

    def _anthropic_stream(self, body: dict[str, Any], reply: Reply, model: str) -> None:
        message = _anthropic_message(body, reply, model)
        blocks = message["content"]
        start = dict(message, content=[], stop_reason=None, stop_sequence=None)
        start["usage"] = dict(message["usage"], output_tokens=1)
        self._start_stream()
        self._sse({"type": "message_start", "message": start}, "message_start")
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                opening: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": piece}
                    for piece in _chunks(block["text"], reply.chunk_size)
                ]
            else:
                opening = {"type": "tool_use", "id": block["id"], "name": block["name"]}
                opening["input"] = {}
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in _chunks(json.dumps(block["input"]), reply.chunk_size)
                ]
            self._sse(
                {"type": "content_block_start", "index": index, "content_block": opening},
                "content_block_start",
            )
            if index == 0:
                self._sse({"type": "ping"}, "ping")
            for delta in deltas:
                self._pause(reply)
                self._sse(
                    {"type": "content_block_delta", "index": index, "delta": delta},
                    "content_block_delta",
                )
            self._sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        self._sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
            "message_delta",
        )
        self._sse({"type": "message_stop"}, "message_stop")
        self._end_stream()

    def _responses_stream(self, body: dict[str, Any], reply: Reply, model: str) -> None:
        final = _responses_object(body, reply, model)
        counter = iter(range(1_000_000))

        def send(kind: str, **fields: Any) -> None:
            self._sse({"type": kind, "sequence_number": next(counter), **fields}, kind)

        opening = dict(final, status="in_progress", output=[], usage=None)
        opening["incomplete_details"] = None
        self._start_stream()
        send("response.created", response=opening)
        send("response.in_progress", response=opening)
        for index, item in enumerate(final["output"]):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                send(
                    "response.output_item.added",
                    output_index=index,
                    item=dict(item, status="in_progress", content=[]),
                )
                empty = {"type": "output_text", "text": "", "annotations": []}
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                send("response.content_part.added", **where, part=empty)
                for piece in _chunks(text, reply.chunk_size):
                    self._pause(reply)
                    send("response.output_text.delta", **where, delta=piece, logprobs=[])
                send("response.output_text.done", **where, text=text, logprobs=[])
                send("response.content_part.done", **where, part=item["content"][0])
            else:
                custom = item["type"] == "custom_tool_call"
                field_name = "input" if custom else "arguments"
                prefix = (
                    "response.custom_tool_call_input"
                    if custom
                    else ("response.function_call_arguments")
                )
                send(
                    "response.output_item.added",
                    output_index=index,
                    item=dict(item, status="in_progress", **{field_name: ""}),
                )
                where = {"item_id": item["id"], "output_index": index}
                for piece in _chunks(item[field_name], reply.chunk_size):
                    self._pause(reply)
                    send(f"{prefix}.delta", **where, delta=piece)
                send(f"{prefix}.done", **where, **{field_name: item[field_name]})
            send("response.output_item.done", output_index=index, item=item)
        done = "response.completed" if final["status"] == "completed" else "response.incomplete"
        send(done, response=final)
        self._end_stream()

    @staticmethod
    def _pause(reply: Reply) -> None:
        if reply.chunk_delay_s > 0:
            time.sleep(reply.chunk_delay_s)


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def _output_tokens(reply: Reply) -> int:
    if reply.output_tokens is not None:
        return reply.output_tokens
    return _estimate_tokens(reply.text + "".join(json.dumps(c.input) for c in reply.tool_calls))


def _input_tokens(body: dict[str, Any], reply: Reply) -> int:
    if reply.input_tokens is not None:
        return reply.input_tokens
    return _estimate_tokens({k: body.get(k) for k in ("system", "messages", "tools") if k in body})


def _openai_finish(reply: Reply) -> str:
    return reply.stop_reason or ("tool_calls" if reply.tool_calls else "stop")


def _openai_usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt, completion = _input_tokens(body, reply), _output_tokens(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _openai_message(body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or _new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.input)},
            }
            for call in reply.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _openai_finish(reply),
            }
        ],
        "usage": _openai_usage(body, reply),
    }


_INCOMPLETE_STOPS = ("length", "max_tokens", "max_output_tokens")


def _custom_tools(body: dict[str, Any]) -> set[str]:
    """Names of the freeform (type custom) tools a Responses request declares."""
    return {
        str(tool.get("name"))
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "custom"
    }


def _responses_object(body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
    """The whole Responses API `response` object for a reply (status completed/incomplete)."""
    output: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        output.append(
            {
                "id": _new_id("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    custom = _custom_tools(body)
    for call in reply.tool_calls:
        call_id = call.id or _new_id("call_")
        if call.name in custom:
            raw = call.input.get("input")
            output.append(
                {
                    "id": _new_id("ctc_"),
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": call.name,
                    "input": raw if isinstance(raw, str) else json.dumps(call.input),
                }
            )
        else:
            output.append(
                {
                    "id": _new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": call.name,
                    "arguments": json.dumps(call.input),
                }
            )
    incomplete = reply.stop_reason in _INCOMPLETE_STOPS
    prompt = (
        reply.input_tokens
        if reply.input_tokens is not None
        else _estimate_tokens(
            {k: body.get(k) for k in ("instructions", "input", "tools") if k in body}
        )
    )
    completion = _output_tokens(reply)
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def _anthropic_message(body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id or _new_id("toolu_"),
                "name": call.name,
                "input": call.input,
            }
        )
    stop = reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _input_tokens(body, reply),
            "output_tokens": _output_tokens(reply),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeModelServer


class FakeModelServer:
    """The fake OpenAI (chat completions, Responses) + Anthropic API server; see the module
    docstring."""

    def __init__(
        self, responder: Responder | None = None, host: str = "0.0.0.0", port: int = 0
    ) -> None:
        self.responder: Responder = responder or (lambda request, api: "OK")
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._gateway: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeModelServer:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-model-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("the fake model server is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Its root URL from this host, e.g. http://127.0.0.1:PORT."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def gateway(self) -> str:
        """The address containers on the default bridge network reach this host at."""
        if self._gateway is None:
            self._gateway = docker_bridge_gateway()
        return self._gateway

    @property
    def base_url_for_containers(self) -> str:
        """Its root URL from a container, e.g. http://172.17.0.1:PORT (Anthropic style)."""
        return f"http://{self.gateway}:{self.port}"

    @property
    def openai_base_url_for_containers(self) -> str:
        """The OpenAI-style base URL (with /v1) from a container."""
        return f"{self.base_url_for_containers}/v1"

    # -- what arrived --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def model_requests(self, api: str | None = None) -> list[RecordedRequest]:
        """The model calls (chat completions / messages / responses) so far, optionally of
        one API."""
        return [r for r in self.requests if r.api is not None and (api is None or r.api == api)]

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions the responder raised (each was answered with HTTP 500)."""
        with self._lock:
            return list(self._errors)

    def wait_for_requests(
        self, count: int, timeout: float = 30.0, api: str | None = None
    ) -> list[RecordedRequest]:
        """Block until at least `count` model calls arrived; return them (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [
                    r for r in self._requests if r.api is not None and (api is None or r.api == api)
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(found)} model calls arrived in {timeout} s, expected {count}"
                    )
                self._arrived.wait(remaining)

    def clear(self) -> None:
        """Forget the recorded requests and errors."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()

    # -- internals (request threads) -----------------------------------------------------

    def _record(self, entry: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(entry)
            self._arrived.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        traceback.print_exception(exc)
        with self._lock:
            self._errors.append(exc)

    def _respond(self, body: dict[str, Any], api: str) -> Reply | ErrorReply:
        reply = self.responder(body, api)
        if isinstance(reply, str):
            return Reply(text=reply)
        if not isinstance(reply, Reply | ErrorReply):
            raise TypeError(f"the responder returned {type(reply).__name__}, not a Reply")
        return reply

    def _models(self) -> dict[str, Any]:
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "fake-model-server",
                "type": "model",
                "display_name": name,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for name in FAKE_MODELS
        ]
        return {
            "object": "list",
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"],
            "last_id": data[-1]["id"],
        }
