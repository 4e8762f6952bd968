"""The bridge speaks agentapi to the letter: live answers of a real bridge (real pty, the
offline scripted agent) checked against coder/agentapi's own OpenAPI document, vendored at
provisioner/bridge/runtime/agentapi_openapi.json (agentapi v0.12.1, commit 00ff7ffd).

Every answer is checked twice: against agentapi's document, where Dockyard's extra fields
are allowed (additionalProperties relaxed) but agentapi's required fields, types, enums and
formats are enforced; and strictly against the document the bridge serves at
/openapi.json, which must describe every field the bridge sends.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_bridge_local import TOKEN, BridgeRunner, wait_stable, wait_until

from provisioner.bridge.client import BridgeClient
from provisioner.bridge.package import build_zipapp
from provisioner.bridge.runtime import wire
from provisioner.bridge.runtime.agentapi import document
from provisioner.bridge.runtime.http import MAX_BODY
from tests.polling import HTTP_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
AGENTAPI = json.loads(
    (REPO / "provisioner" / "bridge" / "runtime" / "agentapi_openapi.json").read_text()
)
# agentapi's AgentType (lib/msgfmt/msgfmt.go): its document types agent_type as a plain
# string, the Go type holds these values
AGENT_TYPES = {
    "claude", "goose", "aider", "codex", "gemini", "copilot", "amp", "cursor", "auggie",
    "amazonq", "opencode", "custom",
}  # fmt: skip
TRANSPORTS = {"pty", "acp"}
# RFC 3339 date-time, as Go's time.Time marshals and agentapi's clients parse it
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
PROBLEM_JSON = "application/problem+json"

# -- a small OpenAPI 3.0 schema walker (the subset agentapi's document uses) ---------------


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:  # OpenAPI 3.0: siblings of a $ref (a description) are ignored
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


_TYPES: dict[str, Any] = {
    "string": str,
    "object": dict,
    "array": list,
    "boolean": bool,
    "number": (int, float),
    "integer": int,
}


def schema_errors(
    value: Any, schema: dict[str, Any], doc: dict[str, Any], strict: bool, at: str = "$"
) -> list[str]:
    """What is wrong with `value` against `schema` (a part of `doc`). `strict`: an object
    may hold no property its schema does not name where additionalProperties is false;
    otherwise extra properties (Dockyard's additions) pass."""
    schema = _resolve(schema, doc)
    if value is None and schema.get("nullable"):
        return []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not schema_errors(value, s, doc, strict, at)]
        return [] if len(matches) == 1 else [f"{at}: matches {len(matches)} of oneOf"]
    errors: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        expected = _TYPES[kind]
        is_bool = isinstance(value, bool)
        if not isinstance(value, expected) or (is_bool and kind in ("integer", "number")):
            return [f"{at}: {value!r} is not of type {kind}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if schema.get("format") == "date-time" and not RFC3339.match(value):
        errors.append(f"{at}: {value!r} is not an RFC 3339 date-time")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{at}: required property {name!r} is missing")
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], doc, strict, f"{at}.{name}")
            elif strict and schema.get("additionalProperties") is False:
                errors.append(f"{at}: property {name!r} is not in the schema")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], doc, strict, f"{at}[{i}]")
    return errors


