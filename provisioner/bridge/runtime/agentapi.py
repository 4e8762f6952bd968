"""coder/agentapi's wire model: agent types, the problem+json error model, and the OpenAPI
document the bridge serves (agentapi's own, vendored, extended with Dockyard's additions).

agentapi_openapi.json is agentapi v0.12.1's openapi.json, unchanged (coder/agentapi at
00ff7ffd); update it by copying a newer one over it. This module imports nothing heavy:
the config imports it before the agent starts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .wire import (
    BRIDGE_STATES,
    INPUT,
    LOG_ENTRY_HEAD,
    OUTPUT,
    PROMPT_STATES,
    SOURCE_AGENT,
    SOURCE_SCREEN,
    SOURCE_SETUP,
)

# agentapi's AgentType values (lib/msgfmt/msgfmt.go); `custom` is any other agent
AGENT_TYPES = (
    "claude", "goose", "aider", "codex", "gemini", "copilot", "amp", "cursor", "auggie",
    "amazonq", "opencode", "custom",
)  # fmt: skip
CUSTOM = "custom"
# agentapi's Transport: the bridge drives the agent's terminal, like agentapi's pty mode
TRANSPORT = "pty"
PROBLEM_JSON = "application/problem+json"
VENDORED = "agentapi_openapi.json"

# program names (or npm/PyPI package names) of agentapi's agents, when they differ from
# the agent type itself
_ALIASES = {
    "claude-code": "claude",
    "aider-chat": "aider",
    "gemini-cli": "gemini",
    "cursor-agent": "cursor",
    "q": "amazonq",
    "opencode-ai": "opencode",
    "goose-cli": "goose",
}
# programs that run the agent rather than being it: the agent is a later argument
_WRAPPERS = {"env", "exec", "nohup", "npx", "bunx", "pnpx", "uvx", "pipx", "stdbuf", "nice"}


def agent_type(command: list[str]) -> str:
    """agentapi's agent type of an agent command: the program it runs (`claude`, `aider`,
    `goose`, `codex`, ...; `npx -y @openai/codex` is `codex`), else `custom`."""
    for arg in command:
        if arg.startswith("-") or "=" in arg:
            continue  # an option of a wrapper, or an `env NAME=value`
        name = os.path.basename(arg).split("@", 1)[0].lower()
        if name in _WRAPPERS:
            continue
        name = _ALIASES.get(name, name)
        return name if name in AGENT_TYPES else CUSTOM
    return CUSTOM


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """agentapi's ErrorModel (huma's RFC 9457 problem details) for an error answer.

    `detail` says what went wrong in words (the server shows it as a refused prompt's
    reason); `errors` are huma's ErrorDetails: `location` (`body.content`, `query.after`),
    `message`, and optionally `value`.
    """
    from http import HTTPStatus  # the stdlib's: imported late, start-up stays lean

    body: dict[str, Any] = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def error_detail(location: str, message: str, value: Any = None) -> dict[str, Any]:
    """One ErrorDetail; a long string value is not echoed back whole."""
    detail: dict[str, Any] = {"location": location, "message": message}
    if value is not None:
        if isinstance(value, str) and len(value) > 200:
            value = value[:200] + "..."
        detail["value"] = value
    return detail


# -- the document -------------------------------------------------------------------------

_document: bytes | None = None


def vendored() -> dict[str, Any]:
    """agentapi's own OpenAPI document, as vendored (read from the zipapp too)."""
    import pkgutil

    data = pkgutil.get_data(__package__ or __name__, VENDORED)
    if data is None:
        raise FileNotFoundError(VENDORED)
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def document_bytes() -> bytes:
    """The bridge's OpenAPI document, JSON-encoded (built once)."""
    global _document
    if _document is None:
        _document = json.dumps(document(), indent=2, ensure_ascii=False).encode("utf-8")
    return _document


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {
    "description": "Error",
    "content": {PROBLEM_JSON: {"schema": _ref("ErrorModel")}},
}

_STATES = list(BRIDGE_STATES)


def _nullable(kind: str, description: str) -> dict[str, Any]:
    return {"type": kind, "nullable": True, "description": description}


def _object(
    properties: dict[str, Any], required: list[str], description: str, extra: bool = True
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        # Dockyard's own objects may grow fields; agentapi's keep theirs closed
        "additionalProperties": extra,
    }


