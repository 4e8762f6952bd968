"""Working/idle from agent hooks (profile state_source "hooks"): the tracker, the state
machine with a fake clock, the config and schema field, the Claude Code template's glue
script, and a real bridge whose agent reports its turns through that script."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from provisioner.bridge.package import build_zipapp
from provisioner.bridge.runtime.activity import (
    DELIVERED,
    EXITED,
    IDLE,
    STARTING,
    TAKEN,
    WORKING,
    Activity,
)
from provisioner.bridge.runtime.app import Bridge, submit_text
from provisioner.bridge.runtime.config import ConfigError, parse_config
from provisioner.bridge.runtime.hooks import (
    MAX_TEXT_LINE,
    HookTracker,
    bridge_env,
    parse_event,
    parse_text,
)
from provisioner.spec import AgentProfile
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_workspace
from tests.polling import HTTP_TIMEOUT, wait_until

# The tests at the end share one module-scoped bridge and follow its transcript in order:
# under xdist the whole module runs on one worker, in file order (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("bridge_hooks")

REPO = Path(__file__).resolve().parents[2]
GLUE = REPO / "templates" / "claude-code" / "dockyard_claude.py"
TOKEN = "hook-test-token-456"
QUIET = 0.25
TAKE_TIMEOUT = 5.0


# -- the tracker -------------------------------------------------------------------------


def test_tracker_turns_follow_the_events() -> None:
    hooks = HookTracker()
    assert hooks.idle(screen_resting=False) and hooks.confirmed
    assert hooks.on_event("prompt_submitted", 1.0)
    assert not hooks.idle(screen_resting=True)  # the screen has no say while hooks speak
    assert hooks.on_event("notification", 2.0)  # recorded, no change
    assert hooks.busy
    assert hooks.on_event("stop", 3.0)
    assert hooks.idle(screen_resting=False)
    assert hooks.on_event("tool_use", 4.0)  # a turn nobody submitted (a wake-up)
    assert hooks.busy
    assert hooks.on_event("stop_failure", 5.0)  # an API error ends the turn too
    assert not hooks.busy
    # lines reported late (after the turn's end): no turn, and not the last word
    assert hooks.on_event("output", 6.0)
    assert not hooks.busy and hooks.idle(screen_resting=False)
    assert hooks.to_dict() == {
        "busy": False,
        "confirmed": True,
        "last_event": "stop_failure",
        "events": {"prompt_submitted": 1, "notification": 1, "stop": 1, "tool_use": 1,
                   "stop_failure": 1, "output": 1},
        "ignored": 0,
    }  # fmt: skip


def test_tracker_ignores_unknown_events_and_falls_back_when_unsure() -> None:
    hooks = HookTracker()
    assert not hooks.on_event("PostToolUse", 1.0)
    assert hooks.ignored == 1 and hooks.last_event is None
    hooks.on_event("prompt_submitted", 2.0)
    hooks.unconfirm()  # e.g. raw keys (Escape) may have interrupted the turn
    assert hooks.idle(screen_resting=True) and not hooks.idle(screen_resting=False)
    assert hooks.reason(0, False).startswith("screen")
    hooks.on_event("stop", 3.0)
    assert hooks.confirmed and hooks.reason(0, False) == "hook stop"
    assert hooks.reason(1, False) == "a prompt is queued"


def test_tracker_start() -> None:
    hooks = HookTracker()
    assert hooks.started(screen_resting=True, quiet=True)
    assert not hooks.started(screen_resting=False, quiet=True)
    hooks.on_event("session_start", 1.0)
    assert not hooks.started(screen_resting=False, quiet=False)  # still drawing
    assert hooks.started(screen_resting=False, quiet=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "event must be a non-empty string"),
        ({"event": 3}, "event must be a non-empty string"),
        ({"event": "  "}, "event must be a non-empty string"),
        ({"event": "x" * 65}, "at most 64"),
    ],
)
def test_parse_event_rejects(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(body)


def test_parse_event_and_bridge_env() -> None:
    assert parse_event({"event": " stop ", "session_id": "s"}) == "stop"
    assert bridge_env("0.0.0.0", 7777, "/opt/dockyard/token") == {
        "DOCKYARD_BRIDGE_URL": "http://127.0.0.1:7777",
        "DOCKYARD_BRIDGE_TOKEN_FILE": "/opt/dockyard/token",
    }
    assert bridge_env("[::]", 80, "t")["DOCKYARD_BRIDGE_URL"] == "http://127.0.0.1:80"
    assert bridge_env("::1", 80, "t")["DOCKYARD_BRIDGE_URL"] == "http://[::1]:80"
    assert bridge_env("10.0.0.5", 81, "t")["DOCKYARD_BRIDGE_URL"] == "http://10.0.0.5:81"


def test_parse_text_makes_transcript_lines() -> None:
    assert parse_text({"event": "stop"}) == [] == parse_text({"event": "stop", "text": None})
    assert parse_text({"text": " \n\n  "}) == []
    text = "\n\nI'll create the file.\r\n[tool] Write hello.py\n\nCreated \x1bit\x07.  \n\n"
    assert parse_text({"text": text}) == [
        "I'll create the file.",
        "[tool] Write hello.py",
        "",  # a paragraph break inside the reply stays
        "Created it.",
    ]
    assert parse_text({"text": "a\tb\rc"}) == ["a\tb", "c"]
    long = "x" * (MAX_TEXT_LINE + 5)
    assert parse_text({"text": long}) == ["x" * MAX_TEXT_LINE, "xxxxx"]
    with pytest.raises(ValueError, match="text must be a string"):
        parse_text({"text": ["a"]})


def make_bridge(tmp_path: Path, state_source: str) -> Bridge:
    """A bridge that is not started: its transcript and hook handling only."""
    config = parse_config(
        {
            "agent_command": ["true"],
            "cwd": str(tmp_path),
            "state_dir": str(tmp_path / "state"),
            "profile": {"state_source": state_source},
        }
    )
    return Bridge(config, TOKEN)


def test_hook_text_becomes_agent_lines_and_the_screen_is_marked(tmp_path: Path) -> None:
    bridge = make_bridge(tmp_path, "hooks")
    with bridge.cond:
        bridge._append_output("\u2502 (shift+tab to cycle)", 1.0)  # the TUI's chrome
    reply = bridge.hook("stop", ["I'll create the file.", "[tool] Write hello.py", "Created."])
    assert reply["ok"] and reply["known"] and reply["lines"] == 3
    with bridge.cond:
        bridge._append_output("\u276f", 2.0, partial=True)
    entries = bridge.transcript.after(0)
    assert [(e["seq"], e["type"], e.get("source"), e["content"]) for e in entries] == [
        (1, "output", "screen", "\u2502 (shift+tab to cycle)"),
        (2, "output", "agent", "I'll create the file."),
        (3, "output", "agent", "[tool] Write hello.py"),
        (4, "output", "agent", "Created."),
        (5, "output", "screen", "\u276f"),
    ]
    assert entries[-1]["partial"] and bridge.status()["dockyard"]["last_seq"] == 5
    # the agent's turn in agentapi's conversation view has the reply
    assert "Created." in bridge.messages()[-1]["content"]
    # another turn's text follows; nothing is repeated
    bridge.hook("prompt_submitted")
    assert bridge.hook("stop", ["Updated."])["lines"] == 1
    said = [e["content"] for e in bridge.transcript.after(0) if e.get("source") == "agent"]
    assert said == ["I'll create the file.", "[tool] Write hello.py", "Created.", "Updated."]
    bridge.transcript.close()

    # on disk: a restarted bridge has them, numbered on from there
    again = make_bridge(tmp_path, "hooks")
    assert [e["seq"] for e in again.transcript.entries] == [1, 2, 3, 4, 5, 6]
    assert again.hook("stop", ["More."])["lines"] == 1
    assert again.transcript.entries[-1]["seq"] == 7
    again.transcript.close()


def test_hook_text_is_ignored_when_the_screen_decides(tmp_path: Path) -> None:
    # the screen's lines are the agent's output then; the text would repeat them
    bridge = make_bridge(tmp_path, "screen")
    with bridge.cond:
        bridge._append_output("Created.", 1.0)
    reply = bridge.hook("stop", ["Created."])
    assert not reply["known"] and reply["lines"] == 0
    [entry] = bridge.transcript.after(0)
    assert entry["content"] == "Created." and "source" not in entry
    bridge.transcript.close()


# -- the state machine with hooks (fake clock) -------------------------------------------


def hooked() -> Activity:
    return Activity(QUIET, TAKE_TIMEOUT, now=0.0, hooks=HookTracker())


def started_hooked() -> Activity:
    """Hooks on; the input box showed at t=0 and stayed quiet: idle at t=1."""
    activity = hooked()
    activity.on_output(0.0, at_prompt=True)
    activity.tick(1.0)
    assert activity.state(1.0) == IDLE
    return activity


def test_starting_until_the_screen_or_session_start_says_it_is_up() -> None:
    activity = hooked()
    activity.on_output(0.0, at_prompt=False)
    assert activity.state(5.0) == STARTING
    activity.on_hook("session_start", 5.0)
    activity.on_output(5.0, at_prompt=False)  # still drawing its screen
    assert activity.state(5.1) == STARTING
    assert activity.next_delivery(5.1) is None
    assert activity.state(5.3) == IDLE  # quiet after session_start: up (no prompt match needed)


def test_working_from_submit_to_stop_whatever_the_screen_shows() -> None:
    activity = started_hooked()
    activity.enqueue("p1", "write hello.py", now=1.0)
    assert activity.state(1.0) == WORKING
    prompt = activity.next_delivery(1.0)
    assert prompt is not None and prompt.state == DELIVERED
    # the agent echoes the typed text: output, but no proof it took the prompt
    activity.on_output(1.1, at_prompt=False)
    assert prompt.state == DELIVERED
    assert activity.state(3.0) == WORKING
    activity.on_hook("prompt_submitted", 3.0)
    assert prompt.state == TAKEN and not prompt.assumed and prompt.taken_at == 3.0
    # quiet at the prompt (a long tool call with a still screen): hooks say working
    activity.on_output(3.5, at_prompt=True)
    assert activity.state(60.0) == WORKING
    activity.on_hook("stop", 61.0)
    # idle at once, even with output still coming and no prompt on the screen
    activity.on_output(61.0, at_prompt=False)
    assert activity.state(61.0) == IDLE


def test_never_idle_before_the_prompt_is_taken() -> None:
    activity = started_hooked()
    activity.enqueue("p1", "hello", now=1.0)
    prompt = activity.next_delivery(1.0)
    assert prompt is not None
    activity.on_hook("stop", 1.5)  # a late stop of an earlier turn
    assert activity.state(1.6) == WORKING and prompt.state == DELIVERED
    activity.on_hook("prompt_submitted", 2.0)
    assert activity.state(2.0) == WORKING


def test_queued_prompts_go_out_one_per_stop() -> None:
    activity = started_hooked()
    for i in range(3):
        activity.enqueue(f"p{i}", f"prompt {i}", now=1.0)
    now = 1.0
    delivered = []
    for _ in range(3):
        prompt = activity.next_delivery(now)
        assert prompt is not None
        delivered.append(prompt.id)
        assert activity.next_delivery(now + 0.1) is None  # in flight
        activity.on_hook("prompt_submitted", now + 0.2)
        activity.on_output(now + 0.3, at_prompt=True)
        assert activity.next_delivery(now + 2.0) is None  # a turn runs
        activity.on_hook("stop", now + 2.5)
        now += 3.0
    assert delivered == ["p0", "p1", "p2"]
    assert [p.state for p in activity.prompts] == [TAKEN] * 3
    assert activity.state(now) == IDLE


def test_prompt_without_hook_is_assumed_taken_then_the_screen_decides() -> None:
    # e.g. a built-in /command: the agent runs no UserPromptSubmit hook and no Stop
    activity = started_hooked()
    activity.enqueue("p1", "/cost", now=1.0)
    prompt = activity.next_delivery(1.0)
    assert prompt is not None
    activity.on_output(1.2, at_prompt=False)  # a dialog opens
    activity.tick(1.0 + TAKE_TIMEOUT)
    assert prompt.state == TAKEN and prompt.assumed
    assert activity.hooks is not None and not activity.hooks.confirmed
    assert activity.state(7.0) == WORKING  # the screen: not at the prompt
    activity.on_output(8.0, at_prompt=True)  # the dialog closed
    assert activity.state(8.0 + QUIET) == IDLE
    activity.on_hook("prompt_submitted", 9.0)  # the hooks speak again: they decide
    assert activity.hooks.confirmed and activity.state(20.0) == WORKING


def test_raw_keys_hand_the_turn_to_the_screen_until_the_next_hook() -> None:
    activity = started_hooked()
    activity.on_hook("prompt_submitted", 1.0)  # the user typed a prompt with raw keys
    assert activity.state(1.0) == WORKING
    activity.on_raw_input()  # Escape: the turn is interrupted, no Stop will come
    activity.on_output(2.0, at_prompt=True)
    assert activity.state(2.0 + QUIET) == IDLE
    activity.on_hook("prompt_submitted", 3.0)
    activity.on_output(3.1, at_prompt=True)
    assert activity.state(10.0) == WORKING


def test_exit_ends_it_and_later_hooks_are_ignored() -> None:
    activity = started_hooked()
    activity.on_hook("prompt_submitted", 1.0)
    activity.on_exit(0, 2.0)
    assert activity.state(2.0) == EXITED
    assert not activity.on_hook("stop", 2.1)
    assert activity.state(2.1) == EXITED


def test_screen_mode_ignores_hooks() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0)
    activity.on_output(0.0, at_prompt=True)
    activity.tick(1.0)
    assert not activity.on_hook("prompt_submitted", 1.0)
    assert activity.state(1.0) == IDLE
    activity.on_raw_input()  # no effect without hooks
    assert activity.state(1.0) == IDLE


# -- configuration -----------------------------------------------------------------------


def test_state_source_in_bridge_config_and_template_schema() -> None:
    assert parse_config({"agent_command": ["a"]}).profile.state_source == "screen"
    config = parse_config({"agent_command": ["a"], "profile": {"state_source": "hooks"}})
    assert config.profile.state_source == "hooks"
    with pytest.raises(ConfigError, match="state_source must be one of: screen, hooks"):
        parse_config({"agent_command": ["a"], "profile": {"state_source": "vibes"}})
    assert AgentProfile().state_source == "screen"
    assert AgentProfile(state_source="hooks").state_source == "hooks"
    with pytest.raises(ValidationError):
        AgentProfile(state_source="vibes")


def test_claude_code_template_renders_with_hooks() -> None:
    template = Catalog().get("claude-code")
    spec = render_workspace(
        template, template.default_preset(), {"base_url": "http://172.17.0.1:9", "model": "m"}
    )
    assert spec.profile.state_source == "hooks"
    assert spec.agent_command == ["claude", "--dangerously-skip-permissions", "--model", "m"]
    resume = spec.resume_command
    assert resume is not None and resume[:2] == ["dockyard-claude", "resume"]
    assert spec.env["ANTHROPIC_BASE_URL"] == "http://172.17.0.1:9"
    assert spec.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert spec.setup_script is not None and "dockyard-claude seed" in spec.setup_script
    box = "\u276f"  # Claude Code's input box: U+276F, a no-break space, the cursor
    assert re.search(spec.profile.prompt_regex, box + "\u00a0")
    assert not re.search(spec.profile.prompt_regex, box + " write hello.py")
    assert spec.build is not None and "@anthropic-ai/claude-code@2." in spec.build.dockerfile


# -- the template's glue script ----------------------------------------------------------


def load_glue() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dockyard_claude", GLUE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_answers_first_run_and_keeps_the_users_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    glue = load_glue()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no claude: version unknown
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789-abcdefghijklmnopqrst")
    settings_path = tmp_path / ".claude" / "settings.json"
    settings_path.parent.mkdir()
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo mine"}]}
    settings_path.write_text(json.dumps({"model": "opus", "hooks": {"Stop": [mine]}}))
    assert glue.seed("/workspace") == 0
    assert glue.seed("/workspace") == 0  # idempotent
    state = json.loads((tmp_path / ".claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True
    assert state["customApiKeyResponses"]["approved"] == ["abcdefghijklmnopqrst"]
    assert state["projects"]["/workspace"]["hasTrustDialogAccepted"] is True
    assert state["bypassPermissionsModeAccepted"] is True
    assert oct((tmp_path / ".claude.json").stat().st_mode & 0o777) == "0o600"
    settings = json.loads(settings_path.read_text())
    assert settings["model"] == "opus" and settings["skipDangerousModePermissionPrompt"] is True
    hooks = settings["hooks"]
    assert hooks["Stop"][0] == mine
    ours = [g["hooks"][0]["command"] for g in hooks["Stop"][1:]]
    assert ours == ["dockyard-claude hook stop"]  # once, though seeded twice
    assert hooks["UserPromptSubmit"][0]["hooks"][0]["command"].endswith("prompt_submitted")
    assert "sk-ant" not in capsys.readouterr().out


def test_has_conversation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    glue = load_glue()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    assert not glue._has_conversation("/workspace")
    folder = tmp_path / ".claude" / "projects" / "-workspace"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"type":"summary"}\n')
    assert not glue._has_conversation("/workspace")
    (folder / "b.jsonl").write_text('{"type":"summary"}\n{"parentUuid":null,"type":"user"}\n')
    assert glue._has_conversation("/workspace")


def write_session(path: Path, entries: list[dict[str, Any]]) -> str:
    """A session transcript in Claude Code's shape: one compact JSON object a line."""
    lines = [json.dumps(e, separators=(",", ":")) for e in entries]
    path.write_text("\n".join(lines) + "\n" + '{"type":"assistant","message":{"con')
    return str(path)  # the last line is being written: skipped


