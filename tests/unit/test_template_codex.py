"""The built-in codex template: what it renders, its prompt profile, its config.toml seeding."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import stat
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from provisioner import paths
from provisioner.errors import ParameterError
from provisioner.templating.catalog import Catalog
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

URL = "http://172.17.0.1:9999/v1"
# Codex's composer mark: U+203A SINGLE RIGHT-POINTING ANGLE QUOTATION MARK
MARK = "\u203a"
GLUE = paths.builtin_templates_dir() / "codex" / "dockyard_codex.py"
CATALOG = {
    "models": [
        {"slug": "old-model", "upgrade": {"model": "new-model", "migration_markdown": "Meet"}},
        {"slug": "new-model", "upgrade": None},
        {"slug": "odd", "upgrade": {"migration_markdown": "no target"}},
        "not a model",
    ]
}


def test_default_preset_renders_an_unattended_codex() -> None:
    tpl = Catalog().get("codex")
    spec = render_workspace(tpl, select_preset(tpl, None), {"base_url": URL})
    assert spec.preset == "default" and spec.memory == "2g"
    # the TUI itself, in this process: no background server outliving it
    assert spec.agent_command == ["codex", "--no-daemon"]
    assert spec.resume_command == ["codex", "resume", "--last", "--no-daemon"]
    assert spec.setup_script is not None and spec.setup_script.strip() == "dockyard-codex seed"
    # the endpoint and model reach the setup script; the key stays in the environment
    assert spec.env["DOCKYARD_CODEX_BASE_URL"] == URL
    assert spec.env["DOCKYARD_CODEX_MODEL"] == "gpt-5.5"
    assert spec.env["OPENAI_API_KEY"] == "sk-dockyard-placeholder-key"
    assert not any("sk-" in arg for arg in spec.agent_command)
    assert spec.build is not None
    pinned = {p.name: p for p in tpl.config.parameters}["codex_version"].default
    assert f"@openai/codex@{pinned} " in spec.build.dockerfile  # the version is pinned
    assert "{{ base_image }}" in spec.build.dockerfile  # filled in at build time
    assert "dockyard-codex" in spec.build.dockerfile
    profile = tpl.config.agent.profile
    assert profile.state_source == "screen" and profile.submit == "paste"
    assert profile.quiet_ms >= 500


def test_parameters_required_checked_and_redacted() -> None:
    tpl = Catalog().get("codex")
    with pytest.raises(ParameterError, match="Required parameter not provided: base_url"):
        render_workspace(tpl, None, {})
    spec = render_workspace(
        tpl,
        None,
        {"base_url": URL, "api_key": "sk-real-secret", "model": "m1", "codex_version": "0.1.0"},
    )
    assert spec.env["OPENAI_API_KEY"] == "sk-real-secret"
    assert spec.env["DOCKYARD_CODEX_MODEL"] == "m1"
    assert spec.build is not None and "@openai/codex@0.1.0 " in spec.build.dockerfile
    shown = redact(tpl, spec.parameters)
    assert shown["api_key"] != "sk-real-secret" and shown["base_url"] == URL
    assert "sk-real-secret" not in json.dumps(shown)
    secret = {p.name: p for p in tpl.config.parameters}["api_key"]
    assert secret.secret and secret.env == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    ("line", "is_prompt"),
    [
        (f"{MARK} ", True),
        (MARK, True),
        (f"{MARK} fix the tests", False),  # typed (or queued) text in the composer
        ("> ", False),
        ("• Working (3s • esc to interrupt)", False),
        ("  1. Try new model", False),
        ("", False),
    ],
)
def test_prompt_regex_matches_the_empty_composer_only(line: str, is_prompt: bool) -> None:
    profile = Catalog().get("codex").config.agent.profile
    assert bool(re.search(profile.prompt_regex, line)) is is_prompt


# -- dockyard-codex seed -------------------------------------------------------------------


def _glue() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dockyard_codex", GLUE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_codex(tmp_path: Path, output: str, code: int = 0) -> str:
    """A `codex` whose `debug models` prints `output`."""
    script = tmp_path / "bin" / "codex"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.setenv("DOCKYARD_CODEX_BASE_URL", URL)
    monkeypatch.setenv("DOCKYARD_CODEX_MODEL", "gpt-test")
    return tmp_path / "home"


def test_seed_writes_a_config_that_asks_nothing(home: Path, tmp_path: Path) -> None:
    glue = _glue()
    codex = _fake_codex(tmp_path, json.dumps(CATALOG))
    assert glue.seed("/workspace", codex) == 0
    path = home / ".codex" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = tomllib.loads(path.read_text())
    assert config["model"] == "gpt-test" and config["model_provider"] == "dockyard"
    assert config["model_providers"]["dockyard"] == {
        "name": "Dockyard model endpoint",
        "base_url": URL,
        "env_key": "OPENAI_API_KEY",  # the variable's name, never the key
        "wire_api": "responses",
    }
    assert config["approval_policy"] == "never"
    assert config["sandbox_mode"] == "danger-full-access"
    assert config["check_for_update_on_startup"] is False
    assert config["disable_paste_burst"] is True
    assert config["web_search"] == "disabled"
    assert config["analytics"] == {"enabled": False} and config["feedback"] == {"enabled": False}
    assert config["tui"]["animations"] is True  # quiet_ms counts on the working animation
    assert config["tui"]["alternate_screen"] == "never"
    assert config["projects"] == {"/workspace": {"trust_level": "trusted"}}
    # every upgrade in the catalog is marked as seen: no "try the new model?" question
    assert config["notice"]["model_migrations"] == {"old-model": "new-model"}
    assert config["notice"]["hide_full_access_warning"] is True
    assert all(value is False for value in config["features"].values())
    assert {"apps", "plugins"} <= set(config["features"])


def test_seed_keeps_the_users_settings_and_runs_again(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    glue = _glue()
    codex = _fake_codex(tmp_path, json.dumps(CATALOG))
    path = home / ".codex" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        'model = "theirs"\n'
        'personality = "pragmatic"\n'
        "[features]\nmemories = true\napps = true\n"
        '[mcp_servers.docs]\ncommand = "npx"\nargs = ["-y", "docs-mcp"]\n'
        '[projects."/elsewhere"]\ntrust_level = "untrusted"\n'
        '[[skills.config]]\npath = "/x"\nenabled = false\n'
    )
    assert glue.seed("/workspace", codex) == 0
    assert glue.seed("/workspace", codex) == 0  # idempotent
    config = tomllib.loads(path.read_text())
    assert config["model"] == "gpt-test"  # the task's parameter wins
    assert config["personality"] == "pragmatic"
    assert config["features"]["memories"] is True and config["features"]["apps"] is False
    assert config["mcp_servers"]["docs"] == {"command": "npx", "args": ["-y", "docs-mcp"]}
    assert config["projects"]["/elsewhere"] == {"trust_level": "untrusted"}
    assert config["projects"]["/workspace"] == {"trust_level": "trusted"}
    assert config["skills"]["config"] == [{"path": "/x", "enabled": False}]

    # CODEX_HOME moves it; an empty model leaves Codex's own default; a broken catalog
    # or file is no failure
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("DOCKYARD_CODEX_MODEL", "")
    broken = tmp_path / "elsewhere" / "config.toml"
    broken.parent.mkdir()
    broken.write_text("this is = = not toml")
    assert glue.seed("/workspace", _fake_codex(tmp_path, "not json", code=1)) == 0
    config = tomllib.loads(broken.read_text())
    assert "model" not in config and config["notice"]["model_migrations"] == {}
    assert (tmp_path / "elsewhere" / "config.toml.broken").read_text().startswith("this is")


def test_seed_needs_the_endpoint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_CODEX_BASE_URL")
    glue = _glue()
    assert glue.seed("/workspace", "codex") == 2
    assert not (home / ".codex" / "config.toml").exists()
    assert glue.main(["nonsense"]) == 2


def test_model_migrations_without_codex() -> None:
    assert _glue().model_migrations("/nonexistent/codex") == {}


def test_toml_writer_round_trips_through_tomllib() -> None:
    glue = _glue()
    data = {
        "plain": 'quote " backslash \\ newline \n tab \t del \x7f unicode \u203a',
        "number": 3,
        "ratio": 0.5,
        "flag": True,
        "items": ["a", 1, False, ["nested"]],
        "empty": [],
        "inline": [{"a": 1}, {"b": {"c": "d"}}],
        "with space": {"key.dotted": "v", "sub": {"deeper": {"x": 1}}},
        "empty_table": {},
        "only_tables": {"one": {"x": 1}, "two": {"y": 2}},
        "array": [{"name": "first", "opts": {"k": "v"}}, {"name": "second"}],
    }
    text = glue.dumps(data)
    assert tomllib.loads(text) == data
    special = tomllib.loads(glue.dumps({"inf": math.inf, "ninf": -math.inf, "nan": math.nan}))
    assert special["inf"] == math.inf and special["ninf"] == -math.inf
    assert math.isnan(special["nan"])
    with pytest.raises(TypeError):
        glue.dumps({"bad": object()})
    # what tomllib reads (dates and times too) is written back
    dated = tomllib.loads("when = 2026-01-02T03:04:05Z\nday = 2026-01-02\nat = 03:04:05\n")
    assert tomllib.loads(glue.dumps(dated)) == dated


def test_glue_is_an_executable_standard_library_script() -> None:
    text = GLUE.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    imports = re.findall(r"^(?:import|from) (\w+)", text, re.MULTILINE)
    stdlib = {"__future__", "contextlib", "datetime", "json", "os", "re", "subprocess"}
    stdlib |= {"sys", "tomllib", "pathlib", "typing", "shutil"}
    assert set(imports) <= stdlib, imports
    assert os.access(GLUE, os.R_OK)