def _json_schema(doc: dict[str, Any], name: str, strict: bool) -> dict[str, Any]:
    """Component `name` as a JSON Schema (2020-12) for the jsonschema package: nullable
    turned into a null type; without `strict`, additionalProperties relaxed to allow
    Dockyard's extra fields (required fields, types and enums still hold)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: convert(v) for k, v in node.items() if k not in ("example", "nullable")}
        if node.get("nullable") and "type" in node:
            out["type"] = [node["type"], "null"]
        if not strict and out.get("additionalProperties") is False:
            del out["additionalProperties"]
        if "$ref" in out:  # a sibling description beside a $ref says nothing to check
            out = {"$ref": out["$ref"]}
        return out

    return {"$ref": f"#/components/schemas/{name}", "components": convert(doc["components"])}


def assert_conforms(value: Any, name: str, doc: dict[str, Any], strict: bool = False) -> None:
    """`value` is a valid `name` (a component schema of `doc`), by the walker and, when
    it is installed, by jsonschema too."""
    schema = {"$ref": f"#/components/schemas/{name}"}
    errors = schema_errors(value, schema, doc, strict)
    assert not errors, f"{name}: {errors}\n{json.dumps(value)[:2000]}"
    try:
        import jsonschema
    except ImportError:  # the walker alone then
        return
    checker = copy.deepcopy(jsonschema.Draft202012Validator.FORMAT_CHECKER)
    checker.checks("date-time")(lambda text: not isinstance(text, str) or bool(RFC3339.match(text)))
    validator = jsonschema.Draft202012Validator(
        _json_schema(doc, name, strict), format_checker=checker
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
    assert not problems, f"{name} (jsonschema): {problems}"


def assert_both(value: Any, name: str, served: dict[str, Any]) -> None:
    """agentapi's schema with extras allowed, and the bridge's own document strictly."""
    assert_conforms(value, name, AGENTAPI)
    assert_conforms(value, name, served, strict=True)


def assert_problem(response: httpx.Response, status: int, served: dict[str, Any]) -> None:
    """An error as agentapi (huma) answers one: RFC 9457 problem+json, its ErrorModel."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert_both(body, "ErrorModel", served)
    assert body["status"] == status and body["title"] and body["detail"], body


def _event_schemas(doc: dict[str, Any]) -> dict[str, str]:
    """SSE event name -> the component its data is, from /events' documented stream."""
    media = doc["paths"]["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    out = {}
    for option in media["schema"]["items"]["oneOf"]:
        name = option["properties"]["event"]["const"]
        out[name] = option["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    return out


def read_events(response: httpx.Response, count: int) -> list[tuple[str, Any]]:
    """The first `count` server-sent events of a stream."""
    events: list[tuple[str, Any]] = []
    name, data = "", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data += line[len("data:") :].strip()
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "", ""
            if len(events) == count:
                break
    return events


# -- the bridge ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def bridge(zipapp: Path, tmp_path: Path) -> Iterator[tuple[BridgeClient, httpx.Client]]:
    runner = BridgeRunner(zipapp, tmp_path)
    try:
        client = runner.start(initial_prompt="conform", initial_prompt_id="first")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=client.base_url, headers=headers, timeout=HTTP_TIMEOUT) as http:
            yield client, http
    finally:
        runner.cleanup()


def test_the_vendored_document_is_agentapis() -> None:
    assert AGENTAPI["info"]["title"] == "AgentAPI" and AGENTAPI["info"]["version"] == "0.12.1"
    assert {"/status", "/messages", "/message", "/events"} <= set(AGENTAPI["paths"])


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (wire.LogEntry, "TranscriptEntry"),
        (wire.DockyardStatus, "DockyardStatus"),
        (wire.PromptRecord, "Prompt"),
        (wire.LogReply, "LogResponseBody"),
    ],
)
def test_the_served_document_describes_the_wire_records(record: Any, name: str) -> None:
    # the typed records the server reads and the schemas a bridge client learns name the
    # same fields; the document may leave optional fields unrequired, never the reverse
    schema = document()["components"]["schemas"][name]
    assert set(schema["properties"]) == set(record.__annotations__)
    assert set(schema["required"]) <= record.__required_keys__
    if name == "TranscriptEntry":
        assert set(schema["required"]) == record.__required_keys__


@pytest.mark.parametrize(
    ("value", "name"),
    [
        # what the bridge answered before it spoke agentapi to the letter
        ({"status": "stable", "dockyard": {"state": "idle"}}, "StatusResponseBody"),
        ({"status": "stable", "state": "idle"}, "StatusChangeBody"),
        # wrong values and types
        ({"status": "idle", "agent_type": "custom", "transport": "pty"}, "StatusResponseBody"),
        ({"status": "stable", "agent_type": "custom", "transport": "ssh"}, "StatusResponseBody"),
        ({"id": "1", "role": "agent", "content": "x", "time": "2026-01-01T00:00:00Z"}, "Message"),
        ({"id": 1, "role": "bot", "content": "x", "time": "2026-01-01T00:00:00Z"}, "Message"),
        ({"id": 1, "role": "user", "content": "x", "time": "yesterday"}, "Message"),
        ({"ok": 1}, "MessageResponseBody"),
        ({"messages": None}, "MessagesResponseBody"),
        ({"status": "400"}, "ErrorModel"),
    ],
)
def test_the_checks_catch_what_agentapi_would_not_send(value: Any, name: str) -> None:
    with pytest.raises(AssertionError):
        assert_conforms(value, name, AGENTAPI)