def said(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "assistant", "message": {"role": "assistant", "content": list(blocks)}, **extra}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input}


def prompt(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "user", "message": {"role": "user", "content": value}, **extra}


RESULT = prompt([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}])
EARLIER_TURN = [prompt("first"), said(text("Old reply.")), {"type": "system", "subtype": "x"}]


def test_turn_text_is_the_reply_since_the_prompt_with_tool_lines(tmp_path: Path) -> None:
    glue = load_glue()
    session = write_session(
        tmp_path / "s.jsonl",
        [
            *EARLIER_TURN,
            prompt("Create hello.py"),
            {"type": "attachment", "attachment": {"type": "environment"}},
            prompt("<system-reminder>", isMeta=True),
            said(text("I'll create the file.")),
            said(tool("Write", file_path="/workspace/hello.py", content="print()")),
            RESULT,
            said(text("A subagent's words."), isSidechain=True),
            said({"type": "thinking", "thinking": "hm"}, tool("Bash", command="ls -la\nrm")),
            RESULT,
            prompt(
                [{"type": "text", "text": "Summary of the conversation"}], isCompactSummary=True
            ),
            said(text("Created hello.py.\n\nRun it with python.")),
        ],
    )
    payload = {"transcript_path": session, "cwd": "/workspace"}
    payload["last_assistant_message"] = "Created hello.py.\n\nRun it with python."
    assert glue.turn_text(payload) == (
        "I'll create the file.\n"
        "[tool] Write hello.py\n"
        "[tool] Bash: ls -la\n"
        "Created hello.py.\n\nRun it with python."
    )
    # the transcript is behind (the reply not written yet): the hook input has it
    payload["last_assistant_message"] = "And a last word."
    assert glue.turn_text(payload).endswith("Run it with python.\nAnd a last word.")
    # no transcript at all: the hook input's message alone
    assert glue.turn_text({"transcript_path": str(tmp_path / "gone.jsonl"),
                           "last_assistant_message": "Hi."}) == "Hi."  # fmt: skip
    assert glue.turn_text({}) == ""