def _schemas() -> dict[str, Any]:
    """Dockyard's components."""
    state = {
        "type": "string",
        "enum": _STATES,
        "description": "The bridge's own state; `idle` is agentapi's `stable`.",
    }
    return {
        "DockyardState": state,
        "DockyardStatus": _object(
            {
                "state": _ref("DockyardState"),
                "exit_code": _nullable("integer", "The agent's (or failed setup's) exit code."),
                "last_seq": {"type": "integer", "description": "The newest transcript entry."},
                "queued_prompts": {"type": "integer", "description": "Prompts not yet typed."},
                "state_source": {"type": "string", "enum": ["screen", "hooks"]},
                "state_reason": {"type": "string"},
                "hooks": _nullable("object", "What the agent's hooks said (hooks decide)."),
                "agent_pid": _nullable("integer", "The agent's process id while it runs."),
                "setup": {"type": "object", "description": "The setup script's state."},
                "oom_kills": _nullable("integer", "Read once the agent has exited."),
                "pids_limit_hits": _nullable("integer", "Read once the agent has exited."),
            },
            ["state", "exit_code", "last_seq", "queued_prompts"],
            "Dockyard's details of the bridge's state.",
        ),
        "TranscriptEntry": _object(
            {
                "seq": {"type": "integer"},
                "type": {"type": "string", "enum": [INPUT, OUTPUT]},
                "content": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "prompt_id": {"type": "string"},
                "raw": {"type": "boolean"},
                "partial": {"type": "boolean"},
                "source": {"type": "string", "enum": [SOURCE_SETUP, SOURCE_AGENT, SOURCE_SCREEN]},
            },
            list(LOG_ENTRY_HEAD),
            "One line of the transcript.",
        ),
        "Prompt": _object(
            {
                "id": {"type": "string"},
                "content": {"type": "string"},
                "state": {"type": "string", "enum": list(PROMPT_STATES)},
                "queued_at": _nullable("string", "When it was queued."),
                "delivered_at": _nullable("string", "When it was typed."),
                "taken_at": _nullable("string", "When the agent took it."),
                "assumed": {"type": "boolean"},
                "reason": _nullable("string", "Why it failed."),
            },
            ["id", "content", "state"],
            "A user prompt and its delivery.",
        ),
        "LogResponseBody": _object(
            {
                "entries": {"type": "array", "items": _ref("TranscriptEntry")},
                "last_seq": {"type": "integer"},
                "status": _ref("StatusResponseBody"),
                "prompts_version": {"type": "integer"},
                "prompts": {"type": "array", "items": _ref("Prompt")},
                "reports": {"type": "array", "items": _ref("Report")},
                "reports_last_seq": {"type": "integer"},
            },
            ["entries", "last_seq", "status"],
            "Transcript entries after a sequence number.",
        ),
        "Report": _object(
            {
                "seq": {"type": "integer", "minimum": 1},
                "id": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                **_report_fields(),
            },
            ["seq", "id", "time", "kind"],
            "A report the agent made with dockyard-task.",
        ),
        "ReportRequestBody": _object(
            _report_fields(),
            ["kind"],
            "A report: complete needs outcome, progress note, ask question, usage "
            "tokens_in and tokens_out; other fields are refused (422).",
            extra=False,
        ),
        "ReportResponseBody": _object(
            {"ok": {"type": "boolean"}, "id": {"type": "string"}, "seq": {"type": "integer"}},
            ["ok", "id", "seq"],
            "The report is kept (on disk).",
        ),
        "ReportsResponseBody": _object(
            {
                "reports": {"type": "array", "items": _ref("Report")},
                "last_seq": {"type": "integer"},
            },
            ["reports", "last_seq"],
            "Reports after a sequence number.",
        ),
        "PromptsResponseBody": _object(
            {"prompts": {"type": "array", "items": _ref("Prompt")}},
            ["prompts"],
            "Every prompt.",
        ),
        "HookRequestBody": _object(
            {
                "event": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": r"\S",
                    "description": "prompt_submitted, stop, ...",
                },
                "text": _nullable("string", "What the agent said in the turn."),
            },
            ["event"],
            "An agent hook event.",
        ),
        "HookResponseBody": _object(
            {
                "ok": {"type": "boolean"},
                "known": {"type": "boolean"},
                "state_source": {"type": "string"},
                "state": _ref("DockyardState"),
                "lines": {"type": "integer"},
            },
            ["ok", "known", "state_source", "state", "lines"],
            "What the bridge made of a hook event.",
        ),
        "HealthResponseBody": _object({"ok": {"type": "boolean"}}, ["ok"], "The bridge answers."),
    }