def test_extra_fields_pass_only_where_relaxed() -> None:
    status = {"status": "running", "agent_type": "claude", "transport": "pty", "extra": 1}
    assert_conforms(status, "StatusResponseBody", AGENTAPI)
    with pytest.raises(AssertionError):
        assert_conforms(status, "StatusResponseBody", AGENTAPI, strict=True)
    # the old error body has no field ErrorModel requires; strictly it is not one at all
    with pytest.raises(AssertionError):
        assert_conforms({"error": "missing or wrong bearer token"}, "ErrorModel", AGENTAPI, True)


def test_every_agentapi_route_answers_as_its_document_says(
    bridge: tuple[BridgeClient, httpx.Client], tmp_path: Path
) -> None:
    client, http = bridge
    wait_stable(client)

    # GET /openapi.json: agentapi serves its document there, without a token (it has no
    # auth); the bridge serves agentapi's document extended with Dockyard's additions
    schema_answer = httpx.get(f"{client.base_url}/openapi.json", timeout=HTTP_TIMEOUT)
    assert schema_answer.status_code == 200, schema_answer.text
    assert schema_answer.headers["content-type"].startswith("application/json")
    served = schema_answer.json()
    assert served["openapi"] == AGENTAPI["openapi"]
    for path, operations in AGENTAPI["paths"].items():
        if path == "/upload":
            continue  # not served by the bridge (files reach a workspace otherwise)
        for method, operation in operations.items():
            mine = served["paths"][path][method]
            assert mine["operationId"] == operation["operationId"]
            assert set(mine["responses"]) >= set(operation["responses"]), path
    for name, schema in AGENTAPI["components"]["schemas"].items():
        mine = served["components"]["schemas"][name]
        assert set(mine.get("required", [])) >= set(schema.get("required", [])), name
        for prop, definition in schema.get("properties", {}).items():
            # the same property; the bridge's document may only add constraints to it
            served_prop = mine["properties"][prop]
            assert served_prop.items() >= definition.items(), (name, prop)
        for key in ("type", "enum"):
            assert mine.get(key) == schema.get(key), (name, key)
    assert {"/dockyard/log", "/dockyard/prompts", "/dockyard/hook"} <= set(served["paths"])

    # GET /status
    response = http.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    status = response.json()
    assert_both(status, "StatusResponseBody", served)
    assert status["status"] == "stable" and status["transport"] == "pty"
    assert status["agent_type"] in AGENT_TYPES
    assert status["agent_type"] == "custom"  # the scripted agent is none of agentapi's
    assert status["dockyard"]["state"] == "idle"  # Dockyard's extra field stays

    # GET /messages
    response = http.get("/messages")
    assert response.status_code == 200
    messages = response.json()
    assert_both(messages, "MessagesResponseBody", served)
    turns = messages["messages"]
    assert [m["role"] for m in turns] == ["agent", "user", "agent"], turns
    assert [m["id"] for m in turns] == list(range(len(turns)))
    assert turns[1]["content"] == "conform" and "Done: conform" in turns[2]["content"]

    # GET /events: first the events that rebuild the current state
    with httpx.stream(
        "GET", f"{client.base_url}/events", headers=http.headers, timeout=HTTP_TIMEOUT
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = read_events(stream, 1 + len(turns))
    schemas = _event_schemas(AGENTAPI)
    for name, data in events:
        assert name in schemas, name
        assert_both(data, schemas[name], served)
    assert events[0][0] == "status_change"
    assert events[0][1]["status"] == "stable" and events[0][1]["agent_type"] == "custom"
    updates = [data for name, data in events if name == "message_update"]
    assert [(u["id"], u["role"], u["message"]) for u in updates] == [
        (m["id"], m["role"], m["content"]) for m in turns
    ]

    # POST /message: a user message, then (once it is answered: keys typed before the
    # queued prompt would join its line) raw keys, agentapi's use: an escape sequence
    for body in ({"content": "again", "type": "user"}, {"content": "\x1b", "type": "raw"}):
        response = http.post("/message", json=body)
        assert response.status_code == 200, response.text
        assert_both(response.json(), "MessageResponseBody", served)
        assert response.json()["ok"] is True
        if body["type"] == "user":
            wait_until(
                lambda: any("Done: again" in m["content"] for m in client.messages()),
                30,
                "the reply",
            )

    # POST /message refused: a body that is JSON but not a MessageRequestBody is agentapi's
    # 422 (huma's "validation failed"); a body that is not JSON at all is huma's 400
    invalid: list[Any] = [
        {},
        {"content": "x"},  # type is required
        {"type": "user"},
        {"content": "x", "type": "shout"},
        {"content": 5, "type": "user"},
        {"content": "x", "type": "user", "id": 7},
        {"content": "x", "type": "user", "id": None},  # a string, if there at all
        {"content": "x", "type": "user", "extra": 1},  # agentapi allows no other property
        [1],
    ]
    for body in invalid:
        response = http.post("/message", json=body)
        assert_problem(response, 422, served)
        assert response.json()["errors"], body
        assert all(e["location"].startswith("body") for e in response.json()["errors"])
    assert_problem(http.post("/message", content=b"{not json"), 400, served)

    # Dockyard's routes answer as the served document says, strictly
    response = http.get("/dockyard/log", params={"after": 0, "prompts": 0})
    assert_conforms(response.json(), "LogResponseBody", served, strict=True)
    assert response.json()["entries"] and response.json()["prompts"]
    response = http.get("/dockyard/prompts")
    assert_conforms(response.json(), "PromptsResponseBody", served, strict=True)
    response = http.post("/dockyard/hook", json={"event": "notification", "text": "hi"})
    assert_conforms(response.json(), "HookResponseBody", served, strict=True)
    response = httpx.get(f"{client.base_url}/healthz", timeout=HTTP_TIMEOUT)
    assert_conforms(response.json(), "HealthResponseBody", served, strict=True)
    # reports: made with the workspace's report key (BridgeRunner's state dir), read with
    # the bridge token
    key = (tmp_path / "state" / "report-key").read_text().strip()
    as_agent = {"Authorization": f"Bearer {key}"}
    report = {"kind": "usage", "tokens_in": 3, "tokens_out": 4, "cost_usd": 0.1, "model": "m"}
    response = http.post("/dockyard/report", json=report, headers=as_agent)
    assert_conforms(response.json(), "ReportResponseBody", served, strict=True)
    response = http.get("/dockyard/reports", params={"after": 0})
    assert_conforms(response.json(), "ReportsResponseBody", served, strict=True)
    response = http.get("/dockyard/log", params={"after": 0, "reports_after": 0})
    assert_conforms(response.json(), "LogResponseBody", served, strict=True)
    assert response.json()["reports"][0]["tokens_in"] == 3
    bad = {"kind": "usage", "tokens_in": -3, "tokens_out": 4}
    assert_problem(http.post("/dockyard/report", json=bad, headers=as_agent), 422, served)
    assert_problem(http.post("/dockyard/report", json=report), 401, served)  # bridge token
    assert_problem(http.get("/dockyard/log", params={"reports_after": -1}), 422, served)
    assert_problem(http.post("/dockyard/hook", json={"event": 5}), 422, served)
    assert_problem(http.get("/dockyard/log", params={"after": "x"}), 422, served)

    # Dockyard's own answers keep their statuses, in the same error model
    assert_problem(httpx.get(f"{client.base_url}/status", timeout=HTTP_TIMEOUT), 401, served)
    assert_problem(http.get("/nowhere"), 404, served)
    assert_problem(http.get("/message"), 405, served)
    too_big = json.dumps({"content": "x" * (MAX_BODY + 1), "type": "user"})
    assert_problem(
        http.post("/message", content=too_big, headers={"Content-Type": "application/json"}),
        413,
        served,
    )
    # the same connection still works after the refusals
    assert http.get("/status").status_code == 200
