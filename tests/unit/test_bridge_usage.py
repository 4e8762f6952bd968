"""Usage read from what agents write down anyway: Claude Code's transcript, Codex's session
log, Aider's usage lines. The samples are built from what the fake model server answers
(the same bodies the Docker-tier agent tests get), wrapped as each agent records them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioner.bridge.runtime.usage import AiderReport, ClaudeTranscript, CodexSession, Usage
from tests.fake_model_server import Reply, ToolCall, _anthropic_message, _responses_object

BODY = {"messages": [{"role": "user", "content": "Create hello.py"}]}


def claude_entries(message: dict[str, Any], **extra: Any) -> list[str]:
    """One transcript line per content block, each with the whole message's usage, as
    Claude Code writes a streamed message."""
    lines = []
    for block in message["content"]:
        entry = {
            "parentUuid": None,
            "isSidechain": False,
            "type": "assistant",
            "uuid": f"u-{len(lines)}-{message['id']}",
            "requestId": "req_1",
            "message": {**message, "content": [block]},
            **extra,
        }
        lines.append(json.dumps(entry, separators=(",", ":")))
    return lines


def test_claude_code_counts_each_message_once_with_its_cache_tokens() -> None:
    reply = Reply(text="I'll create it.", tool_calls=[ToolCall("Write", {"file_path": "a"})],
                  input_tokens=1200, output_tokens=80)  # fmt: skip
    first = _anthropic_message(BODY, reply, "claude-sonnet-4-5-20250929")
    first["usage"].update(cache_creation_input_tokens=300, cache_read_input_tokens=5000)
    second = _anthropic_message(BODY, Reply(text="Done.", input_tokens=40, output_tokens=5),
                                "claude-sonnet-4-5-20250929")  # fmt: skip
    parser = ClaudeTranscript()
    lines = [
        json.dumps({"type": "user", "message": {"role": "user", "content": "Create hello.py"}}),
        *claude_entries(first),  # two blocks: two lines, one message
        '{"type":"summary","summary":"usage of the fake"}',
        *claude_entries(second),
        '{"type":"assistant","message":{"con',  # a line being written
    ]
    seen = [u for u in map(parser.feed, lines) if u is not None]
    assert seen == [
        Usage(6500, 80, None, "claude-sonnet-4-5-20250929"),
        Usage(40, 5, None, "claude-sonnet-4-5-20250929"),
    ]
    # the same message written again with more output (a later block): only the growth
    grown = _anthropic_message(BODY, Reply(text="Done.", input_tokens=40, output_tokens=9),
                               "claude-sonnet-4-5-20250929")  # fmt: skip
    grown["id"] = second["id"]
    assert parser.feed(claude_entries(grown)[0]) == Usage(0, 4, None, "claude-sonnet-4-5-20250929")
    assert parser.feed(claude_entries(grown)[0]) is None


@pytest.mark.parametrize(
    "line",
    [
        # Claude Code's own error entries call no model
        '{"type":"assistant","message":{"id":"m","model":"<synthetic>","usage":{"input_tokens":0,'
        '"output_tokens":0},"content":[]}}',
        '{"type":"assistant","message":{"id":"m","model":"x","usage":{"input_tokens":-5,'
        '"output_tokens":true}}}',
        '{"type":"assistant","message":{"id":"m","model":"x","usage":{"input_tokens":1e30}}}',
        '{"type":"assistant","message":{"id":"m","model":"x","usage":"lots"}}',
        '{"type":"user","message":{"usage":{"input_tokens":5}}}',
        '["usage"]',
        "usage",
    ],
)
def test_claude_code_lines_that_count_nothing(line: str) -> None:
    assert ClaudeTranscript().feed(line) is None


def codex_line(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"timestamp": "2026-11-30T12:00:00.000Z", "type": kind, "payload": payload})


def token_count(totals: tuple[int, int, int] | None) -> str:
    """Codex's token_count event from running totals (input, cached, output), in its
    shape; None: the rate-limits-only event it writes too."""
    info = None
    if totals is not None:
        used, cached, out = totals
        usage = {"input_tokens": used, "cached_input_tokens": cached, "output_tokens": out,
                 "reasoning_output_tokens": 0, "total_tokens": used + out}  # fmt: skip
        info = {"total_token_usage": usage, "last_token_usage": usage,
                "model_context_window": 258400}  # fmt: skip
    return codex_line("event_msg", {"type": "token_count", "info": info, "rate_limits": None})


def test_codex_counts_the_growth_of_its_running_totals() -> None:
    first = _responses_object({"input": "Create hello.py"}, Reply("Done.", input_tokens=2993,
                              output_tokens=68), "gpt-5.5")["usage"]  # fmt: skip
    parser = CodexSession()
    lines = [
        codex_line("session_meta", {"id": "s1", "cwd": "/workspace", "cli_version": "0.169.0"}),
        codex_line("turn_context", {"cwd": "/workspace", "model": "gpt-5.5"}),
        token_count(None),
        token_count((first["input_tokens"], 0, first["output_tokens"])),
        token_count((first["input_tokens"], 0, first["output_tokens"])),  # said twice
        token_count((6100, 2900, 140)),
        codex_line("event_msg", {"type": "agent_message", "message": "token_count"}),
    ]
    assert [u for u in map(parser.feed, lines) if u is not None] == [
        Usage(2993, 68, None, "gpt-5.5"),
        Usage(3107, 72, None, "gpt-5.5"),
    ]
    # totals that start again (a new session in the same log) count whole
    assert parser.feed(token_count((100, 0, 10))) == Usage(100, 10, None, "gpt-5.5")
    assert parser.feed(token_count((-1, 0, 2**70))) is None  # hostile numbers count nothing


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("Tokens: 598 sent, 20 received.", Usage(598, 20)),
        ("Tokens: 1.2k sent, 350 received. Cost: $0.01 message, $0.02 session.",
         Usage(1200, 350, 0.01)),
        ("Tokens: 12k sent, 1.1k cache write, 3.4k cache hit, 150 received. "
         "Cost: $0.0052 message, $0.01 session.", Usage(12000, 150, 0.0052)),
        ("Tokens: 2.5M sent, 1.5k received. Cost: $7.50 message, $9.00 session.",
         Usage(2_500_000, 1500, 7.5)),
        ("Tokens: 0 sent, 0 received. Cost: $0.00 message, $0.00 session.", None),
        ("Use `Tokens:` wisely", None),
        ("Tokens: lots sent, 5 received.", None),
    ],
)  # fmt: skip
def test_aider_usage_lines(line: str, usage: Usage | None) -> None:
    assert AiderReport().feed(line) == usage


def test_a_usage_becomes_a_report_the_server_reads() -> None:
    from provisioner.queueing import parse_cost

    for usage in (Usage(10, 2, None, "gpt-5.5"), Usage(5, 1, 0.01, None)):
        cost = parse_cost(usage.report())
        assert (cost.tokens_in, cost.tokens_out, cost.cost_usd, cost.model) == (
            usage.tokens_in, usage.tokens_out, usage.cost_usd, usage.model)  # fmt: skip