def test_turn_text_after_a_blocked_stop_has_only_what_came_after(tmp_path: Path) -> None:
    # a Stop hook (the user's own) refused to let the turn end: the turn went on, and the
    # next Stop must not send what the first one sent
    glue = load_glue()
    session = write_session(
        tmp_path / "s.jsonl",
        [
            prompt("Fix the tests"),
            said(text("Fixed.")),
            {"type": "system", "subtype": "stop_hook_summary", "preventedContinuation": True},
            prompt([{"type": "text", "text": "Stop hook feedback: run them"}], isMeta=True),
            said(tool("Bash", command="pytest -q")),
            RESULT,
            said(text("They pass.")),
        ],
    )
    payload = {"transcript_path": session, "last_assistant_message": "They pass."}
    assert glue.turn_text(payload) == "[tool] Bash: pytest -q\nThey pass."


def test_a_long_turn_is_reported_at_each_tool_use_and_the_rest_at_its_end(
    tmp_path: Path,
) -> None:
    # the logs follow a turn as it runs: each PreToolUse hook sends what the turn said
    # since the last report, the Stop hook only what is left; a new turn starts afresh
    glue = load_glue()
    path = tmp_path / "s.jsonl"
    progress = glue.TurnProgress(tmp_path / "progress.json")
    turn = [*EARLIER_TURN, prompt("Create hello.py", uuid="u-turn-1")]

    def report(event: str, entries: list[dict[str, Any]], session: str = "s1") -> str:
        payload = {"transcript_path": write_session(path, entries), "cwd": "/workspace"}
        payload["session_id"] = session
        with progress:
            if event == "stop":
                return str(glue.final_text(payload, progress))
            return str(glue.progress_text(payload, progress))

    turn.append(said(text("I'll create the file."), tool("Write", file_path="/workspace/a.py")))
    assert report("tool_use", turn) == "I'll create the file.\n[tool] Write a.py"
    turn += [RESULT, said(tool("Bash", command="python a.py"))]
    assert report("tool_use", turn) == "[tool] Bash: python a.py"
    assert report("tool_use", turn) == ""  # a second hook for the same tool: nothing new
    turn += [RESULT, said(text("Created a.py."))]
    assert report("stop", turn) == "Created a.py."
    assert report("tool_use", turn) == ""  # a reporter later than the turn's end: nothing
    # ... even when the transcript caught up only after the Stop (its reply came from
    # the hook input then): the turn is done, nothing of it is sent again
    assert report("tool_use", [*turn, said(text("Written late."))]) == ""
    # the next turn: everything of it, nothing of the last
    turn += [prompt("Again", uuid="u-turn-2"), said(text("Done again."))]
    assert report("stop", turn) == "Done again."
    # another session with a turn of the same name: not taken for this one's
    turn += [prompt("Third", uuid="u-turn-3"), said(text("A."), tool("Read", file_path="/x"))]
    assert report("tool_use", turn) == "A.\n[tool] Read /x"
    assert report("stop", turn, session="s2") == "A.\n[tool] Read /x"