def _report_fields() -> dict[str, Any]:
    """A report's fields (task_command.check_report is the rule)."""
    # here, not at the top: the config imports this module before the agent starts
    from .task_command import (
        ERROR_CLASSES,
        KINDS,
        MAX_COST_USD,
        MAX_ERROR_CODE,
        MAX_MODEL,
        MAX_NOTE,
        MAX_OUTPUT,
        MAX_QUESTION,
        MAX_TOKENS,
        OUTCOMES,
    )

    def text(limit: int, description: str) -> dict[str, Any]:
        return {"type": "string", "maxLength": limit, "description": description}

    def count(description: str) -> dict[str, Any]:
        return {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS, "description": description}

    return {
        "kind": {"type": "string", "enum": list(KINDS)},
        "outcome": {"type": "string", "enum": list(OUTCOMES)},
        "error_code": text(MAX_ERROR_CODE, "complete: a code for the failure."),
        "error_class": {"type": "string", "enum": list(ERROR_CLASSES)},
        "output": text(MAX_OUTPUT, "complete: the result (bytes of UTF-8)."),
        "tokens_in": count("complete, usage."),
        "tokens_out": count("complete, usage."),
        "cost_usd": {"type": "number", "minimum": 0, "maximum": MAX_COST_USD},
        "model": text(MAX_MODEL, "complete, usage."),
        "note": text(MAX_NOTE, "progress (bytes of UTF-8)."),
        "question": text(MAX_QUESTION, "ask (bytes of UTF-8)."),
    }


