"""The fake model server speaks the OpenAI (chat completions, Responses) and Anthropic wire
formats the SDKs and agents expect."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import fake_model_server as fms
from tests.fake_model_server import (
    ErrorReply,
    FakeModelServer,
    Reply,
    ToolCall,
    last_user_text,
    message_texts,
    sequence,
    tool_outputs,
)
from tests.polling import HTTP_TIMEOUT

OPENAI_REQUEST = {
    "model": "gpt-test",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ],
}
ANTHROPIC_REQUEST = {
    "model": "claude-test",
    "max_tokens": 100,
    "system": [{"type": "text", "text": "you are a test"}],
    "messages": [
        {"role": "user", "content": "write a file"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "written"},
                {"type": "text", "text": "now read it"},
            ],
        },
    ],
}
TOOL = ToolCall("Write", {"file_path": "/workspace/a.py", "content": "print('hi')\n"}, "tool_1")


def _openai_reply(request: dict[str, Any], api: str) -> Reply:
    return Reply(text="Hello there, this is a longer answer.", chunk_size=10)


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer(_openai_reply, host="127.0.0.1") as server:
        yield server


def _sse(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE body."""
    events: list[tuple[str | None, str]] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        event = None
        data = []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((event, "\n".join(data)))
    return events


# -- OpenAI ------------------------------------------------------------------------------