def test_the_reporter_looks_only_past_what_was_written_at_the_hook(tmp_path: Path) -> None:
    glue = load_glue()
    path = tmp_path / "s.jsonl"
    path.write_text('{"id":"toolu_old"}\n')
    offset = path.stat().st_size
    assert glue._written(str(path), "toolu_old", 0)  # the first look reads it all
    assert not glue._written(str(path), "toolu_new", offset)
    with path.open("a") as f:
        f.write('{"id":"toolu_new"}\n')
    assert glue._written(str(path), "toolu_new", offset)
    assert not glue._written(str(path), "toolu_old", offset)  # before the hook: not looked at
    assert not glue._written(str(tmp_path / "gone.jsonl"), "toolu_new", 0)


def test_tool_summary_is_one_short_line() -> None:
    glue = load_glue()
    assert glue.tool_summary("Edit", {"file_path": "/workspace/a/b.py"}, "/workspace") == (
        "[tool] Edit a/b.py"
    )
    assert glue.tool_summary("Read", {"file_path": "/etc/hosts"}, "/workspace") == (
        "[tool] Read /etc/hosts"
    )
    assert glue.tool_summary("Grep", {"pattern": "TODO", "path": "src"}) == "[tool] Grep TODO"
    assert glue.tool_summary("TodoWrite", {"todos": []}) == "[tool] TodoWrite"
    line = glue.tool_summary("Bash", {"command": "echo " + "x" * 500})
    assert len(line) == glue.TOOL_SUMMARY_CHARS and line.endswith("\u2026")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def run_hook(event: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GLUE), "hook", event],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": os.environ.get("PATH", ""), **env},
    )


