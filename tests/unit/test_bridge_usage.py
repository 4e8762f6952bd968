"""Usage read from what agents write down anyway: Claude Code's transcript, Codex's session
log, Aider's usage lines. The samples are built from what the fake model server answers
(the same bodies the Docker-tier agent tests get), wrapped as each agent records them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.bridge.runtime.usage import AiderReport, ClaudeTranscript, CodexSession, Usage
from provisioner.bridge.runtime.usage_watch import UsageWatch
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
        ("> Tokens: 5 sent, 5 received.", None),  # the user's prompt, echoed
        ("Done: Tokens: 5 sent, 5 received.", None),
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


# -- following the files (usage_watch) ---------------------------------------------------


def test_claude_code_sessions_are_followed_once_across_bridge_restarts(tmp_path: Path) -> None:
    home, state = tmp_path / "home", tmp_path / "state" / "usage.json"
    state.parent.mkdir()
    session = home / ".claude" / "projects" / "-workspace" / "s1.jsonl"
    session.parent.mkdir(parents=True)
    model = "claude-sonnet-4-5-20250929"
    first = _anthropic_message(BODY, Reply("One.", input_tokens=100, output_tokens=10), model)
    second = _anthropic_message(BODY, Reply("Two.", input_tokens=200, output_tokens=20), model)
    watch = UsageWatch("claude", home, state, {})
    assert watch.poll() == []
    session.write_text(claude_entries(first)[0] + "\n" + claude_entries(second)[0][:30])
    assert watch.poll() == [Usage(100, 10, None, model)]  # the torn line waits
    with session.open("a") as f:
        f.write(claude_entries(second)[0][30:] + "\n")
    assert watch.poll() == [Usage(200, 20, None, model)]
    assert watch.poll() == []
    again = UsageWatch("claude", home, state, {})  # the bridge restarted
    assert again.poll() == []
    third = _anthropic_message(BODY, Reply("Three.", input_tokens=5, output_tokens=1), model)
    with session.open("a") as f:
        f.write(claude_entries(third)[0] + "\n")
    assert again.poll() == [Usage(5, 1, None, model)]
    # an agent's link to some other file is not followed
    (session.parent / "evil.jsonl").symlink_to(state)
    assert again.poll() == []


def test_codex_totals_survive_a_restart_and_aider_is_read_from_the_transcript(
    tmp_path: Path,
) -> None:
    home, state = tmp_path / "home", tmp_path / "usage.json"
    log = home / ".codex" / "sessions" / "2026" / "11" / "30" / "rollout-x.jsonl"
    log.parent.mkdir(parents=True)
    context = codex_line("turn_context", {"model": "gpt-5.5"})
    log.write_text(context + "\n" + token_count((1000, 0, 50)) + "\n")
    assert UsageWatch("codex", home, state, {}).poll() == [Usage(1000, 50, None, "gpt-5.5")]
    with log.open("a") as f:
        f.write(token_count((1500, 0, 80)) + "\n")
    # a restarted bridge knows the totals it had seen: only the growth counts
    assert UsageWatch("codex", home, state, {}).poll() == [Usage(500, 30, None, "gpt-5.5")]
    # CODEX_HOME moves it
    assert UsageWatch("codex", tmp_path / "nohome", tmp_path / "u2.json",
                      {"CODEX_HOME": str(home / ".codex")}).poll()  # fmt: skip

    aider_state = tmp_path / "aider.json"
    watch = UsageWatch("aider", home, aider_state, {})
    entries = [
        {"seq": 1, "type": "input", "content": "Tokens: 9 sent, 9 received."},  # the user's
        {"seq": 2, "type": "output", "content": "Tokens: 1.2k sent, 350 received. "
                                                "Cost: $0.01 message, $0.02 session."},
        {"seq": 3, "type": "output", "content": "Tokens: 598 sent, 20 received. "
                                                "Cost: $0.0052 message, $0.03 session."},
    ]  # fmt: skip
    assert watch.poll(entries) == [Usage(1798, 370, 0.0152, None)]
    assert UsageWatch("aider", home, aider_state, {}).poll(entries) == []  # read already
    assert UsageWatch("scripted", home, tmp_path / "s.json", {}).poll(entries) == []


def test_a_session_file_that_shrank_is_read_afresh_and_a_huge_line_skipped(
    tmp_path: Path,
) -> None:
    home, state = tmp_path / "home", tmp_path / "usage.json"
    log = home / ".codex" / "sessions" / "2026" / "11" / "30" / "rollout-y.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(token_count((1000, 0, 50)) + "\n")
    watch = UsageWatch("codex", home, state, {})
    assert watch.poll() == [Usage(1000, 50)]
    log.write_text(token_count((10, 0, 1)) + "\n")  # rewritten, shorter
    assert watch.poll() == [Usage(10, 1)]
    with log.open("a") as f:
        f.write("x" * (5 << 20) + "\n" + token_count((20, 0, 2)) + "\n")
    found = watch.poll() + watch.poll() + watch.poll()
    assert found == [Usage(10, 1)]