def test_openai_non_streaming(fake: FakeModelServer) -> None:
    r = httpx.post(
        f"{fake.base_url}/v1/chat/completions",
        json=OPENAI_REQUEST,
        headers={"Authorization": "Bearer sk-test"},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-test"
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello there, this is a longer answer.",
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    (recorded,) = fake.requests
    assert (recorded.method, recorded.path, recorded.api) == (
        "POST",
        "/v1/chat/completions",
        "openai",
    )
    assert recorded.body == OPENAI_REQUEST
    assert recorded.headers["authorization"] == "Bearer sk-test"


def test_openai_streaming_with_usage(fake: FakeModelServer) -> None:
    request = {**OPENAI_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    # without a /v1 prefix too, as when a client's base URL is the server's root
    with httpx.stream(
        "POST", f"{fake.base_url}/chat/completions", json=request, timeout=HTTP_TIMEOUT
    ) as r:
        r.read()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    events = _sse(r)
    assert all(event is None for event, _ in events)  # OpenAI sends bare data lines
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello there, this is a longer answer."
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"]]) > 3
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_openai_tool_calls_streamed_and_not() -> None:
    reply = Reply(text="", tool_calls=[TOOL], chunk_size=8)
    with FakeModelServer(lambda req, api: reply, host="127.0.0.1") as fake:
        url = f"{fake.base_url}/v1/chat/completions"
        body = httpx.post(url, json=OPENAI_REQUEST, timeout=HTTP_TIMEOUT).json()
        message = body["choices"][0]["message"]
        assert body["choices"][0]["finish_reason"] == "tool_calls"
        assert message["content"] is None
        (call,) = message["tool_calls"]
        assert call["id"] == "tool_1" and call["type"] == "function"
        assert call["function"]["name"] == "Write"
        assert json.loads(call["function"]["arguments"]) == TOOL.input

        streamed = httpx.post(url, json={**OPENAI_REQUEST, "stream": True}, timeout=HTTP_TIMEOUT)
        chunks = [json.loads(d) for _, d in _sse(streamed)[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks]
        calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
        assert calls[0]["id"] == "tool_1" and calls[0]["function"]["name"] == "Write"
        assert all(c["index"] == 0 for c in calls) and len(calls) > 2
        arguments = "".join(c["function"]["arguments"] for c in calls)
        assert json.loads(arguments) == TOOL.input
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_models_list_suits_both_sdks(fake: FakeModelServer) -> None:
    body = httpx.get(f"{fake.base_url}/v1/models", timeout=HTTP_TIMEOUT).json()
    assert body["object"] == "list" and body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    assert "fake-model" in ids and body["first_id"] == ids[0] and body["last_id"] == ids[-1]
    assert all(m["object"] == "model" and m["type"] == "model" for m in body["data"])


# -- Anthropic ---------------------------------------------------------------------------


def _anthropic(request: dict[str, Any], api: str) -> Reply:
    assert api == "anthropic"
    return Reply(text="I will write it.", tool_calls=[TOOL], chunk_size=5)


def test_anthropic_non_streaming() -> None:
    with FakeModelServer(_anthropic, host="127.0.0.1") as fake:
        r = httpx.post(
            f"{fake.base_url}/v1/messages?beta=true",
            json=ANTHROPIC_REQUEST,
            headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
            timeout=HTTP_TIMEOUT,
        )
        assert r.status_code == 200
        body = r.json()
        assert body["type"] == "message" and body["role"] == "assistant"
        assert body["model"] == "claude-test" and body["id"].startswith("msg_")
        assert body["content"] == [
            {"type": "text", "text": "I will write it."},
            {"type": "tool_use", "id": "tool_1", "name": "Write", "input": TOOL.input},
        ]
        assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
        assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
        (recorded,) = fake.requests
        assert (recorded.path, recorded.query, recorded.api) == (
            "/v1/messages",
            "beta=true",
            "anthropic",
        )
        assert recorded.headers["x-api-key"] == "sk-ant-test"


def test_anthropic_streaming_event_sequence() -> None:
    with FakeModelServer(_anthropic, host="127.0.0.1") as fake:
        request = {**ANTHROPIC_REQUEST, "stream": True}
        r = httpx.post(f"{fake.base_url}/v1/messages", json=request, timeout=HTTP_TIMEOUT)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r)
    datas = [json.loads(d) for _, d in events]
    # every event names its type twice, in the event line and in the data
    assert all(event == data["type"] for (event, _), data in zip(events, datas, strict=True))
    kinds = [d["type"] for d in datas]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    start = datas[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0

    blocks: dict[int, dict[str, Any]] = {}
    for data in datas:
        if data["type"] == "content_block_start":
            blocks[data["index"]] = {"start": data["content_block"], "deltas": [], "open": True}
        elif data["type"] == "content_block_delta":
            assert blocks[data["index"]]["open"]
            blocks[data["index"]]["deltas"].append(data["delta"])
        elif data["type"] == "content_block_stop":
            blocks[data["index"]]["open"] = False
    assert sorted(blocks) == [0, 1] and not any(b["open"] for b in blocks.values())
    text = blocks[0]
    assert text["start"] == {"type": "text", "text": ""}
    assert {d["type"] for d in text["deltas"]} == {"text_delta"}
    assert "".join(d["text"] for d in text["deltas"]) == "I will write it."
    tool = blocks[1]
    assert tool["start"] == {"type": "tool_use", "id": "tool_1", "name": "Write", "input": {}}
    assert {d["type"] for d in tool["deltas"]} == {"input_json_delta"}
    assert len(tool["deltas"]) > 2
    assert json.loads("".join(d["partial_json"] for d in tool["deltas"])) == TOOL.input
    delta = datas[-2]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0
    # a text-only reply is one text block that ends the turn
    with FakeModelServer(lambda req, api: "plain", host="127.0.0.1") as fake:
        r = httpx.post(f"{fake.base_url}/v1/messages", json=request, timeout=HTTP_TIMEOUT)
    datas = [json.loads(d) for _, d in _sse(r)]
    assert [d["content_block"]["type"] for d in datas if d["type"] == "content_block_start"] == [
        "text"
    ]
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_count_tokens(fake: FakeModelServer) -> None:
    r = httpx.post(
        f"{fake.base_url}/v1/messages/count_tokens", json=ANTHROPIC_REQUEST, timeout=HTTP_TIMEOUT
    )
    assert r.status_code == 200 and r.json()["input_tokens"] > 0
    assert fake.model_requests() == []  # not a model call: the responder is not asked
    assert fake.requests[0].path == "/v1/messages/count_tokens"


# -- OpenAI Responses API (Codex) --------------------------------------------------------

RESPONSES_REQUEST: dict[str, Any] = {
    "model": "gpt-test",
    "instructions": "you are codex",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "d"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ctx"}]},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "write a.py"}],
        },
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** x"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "Success"},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        {"type": "web_search"},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
}
EXEC = ToolCall("exec_command", {"cmd": "printf hi > a.py"}, "call_exec")
PATCH = "*** Begin Patch\n*** Add File: b.py\n+print(1)\n*** End Patch\n"
APPLY = ToolCall("apply_patch", {"input": PATCH}, "call_patch")


def _responses(request: dict[str, Any], api: str) -> Reply:
    assert api == "responses"
    return Reply(text="Writing both files.", tool_calls=[EXEC, APPLY], chunk_size=7)


def test_responses_non_streaming() -> None:
    with FakeModelServer(_responses, host="127.0.0.1") as fake:
        r = httpx.post(
            f"{fake.base_url}/v1/responses",
            json=RESPONSES_REQUEST,
            headers={"Authorization": "Bearer sk-codex"},
            timeout=HTTP_TIMEOUT,
        )
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["object"] == "response" and body["status"] == "completed"
        assert body["id"].startswith("resp_") and body["model"] == "gpt-test"
        assert body["incomplete_details"] is None and body["error"] is None
        message, function, custom = body["output"]
        assert message["type"] == "message" and message["role"] == "assistant"
        assert message["content"] == [
            {"type": "output_text", "text": "Writing both files.", "annotations": []}
        ]
        # a tool the request declares as a function: arguments are a JSON string
        assert function["type"] == "function_call" and function["call_id"] == "call_exec"
        assert function["name"] == "exec_command"
        assert json.loads(function["arguments"]) == EXEC.input
        # a tool it declares as custom (freeform): the input is the raw text
        assert custom["type"] == "custom_tool_call" and custom["call_id"] == "call_patch"
        assert custom["name"] == "apply_patch" and custom["input"] == PATCH
        assert len({item["id"] for item in body["output"]}) == 3
        usage = body["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
        assert usage["input_tokens_details"] == {"cached_tokens": 0}
        assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
        (recorded,) = fake.requests
        assert (recorded.method, recorded.path, recorded.api) == (
            "POST",
            "/v1/responses",
            "responses",
        )
        assert recorded.headers["authorization"] == "Bearer sk-codex"
        assert fake.model_requests("responses") == [recorded]
        assert fake.model_requests("openai") == []


def test_responses_streaming_event_sequence() -> None:
    with FakeModelServer(_responses, host="127.0.0.1") as fake:
        # without a /v1 prefix too, as when a client's base URL is the server's root
        r = httpx.post(
            f"{fake.base_url}/responses",
            json={**RESPONSES_REQUEST, "stream": True},
            timeout=HTTP_TIMEOUT,
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r)
    datas = [json.loads(d) for _, d in events]
    assert all(event == data["type"] for (event, _), data in zip(events, datas, strict=True))
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    kinds = [d["type"] for d in datas]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    created = datas[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    final = datas[-1]["response"]
    assert final["status"] == "completed" and final["id"] == created["id"]
    assert final["usage"]["output_tokens"] > 0

    # every item: added (empty), its deltas, done (whole), in output order
    added = [d for d in datas if d["type"] == "response.output_item.added"]
    done = [d for d in datas if d["type"] == "response.output_item.done"]
    assert [d["output_index"] for d in added] == [0, 1, 2] == [d["output_index"] for d in done]
    assert [d["item"] for d in done] == final["output"]
    assert added[0]["item"]["content"] == [] and added[0]["item"]["status"] == "in_progress"
    assert added[1]["item"]["arguments"] == "" and added[2]["item"]["input"] == ""

    text = [d["delta"] for d in datas if d["type"] == "response.output_text.delta"]
    assert len(text) > 1 and "".join(text) == "Writing both files."
    assert [d["type"] for d in datas if d.get("output_index") == 0] == [
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(text),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    args = [d["delta"] for d in datas if d["type"] == "response.function_call_arguments.delta"]
    assert len(args) > 1 and json.loads("".join(args)) == EXEC.input
    (args_done,) = [d for d in datas if d["type"] == "response.function_call_arguments.done"]
    assert json.loads(args_done["arguments"]) == EXEC.input
    patch = [d["delta"] for d in datas if d["type"] == "response.custom_tool_call_input.delta"]
    assert len(patch) > 1 and "".join(patch) == PATCH
    (patch_done,) = [d for d in datas if d["type"] == "response.custom_tool_call_input.done"]
    assert patch_done["input"] == PATCH and patch_done["item_id"] == done[2]["item"]["id"]


def test_responses_text_only_incomplete_and_errors() -> None:
    with FakeModelServer(lambda req, api: "plain", host="127.0.0.1") as fake:
        body = httpx.post(
            f"{fake.base_url}/v1/responses", json={"input": "hi"}, timeout=HTTP_TIMEOUT
        ).json()
        (item,) = body["output"]
        assert item["content"][0]["text"] == "plain" and body["model"] == "fake-model"
        assert fake.model_requests("responses")[0].body == {"input": "hi"}

    truncated = Reply(text="cut", stop_reason="max_output_tokens")
    with FakeModelServer(lambda req, api: truncated, host="127.0.0.1") as fake:
        r = httpx.post(
            f"{fake.base_url}/v1/responses",
            json={"input": "hi", "stream": True},
            timeout=HTTP_TIMEOUT,
        )
        last = json.loads(_sse(r)[-1][1])
        assert last["type"] == "response.incomplete"
        assert last["response"]["status"] == "incomplete"
        assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
        body = httpx.post(
            f"{fake.base_url}/v1/responses", json={"input": "hi"}, timeout=HTTP_TIMEOUT
        ).json()
        assert body["status"] == "incomplete"

    def plain_tool(req: dict[str, Any], api: str) -> Reply:
        return Reply(tool_calls=[ToolCall("apply_patch", {"input": "raw"})])

    with FakeModelServer(plain_tool, host="127.0.0.1") as fake:
        # no tools declared (so none is custom): a function call, its input as JSON
        body = httpx.post(
            f"{fake.base_url}/v1/responses", json={"input": "hi"}, timeout=HTTP_TIMEOUT
        ).json()
        (call,) = body["output"]  # no text: the tool call alone
        assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"input": "raw"}
        assert call["call_id"].startswith("call_")

    with FakeModelServer(lambda req, api: ErrorReply(429, "slow down"), host="127.0.0.1") as f:
        r = httpx.post(
            f"{f.base_url}/v1/responses", json={"input": "hi", "stream": True}, timeout=HTTP_TIMEOUT
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "0"
        assert r.json()["error"] == {
            "message": "slow down",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": None,
        }
        assert (
            httpx.post(
                f"{f.base_url}/v1/responses", content=b"[1]", timeout=HTTP_TIMEOUT
            ).status_code
            == 400
        )


def test_responses_request_helpers() -> None:
    assert last_user_text(RESPONSES_REQUEST) == "write a.py"
    assert message_texts(RESPONSES_REQUEST) == ["you are codex", "d", "ctx", "write a.py"]
    assert [o["call_id"] for o in tool_outputs(RESPONSES_REQUEST)] == ["c1", "c2"]
    # only the outputs after the last user message count: a new prompt starts afresh
    follow_up = dict(RESPONSES_REQUEST)
    follow_up["input"] = [
        *RESPONSES_REQUEST["input"],
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "more"}]},
    ]
    assert tool_outputs(follow_up) == [] and last_user_text(follow_up) == "more"
    assert last_user_text({"input": "just text"}) == "just text"
    assert message_texts({"input": "just text"}) == ["just text"]
    assert tool_outputs({"input": "just text"}) == [] and tool_outputs({}) == []
    # chat completions and Anthropic bodies are read as before
    assert tool_outputs(OPENAI_REQUEST) == []


# -- behaviour common to both ------------------------------------------------------------


def test_keep_alive_connection_serves_several_streams(fake: FakeModelServer) -> None:
    with httpx.Client(base_url=fake.base_url, timeout=HTTP_TIMEOUT) as client:
        for _ in range(3):
            r = client.post("/v1/chat/completions", json={**OPENAI_REQUEST, "stream": True})
            assert _sse(r)[-1] == (None, "[DONE]")
            r = client.post("/v1/messages", json={**ANTHROPIC_REQUEST, "stream": True})
            assert _sse(r)[-1][0] == "message_stop"
            r = client.post("/v1/responses", json={**RESPONSES_REQUEST, "stream": True})
            assert _sse(r)[-1][0] == "response.completed"
    assert [r.api for r in fake.model_requests()] == ["openai", "anthropic", "responses"] * 3


@pytest.mark.parametrize(
    ("path", "status", "check"),
    [
        ("/v1/chat/completions", 429, lambda b: b["error"]["type"] == "rate_limit_exceeded"),
        ("/v1/messages", 529, lambda b: b["error"]["type"] == "overloaded_error"),
        ("/v1/messages", 401, lambda b: b["type"] == "error"),
    ],
)
def test_error_replies_in_each_apis_shape(path: str, status: int, check: Any) -> None:
    with FakeModelServer(lambda req, api: ErrorReply(status, "try later"), host="127.0.0.1") as f:
        r = httpx.post(
            f"{f.base_url}{path}", json={"messages": [], "stream": True}, timeout=HTTP_TIMEOUT
        )
    assert r.status_code == status and check(r.json())
    assert "try later" in r.text


def test_responder_exception_is_a_500_and_recorded() -> None:
    def broken(request: dict[str, Any], api: str) -> Reply:
        raise RuntimeError("scripted failure")

    with FakeModelServer(broken, host="127.0.0.1") as fake:
        r = httpx.post(f"{fake.base_url}/v1/messages", json=ANTHROPIC_REQUEST, timeout=HTTP_TIMEOUT)
        assert r.status_code == 500 and "scripted failure" in r.json()["error"]["message"]
        (error,) = fake.errors
        assert isinstance(error, RuntimeError)
        r = httpx.post(
            f"{fake.base_url}/v1/chat/completions", content=b"not json", timeout=HTTP_TIMEOUT
        )
        assert r.status_code == 400
        assert len(fake.errors) == 1


def test_unknown_routes_and_methods_are_recorded(fake: FakeModelServer) -> None:
    assert httpx.get(f"{fake.base_url}/", timeout=HTTP_TIMEOUT).json()["ok"] is True
    assert httpx.get(f"{fake.base_url}/v1/nothing", timeout=HTTP_TIMEOUT).status_code == 404
    assert (
        httpx.put(f"{fake.base_url}/v1/messages", json={}, timeout=HTTP_TIMEOUT).status_code == 405
    )
    # a client told to use the server as its HTTPS proxy shows where it wanted to go
    with (
        httpx.Client(proxy=fake.base_url, timeout=HTTP_TIMEOUT) as client,
        pytest.raises(httpx.ProxyError),
    ):
        client.get("https://pypi.org/simple/")
    seen = [(r.method, r.path) for r in fake.requests]
    assert seen == [
        ("GET", "/"),
        ("GET", "/v1/nothing"),
        ("PUT", "/v1/messages"),
        ("CONNECT", "pypi.org:443"),
    ]
    assert fake.model_requests() == []


def test_sequence_and_wait_for_requests() -> None:
    responder = sequence("one", Reply(text="two"), ErrorReply(503, "busy"))
    with FakeModelServer(responder, host="127.0.0.1") as fake:
        url = f"{fake.base_url}/v1/chat/completions"

        def later() -> None:
            for _ in range(4):
                httpx.post(url, json=OPENAI_REQUEST, timeout=HTTP_TIMEOUT)

        thread = threading.Thread(target=later)
        thread.start()
        calls = fake.wait_for_requests(4, timeout=10, api="openai")
        thread.join()
        assert len(calls) == 4
        with pytest.raises(TimeoutError):
            fake.wait_for_requests(5, timeout=0.2)
        fake.clear()
        assert fake.requests == []
        r = httpx.post(url, json=OPENAI_REQUEST, timeout=HTTP_TIMEOUT)  # the last reply repeats
        assert r.status_code == 503 and r.headers["retry-after"] == "0"
    with pytest.raises(ValueError):
        sequence()


def test_slow_reply_timing() -> None:
    reply = Reply(text="abcdef", delay_s=0.2, chunk_size=2, chunk_delay_s=0.05)
    with FakeModelServer(lambda req, api: reply, host="127.0.0.1") as fake:
        r = httpx.post(
            f"{fake.base_url}/v1/messages",
            json={**ANTHROPIC_REQUEST, "stream": True},
            timeout=HTTP_TIMEOUT,
        )
    assert r.elapsed.total_seconds() >= 0.2 + 3 * 0.05
    texts = [json.loads(d)["delta"].get("text") for e, d in _sse(r) if e == "content_block_delta"]
    assert texts == ["ab", "cd", "ef"]


def test_request_text_helpers() -> None:
    assert last_user_text(OPENAI_REQUEST) == "second question"
    assert message_texts(OPENAI_REQUEST) == [
        "be brief",
        "first question",
        "first answer",
        "second question",
    ]
    assert last_user_text(ANTHROPIC_REQUEST) == "written\nnow read it"
    assert message_texts(ANTHROPIC_REQUEST)[0] == "you are a test"
    assert last_user_text({"messages": []}) == ""


def test_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModelServer()
    with pytest.raises(RuntimeError):
        fake.base_url  # noqa: B018 - not started: no port yet
    with fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"
        assert (
            httpx.get(f"{fake.base_url}/v1/models", timeout=HTTP_TIMEOUT).status_code == 200
        )  # bound on 0.0.0.0

        def no_docker(*args: Any, **kwargs: Any) -> None:
            raise OSError("no docker here")

        monkeypatch.setattr(subprocess, "run", no_docker)
        assert fake.base_url_for_containers == f"http://172.17.0.1:{fake.port}"
        assert fake.openai_base_url_for_containers == f"http://172.17.0.1:{fake.port}/v1"
    assert fms.DEFAULT_GATEWAY == "172.17.0.1"


def test_default_responder_says_ok() -> None:
    with FakeModelServer(host="127.0.0.1") as fake:
        body = httpx.post(
            f"{fake.base_url}/v1/messages", json=ANTHROPIC_REQUEST, timeout=HTTP_TIMEOUT
        ).json()
    assert body["content"] == [{"type": "text", "text": "OK"}]
    assert body["stop_reason"] == "end_turn"
