"""A real bridge (the zipapp, the scripted agent under a pty) reports the usage its agent
recorded itself as `usage` reports, once: Claude Code's transcript in the agent's home,
Aider's lines in the agent's output. The last look is taken as the bridge stops, so the
tests stop and start it instead of waiting for the periodic one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.bridge.package import build_zipapp
from tests.polling import wait_until
from tests.unit.test_bridge_local import BridgeRunner
from tests.unit.test_task_reports import post_report, report_key


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def runner(zipapp: Path, tmp_path: Path) -> Iterator[BridgeRunner]:
    bridge = BridgeRunner(zipapp, tmp_path)
    try:
        yield bridge
    finally:
        bridge.cleanup()


def usage_reports(runner: BridgeRunner) -> list[dict]:
    assert runner.client is not None
    found = runner.client.reports()["reports"]
    return [
        {k: r.get(k) for k in ("tokens_in", "tokens_out", "cost_usd", "model")}
        for r in found
        if r["kind"] == "usage"
    ]


def test_claude_codes_transcript_is_reported_once(runner: BridgeRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    session = home / ".claude" / "projects" / "-work" / "s1.jsonl"
    session.parent.mkdir(parents=True)
    message = {"id": "msg_1", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "Hi"}],
               "usage": {"input_tokens": 12, "cache_read_input_tokens": 3000,
                         "cache_creation_input_tokens": 0, "output_tokens": 7}}  # fmt: skip
    session.write_text(json.dumps({"type": "assistant", "message": message}) + "\n")
    config = {"agent_type": "claude", "env": {"HOME": str(home)}}
    runner.start(**config)
    assert runner.stop() == 0
    runner.start(**config)
    expected = {"tokens_in": 3012, "tokens_out": 7, "cost_usd": None,
                "model": "claude-sonnet-4-5-20250929"}  # fmt: skip
    assert usage_reports(runner) == [expected]
    assert runner.stop() == 0  # read already: nothing new to report
    runner.start(**config)
    assert usage_reports(runner) == [expected]


def test_aiders_usage_lines_in_the_output_are_reported(runner: BridgeRunner) -> None:
    # an agent that prints Aider's usage line, as Aider does after a reply, then waits
    line = "Tokens: 1.2k sent, 350 received. Cost: $0.01 message, $0.02 session."
    agent = f"print({line!r}); print('Done: ' + {line!r}); input('> ')"
    config = {"agent_type": "aider", "agent_command": ["python3", "-c", agent]}
    client = runner.start(**config)
    wait_until(
        lambda: any(e["content"] == line for e in client.log(after=0)["entries"]),
        10,
        "the agent's line",
    )
    assert runner.stop() == 0
    runner.start(agent_type="aider", agent_command=["python3", "-c", "input('> ')"])
    assert usage_reports(runner) == [
        {"tokens_in": 1200, "tokens_out": 350, "cost_usd": 0.01, "model": None}
    ]


def test_usage_recorded_before_a_complete_is_reported_before_it(
    runner: BridgeRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    log = home / ".codex" / "sessions" / "2026" / "11" / "30" / "rollout-1.jsonl"
    log.parent.mkdir(parents=True)
    client = runner.start(agent_type="codex", env={"HOME": str(home)})
    usage = {"input_tokens": 900, "cached_input_tokens": 0, "output_tokens": 40}
    log.write_text(
        json.dumps({"type": "turn_context", "payload": {"model": "gpt-5.5"}}) + "\n"
        + json.dumps({"type": "event_msg", "payload": {"type": "token_count",
                      "info": {"total_token_usage": usage}}}) + "\n"
    )  # fmt: skip
    done = {"kind": "complete", "outcome": "SUCCESS"}
    assert post_report(client, done, report_key(runner)).status_code == 200
    kinds = [(r["kind"], r.get("tokens_in")) for r in client.reports()["reports"]]
    assert kinds == [("usage", 900), ("complete", None)]