def test_hook_posts_the_event_and_nothing_else(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "DOCKYARD_BRIDGE_URL": f"http://127.0.0.1:{server.server_port}",
        "DOCKYARD_BRIDGE_TOKEN_FILE": str(token_file),
        "HTTP_PROXY": "http://127.0.0.1:9",  # must not be used for the bridge
        "http_proxy": "http://127.0.0.1:9",
    }
    payload = {"hook_event_name": "UserPromptSubmit", "session_id": "s1", "prompt": "secret plan"}
    try:
        done = run_hook("prompt_submitted", json.dumps(payload), env)
        assert done.returncode == 0 and done.stdout == "", done.stderr
        [(path, auth, body)] = _Recorder.seen
        assert path == "/dockyard/hook" and auth == f"Bearer {TOKEN}"
        assert body == {
            "event": "prompt_submitted",
            "hook_event_name": "UserPromptSubmit",
            "session_id": "s1",
        }  # never the prompt text
        _Recorder.seen.clear()

        # the end of a turn: the reply goes along (from the transcript, else the hook input)
        session = write_session(tmp_path / "s.jsonl", [prompt("secret plan"), said(text("On it."))])
        stop = {"hook_event_name": "Stop", "transcript_path": session, "cwd": str(tmp_path)}
        done = run_hook("stop", json.dumps({**stop, "last_assistant_message": "On it."}), env)
        assert done.returncode == 0 and done.stdout == "", done.stderr
        [(_, _, body)] = _Recorder.seen
        assert body == {"event": "stop", "hook_event_name": "Stop", "text": "On it."}
        _Recorder.seen.clear()
        failure = {"hook_event_name": "StopFailure", "last_assistant_message": "API Error: 400"}
        done = run_hook("stop_failure", json.dumps(failure), env)
        [(_, _, body)] = _Recorder.seen
        assert body["text"] == "API Error: 400"
    finally:
        server.shutdown()
        server.server_close()
        _Recorder.seen.clear()