def _query(name: str, kind: str, description: str, minimum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if minimum is not None:
        schema["minimum"] = minimum
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _paths() -> dict[str, Any]:
    """Dockyard's routes."""
    open_route: dict[str, Any] = {"security": []}
    return {
        "/openapi.json": {
            "get": {
                "operationId": "get-openapi",
                "summary": "This document",
                "description": "Needs no token, as /healthz: it is the same for every bridge.",
                **open_route,
                "responses": {"200": _json({"type": "object"}), "default": _ERROR},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "get-healthz",
                "summary": "Health",
                **open_route,
                "responses": {"200": _json(_ref("HealthResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/log": {
            "get": {
                "operationId": "get-dockyard-log",
                "summary": "Transcript entries, long-polling",
                "parameters": [
                    _query("after", "integer", "Entries with seq > after (default 0).", 0),
                    _query("wait", "number", "Seconds to wait while none (cap 30).", 0),
                    _query("limit", "integer", "At most this many (default 1000, cap 10000).", 1),
                    {
                        **_query("state", "string", "Answer at once when the state differs."),
                        "schema": _ref("DockyardState"),
                    },
                    _query("prompts", "integer", "A prompts_version: answer when prompts move."),
                    _query(
                        "reports_after",
                        "integer",
                        "The last report seq applied: carry newer reports, answer when one comes.",
                        0,
                    ),
                ],
                "responses": {"200": _json(_ref("LogResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/prompts": {
            "get": {
                "operationId": "get-dockyard-prompts",
                "summary": "Every prompt with its delivery",
                "responses": {"200": _json(_ref("PromptsResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/reports": {
            "get": {
                "operationId": "get-dockyard-reports",
                "summary": "The agent's reports after a sequence number",
                "parameters": [
                    _query("after", "integer", "Reports with seq > after (default 0).", 0),
                    _query("limit", "integer", "At most this many (default and cap 100).", 1),
                ],
                "responses": {"200": _json(_ref("ReportsResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/report": {
            "post": {
                "operationId": "post-dockyard-report",
                "summary": "A report from the agent (dockyard-task)",
                "description": (
                    "Only from inside the workspace (403 otherwise), with the report key "
                    "(`$DOCKYARD_REPORT_KEY_FILE`) as the bearer token, not the bridge "
                    "token. 409 after a complete report, 429 past the bounds."
                ),
                "security": [{"reportKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ReportRequestBody")}},
                },
                "responses": {"200": _json(_ref("ReportResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/mcp": {
            "post": {
                "operationId": "post-dockyard-mcp",
                "summary": "One MCP JSON-RPC message of the agent (dockyard-mcp)",
                "description": (
                    "Only from inside the workspace, with the report key as for "
                    "/dockyard/report. Held until the Dockyard server's relay answers it "
                    "with what its /mcp answered (504 after 120 s without, 429 past 16 "
                    "waiting)."
                ),
                "security": [{"reportKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": _json({"type": "object"}), "default": _ERROR},
            }
        },
        "/dockyard/mcp/requests": {
            "get": {
                "operationId": "get-dockyard-mcp-requests",
                "summary": "The agent's MCP messages for the server, long-polling",
                "parameters": [
                    _query("wait", "number", "Seconds to wait while none (cap 30).", 0),
                ],
                "responses": {"200": _json({"type": "object"}), "default": _ERROR},
            }
        },
        "/dockyard/mcp/answer": {
            "post": {
                "operationId": "post-dockyard-mcp-answer",
                "summary": "The server's answer to one MCP message",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": _json({"type": "object"}), "default": _ERROR},
            }
        },
        "/dockyard/hook": {
            "post": {
                "operationId": "post-dockyard-hook",
                "summary": "An agent hook event",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("HookRequestBody")}},
                },
                "responses": {"200": _json(_ref("HookResponseBody")), "default": _ERROR},
            }
        },
        "/dockyard/exec": {
            "post": {
                "operationId": "post-dockyard-exec",
                "summary": "Run an argv (never a shell) to its end as the workspace user: "
                "{argv, env, timeout} -> {exit_code, output, truncated, timed_out}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": _json({"type": "object"}), "default": _ERROR},
            }
        },
        "/dockyard/session": {
            "get": {
                "operationId": "get-dockyard-session",
                "summary": "Upgrade: dockyard-stream; a command with its input and output "
                "open, in frames (type byte, 4-byte length, payload)",
                "responses": {"101": {"description": "Switching Protocols"}, "default": _ERROR},
            }
        },
        "/dockyard/connect": {
            "get": {
                "operationId": "get-dockyard-connect",
                "summary": "Upgrade: dockyard-stream; a TCP stream to a workspace port",
                "parameters": [_query("port", "integer", "The port (1-65535).", 1)],
                "responses": {"101": {"description": "Switching Protocols"}, "default": _ERROR},
            }
        },
    }


def document() -> dict[str, Any]:
    """agentapi's document extended with what the bridge adds: Dockyard's fields on
    agentapi's bodies (all optional to a client; agentapi's required fields stay), its
    /dockyard routes, and the bearer token every other route needs. POST /upload is left
    out: the bridge does not serve it."""
    doc = vendored()  # a fresh copy
    upstream = doc["info"]["version"]
    doc["info"] = {
        "title": "AgentAPI (Dockyard bridge)",
        "version": upstream,
        "description": (
            "The Dockyard bridge's HTTP API: coder/agentapi's, to its document "
            f"(v{upstream}), plus Dockyard's fields and /dockyard routes. Every route but "
            "/healthz and /openapi.json needs `Authorization: Bearer <bridge token>`.\n\n"
            "https://github.com/coder/agentapi"
        ),
    }
    doc["paths"].pop("/upload", None)
    schemas = doc["components"]["schemas"]
    schemas.update(_schemas())
    schemas["StatusResponseBody"]["properties"]["dockyard"] = _ref("DockyardStatus")
    schemas["StatusChangeBody"]["properties"]["state"] = _ref("DockyardState")
    schemas["MessageRequestBody"]["description"] = (
        "Dockyard: a `user` message must hold more than whitespace (agentapi refuses it "
        "too); it is a 422."
    )
    # agentapi refuses an empty message too (as a 500); the bridge with a 422
    schemas["MessageRequestBody"]["properties"]["content"]["minLength"] = 1
    schemas["MessageRequestBody"]["properties"]["id"] = {
        "type": "string",
        "minLength": 1,
        "pattern": r"\S",
        "description": (
            "Dockyard: the prompt's id. A POST retried with the same id and content queues "
            "it once; the same id with other content is a 409."
        ),
    }
    schemas["MessageResponseBody"]["properties"]["id"] = {
        "type": "string",
        "description": "Dockyard: the prompt's id (given, or made up).",
    }
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "reportKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "The workspace's report key: POST /dockyard/report only.",
        },
    }
    doc["security"] = [{"bearer": []}]
    doc["paths"].update(_paths())
    return doc
