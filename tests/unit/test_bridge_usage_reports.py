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
from provisioner.lifecycle import Status
from provisioner.pricing import parse_pricing
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import wait_until
from tests.unit.test_bridge_local import BridgeRunner
from tests.unit.test_task_reports import post_report, report_key

__all__ = ["bridge_cache", "fake"]


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
        30,
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


AIDER_LIKE = """#!/usr/bin/env python3
import subprocess, sys
LINE = "Tokens: 1.2k sent, 350 received. Cost: $0.01 message, $0.02 session."
while True:
    sys.stdout.write("> ")
    sys.stdout.flush()
    text = sys.stdin.readline()
    if not text:
        break
    if text.startswith("/complete"):
        usage = ["--tokens-in", "1000000", "--tokens-out", "0", "--model", "claude-sonnet-4-5"]
        subprocess.run(["dockyard-task", "usage", *usage], check=True)
        subprocess.run(["dockyard-task", "complete", "--outcome", "SUCCESS"], check=True)
    else:
        print(LINE)
"""


def test_usage_reaches_the_task_priced_end_to_end(fake: Harness, tmp_path: Path) -> None:
    # an agent named like Aider (so its bridge reads Aider's lines), on the fake backend
    script = tmp_path / "aider"
    script.write_text(AIDER_LIKE)
    script.chmod(0o755)
    fake.backend.files["/usr/local/bin/aider"] = script
    variant = fake.add_scripted_variant(
        "aider-like", agent={"command": ["/usr/local/bin/aider"], "resume_command": None}
    )
    fake.engine.pricing = parse_pricing(
        {"claude-sonnet-4-5": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}
    )
    task = fake.create("hello", template=variant)
    fake.wait_output(
        task.id, "Tokens: 1.2k sent, 350 received. Cost: $0.01 message, $0.02 session."
    )
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/complete")
    done = fake.wait_status(task.id, Status.COMPLETED)
    # the agent's own report in tokens (priced), then, looked for as the agent completes,
    # Aider's line with its own dollars (as the task's model): each once, before the end
    assert (done.tokens_in, done.tokens_out) == (1_001_200, 350)
    assert done.cost_usd == pytest.approx(3.01)
    # the outcome event follows the status change in a transaction of its own
    kinds = wait_until(
        lambda: (
            (found := [e["kind"] for e in fake.store.events(task.id) if e["kind"] != "status"])
            and "outcome" in found
            and found
        ),
        30,
        "the outcome event",
    )
    assert [k for k in kinds if k in ("usage", "outcome")] == ["usage", "usage", "outcome"]
    usage = [e["reason"] for e in fake.store.events(task.id) if e["kind"] == "usage"]
    assert usage == [
        "1000000 in, 0 out, $3.0000 (claude-sonnet-4-5)",
        "1200 in, 350 out, $0.0100 (claude-sonnet-4-5)",
    ]