def test_hook_never_fails_the_agent(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    # nobody listens: exit 0, silent on stdout, a line on stderr without the token
    env = {
        "DOCKYARD_BRIDGE_URL": "http://127.0.0.1:9",
        "DOCKYARD_BRIDGE_TOKEN_FILE": str(token_file),
    }
    done = run_hook("stop", "not json", env)
    assert done.returncode == 0 and done.stdout == ""
    assert "could not report stop" in done.stderr and TOKEN not in done.stderr
    done = run_hook("stop", "{}", {})  # not under a bridge at all
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


# -- a real bridge, its agent reporting turns through the glue script ---------------------

# Shows "> " at once after each prompt (a screen that looks idle) and only later ends the
# turn with the stop hook: hooks, not the screen, must decide. Like Claude Code, it keeps a
# session transcript (JSONL) whose path its hooks get, and the stop hook reads the reply.
HOOKED_AGENT = r"""
import json, os, subprocess, sys, time
glue, turn_s = sys.argv[1], float(sys.argv[2])
session = os.path.join(os.getcwd(), "session.jsonl")
def record(kind, content, **extra):
    entry = {"type": kind, "message": {"role": kind, "content": content}, **extra}
    with open(session, "a") as f:
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
def hook(event, **extra):
    payload = {"session_id": "s", "transcript_path": session, "cwd": os.getcwd(), **extra}
    subprocess.run([sys.executable, glue, "hook", event], input=json.dumps(payload),
                   text=True, check=True)
hook("session_start")
while True:
    sys.stdout.write("> "); sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        break
    if line.startswith("/"):  # like a built-in command: no hooks
        sys.stdout.write("command " + line.strip() + "\n"); continue
    hook("prompt_submitted")
    task = line.strip()
    record("user", task)
    record("assistant", [{"type": "text", "text": "Working on: " + task}])
    path = os.path.join(os.getcwd(), "out.txt")
    record("assistant", [{"type": "tool_use", "name": "Write", "input": {"file_path": path}}])
    record("user", [{"type": "tool_result", "content": "written"}])
    sys.stdout.write("Working on: " + task + "\n> "); sys.stdout.flush()
    time.sleep(turn_s)
    record("assistant", [{"type": "text", "text": "Done: " + task}])
    sys.stdout.write("\rDone: " + task + "\n"); sys.stdout.flush()
    hook("stop", last_assistant_message="Done: " + task)
    with open(session, "a") as f:
        f.write(json.dumps({"type": "system", "subtype": "stop_hook_summary"}) + "\n")
"""


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def bridge(zipapp: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    agent = tmp_path / "hooked_agent.py"
    agent.write_text(HOOKED_AGENT)
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "work").mkdir()
    config = {
        "agent_command": [sys.executable, str(agent), str(GLUE), "1.5"],
        "cwd": str(tmp_path / "work"),
        "listen": "127.0.0.1:0",
        "token_file": str(tmp_path / "token"),
        "state_dir": str(tmp_path / "state"),
        "initial_prompt": "first task",
        "initial_prompt_id": "first",
        "profile": {"state_source": "hooks", "quiet_ms": 100, "take_timeout_s": 3},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    err = tmp_path / "bridge.err"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-S", str(zipapp), "--config", str(tmp_path / "config.json")],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
        )
    try:
        match = wait_until(
            lambda: re.search(r"listening on [\d.]+:(\d+)", err.read_text()), 30, "listening"
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{match.group(1)}", headers=headers, timeout=HTTP_TIMEOUT
        ) as client:
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert TOKEN not in err.read_text()


def dockyard(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/status").json()["dockyard"])


def test_bridge_follows_the_agents_hooks(bridge: httpx.Client) -> None:
    # the initial prompt: working through the turn although "> " shows at once
    status = wait_until(
        lambda: (s := dockyard(bridge))["hooks"]["events"].get("prompt_submitted") and s,
        30,
        "the first prompt_submitted",
    )
    assert status["state"] == "working" and status["state_source"] == "hooks"
    time.sleep(0.8)  # quiet at "> " for much longer than quiet_ms: the screen would say idle
    status = dockyard(bridge)
    assert status["state"] == "working" and status["hooks"]["busy"]
    assert status["state_reason"] == "hook prompt_submitted"
    status = wait_until(lambda: (s := dockyard(bridge))["state"] == "idle" and s, 30, "idle")
    assert status["hooks"]["last_event"] == "stop" and status["state_reason"] == "hook stop"
    [prompt] = bridge.get("/dockyard/prompts").json()["prompts"]
    assert prompt["state"] == "taken" and not prompt["assumed"]

    # a follow-up: working at once, idle after its stop
    assert bridge.post("/message", json={"type": "user", "content": "second"}).status_code == 200
    assert dockyard(bridge)["state"] == "working"
    wait_until(lambda: dockyard(bridge)["hooks"]["events"].get("stop") == 2, 30, "second stop")
    assert dockyard(bridge)["state"] == "idle"

    # a hookless command is assumed taken after take_timeout_s; then the screen decides
    bridge.post("/message", json={"type": "user", "content": "/cost"})
    wait_until(lambda: dockyard(bridge)["state"] == "idle", 30, "idle after /cost")
    prompts = bridge.get("/dockyard/prompts").json()["prompts"]
    assert prompts[-1]["assumed"] and dockyard(bridge)["state_reason"].startswith("screen")


def test_the_agents_replies_reach_the_log_once_each(bridge: httpx.Client) -> None:
    wait_until(lambda: dockyard(bridge)["hooks"]["events"].get("stop"), 30, "the first stop")
    bridge.post("/message", json={"type": "user", "content": "second"})
    wait_until(lambda: dockyard(bridge)["hooks"]["events"].get("stop") == 2, 30, "second stop")
    log = bridge.get("/dockyard/log", params={"after": 0}).json()["entries"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    said = [e["content"] for e in log if e.get("source") == "agent"]
    assert said == [
        "Working on: first task",
        "[tool] Write out.txt",
        "Done: first task",
        "Working on: second",
        "[tool] Write out.txt",
        "Done: second",
    ]
    # each reply sits in its turn: after its prompt, before the next one
    first, second = [i for i, e in enumerate(log) if e["type"] == "input"]
    where = {e["content"]: i for i, e in enumerate(log) if e.get("source") == "agent"}
    assert first < where["Done: first task"] < second < where["Done: second"]
    # everything else the agent printed is there too, marked as its screen's
    screen = [e for e in log if e["type"] == "output" and e.get("source") != "agent"]
    assert screen and all(e["source"] == "screen" for e in screen)
    assert "Done: first task" in [e["content"] for e in screen]


def test_hook_endpoint(bridge: httpx.Client) -> None:
    reply = bridge.post("/dockyard/hook", json={"event": "notification"})
    assert reply.status_code == 200
    assert reply.json()["ok"] and reply.json()["known"] and reply.json()["state_source"] == "hooks"
    reply = bridge.post("/dockyard/hook", json={"event": "SomethingNew"})
    assert reply.status_code == 200 and not reply.json()["known"]
    assert dockyard(bridge)["hooks"]["ignored"] == 1
    assert bridge.post("/dockyard/hook", json={"event": ""}).status_code == 422
    bad_text = bridge.post("/dockyard/hook", json={"event": "stop", "text": 3})
    assert bad_text.status_code == 422 and bad_text.json()["detail"] == "text must be a string"
    assert bad_text.json()["errors"][0]["location"] == "body.text"
    reply = bridge.post("/dockyard/hook", json={"event": "notification", "text": "a\nb"})
    assert reply.json()["lines"] == 2
    log = bridge.get("/dockyard/log", params={"after": 0}).json()["entries"]
    assert [e["content"] for e in log if e.get("source") == "agent"][-2:] == ["a", "b"]
    assert bridge.post("/dockyard/hook", content=b"[1]").status_code == 422
    assert bridge.post("/dockyard/hook", content=b"[1").status_code == 400
    assert bridge.get("/dockyard/hook").status_code == 405
    unauthorized = httpx.post(
        f"{bridge.base_url}/dockyard/hook",
        json={"event": "stop"},
        headers={"Authorization": "Bearer wrong"},
        timeout=HTTP_TIMEOUT,
    )
    assert unauthorized.status_code == 401


# -- submitting by bracketed paste (Claude Code's profile) --------------------------------


def test_paste_submit_keeps_lines_and_cannot_be_broken_out_of() -> None:
    assert submit_text("a\r\nb\nc", "paste") == "\x1b[200~a\nb\nc\x1b[201~\r"
    # an ESC inside would end the paste early: it shows instead
    assert submit_text("x\x1b[201~rm -rf", "paste") == "\x1b[200~x\u241b[201~rm -rf\x1b[201~\r"
    assert submit_text("a\nb") == "a b\r"  # line mode: one line
    config = parse_config({"agent_command": ["a"], "profile": {"submit": "paste"}})
    assert config.profile.submit == "paste"
    assert AgentProfile(submit="paste").submit == "paste"
