"""Unit tests for the bridge's configuration loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.bridge.runtime.config import (
    ConfigError,
    Profile,
    config_document,
    load_config,
    parse_config,
)


def test_defaults_fill_missing_keys() -> None:
    config = parse_config({"agent_command": ["agent"]})
    assert config.profile == Profile()
    assert config.profile.quiet_s == 0.25
    assert (config.host, config.port) == ("0.0.0.0", 7777)
    assert (config.columns, config.rows) == (120, 40)
    assert config.resume_command is None and config.initial_prompt is None
    assert config.setup_script is None and config.setup_shell is None


def test_full_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "agent_command": ["python3", "agent.py"],
                "resume_command": ["python3", "agent.py", "--resume"],
                "env": {"A": "1"},
                "listen": "127.0.0.1:9000",
                "initial_prompt": "go",
                "profile": {"prompt_regex": r"^\$ $", "quiet_ms": 400, "take_timeout_s": 3},
                "columns": 100,
                "rows": 30,
            }
        )
    )
    config = load_config(path)
    assert config.resume_command == ["python3", "agent.py", "--resume"]
    assert config.env == {"A": "1"} and config.port == 9000
    assert config.profile.quiet_ms == 400 and config.profile.take_timeout_s == 3.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "agent_command"),
        ({"agent_command": []}, "agent_command"),
        ({"agent_command": ["a"], "listen": "nowhere"}, "listen"),
        ({"agent_command": ["a"], "profile": {"prompt_regex": "("}}, "prompt_regex"),
        ({"agent_command": ["a"], "profile": {"quiet_ms": 0}}, "quiet_ms"),
        ({"agent_command": ["a"], "profile": {"prompt_last": "yes"}}, "prompt_last"),
        ({"agent_command": ["a"], "profile": {"prompt_last": 1}}, "prompt_last"),
        ({"agent_command": ["a"], "env": {"A": 1}}, "env"),
        ({"agent_command": ["a"], "columns": True}, "columns"),
        ({"agent_command": ["a"], "setup_script": ["echo"]}, "setup_script"),
        ({"agent_command": ["a"], "setup_shell": "/bin/sh -c"}, "setup_shell"),
        ({"agent_command": ["a"], "setup_shell": []}, "setup_shell"),
        ([], "JSON object"),
    ],
)
def test_bad_values_are_named(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_unknown_keys_only_warn() -> None:
    warnings: list[str] = []
    parse_config({"agent_command": ["a"], "future_key": 1}, warn=warnings.append)
    assert warnings == ["ignoring unknown configuration keys: future_key"]


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    config = parse_config({"agent_command": ["a"], "token_file": str(tmp_path / "token")})
    with pytest.raises(ConfigError, match="token_file"):
        config.read_token()
    (tmp_path / "token").write_text("  secret\n")
    assert config.read_token() == "secret"


def test_setup_keys() -> None:
    config = parse_config(
        {"agent_command": ["a"], "setup_script": "make deps", "setup_shell": ["/bin/zsh", "-c"]}
    )
    assert config.setup_script == "make deps" and config.setup_shell == ["/bin/zsh", "-c"]
    # a blank script runs nothing: no setup at all; null is the default
    assert parse_config({"agent_command": ["a"], "setup_script": " \n"}).setup_script is None
    config = parse_config({"agent_command": ["a"], "setup_script": None, "setup_shell": None})
    assert config.setup_script is None and config.setup_shell is None


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["claude", "--dangerously-skip-permissions", "--model", "m"], "claude"),
        (["aider", "--model", "openai/m"], "aider"),
        (["goose", "session"], "goose"),
        (["codex", "--no-daemon"], "codex"),
        (["/usr/local/bin/claude"], "claude"),
        (["npx", "-y", "@openai/codex@0.5.0"], "codex"),
        (["npx", "@anthropic-ai/claude-code"], "claude"),
        (["env", "TERM=xterm", "gemini"], "gemini"),
        (["python3", "/usr/local/bin/scripted-agent", "--work-seconds", "1"], "custom"),
        (["bash", "-c", "claude"], "custom"),
    ],
)
def test_agentapi_agent_type_is_told_by_the_program(command: list[str], expected: str) -> None:
    assert parse_config({"agent_command": command}).agent_type == expected


def test_agent_type_may_be_given() -> None:
    config = parse_config({"agent_command": ["python3", "wrap.py"], "agent_type": "aider"})
    assert config.agent_type == "aider"
    with pytest.raises(ConfigError, match="agent_type must be one of"):
        parse_config({"agent_command": ["x"], "agent_type": "robot"})


def test_the_server_writes_what_the_bridge_reads_without_a_warning() -> None:
    # the wire form is defined once (config_document); the server builds its document
    # from the task's spec with it, and the bridge parses it back field for field
    from provisioner.engine.workspace import bridge_config
    from provisioner.templating.catalog import Catalog
    from provisioner.templating.render import render_workspace
    from tests.stored import new_task

    tpl = Catalog().get("scripted")
    spec = render_workspace(tpl, tpl.default_preset(), {})
    task = new_task(prompt="hello there", template="scripted")
    warnings: list[str] = []
    config = parse_config(json.loads(json.dumps(bridge_config(task, spec))), warnings.append)
    assert warnings == []
    assert config.agent_command == spec.agent_command and config.cwd == spec.workdir
    assert config.initial_prompt == "hello there"
    assert config.initial_prompt_id == f"{task.id}-initial"
    assert config.profile.prompt_regex == spec.profile.prompt_regex
    assert config.profile.quiet_ms == spec.profile.quiet_ms
    assert config.profile.submit == spec.profile.submit
    assert config.profile.prompt_last is spec.profile.prompt_last is True  # scripted's
    assert config.setup_script == spec.setup_script
    assert config_document(config) == bridge_config(task, spec)


def test_every_field_survives_the_wire() -> None:
    full = parse_config(
        {
            "agent_command": ["claude"],
            "resume_command": ["claude", "--continue"],
            "env": {"A": "1"},
            "initial_prompt": "p",
            "initial_prompt_id": "i",
            "setup_script": "echo hi",
            "setup_shell": ["sh", "-c"],
            "agent_type": "aider",
            "profile": {
                "submit": "paste",
                "quiet_ms": 40,
                "state_source": "hooks",
                "prompt_last": True,
            },
            "columns": 80,
            "rows": 24,
        }
    )
    assert parse_config(json.loads(json.dumps(config_document(full)))) == full
