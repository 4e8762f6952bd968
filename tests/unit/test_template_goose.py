"""The built-in goose template: what it renders, its prompt profile, its resume helper."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from provisioner import paths
from provisioner.errors import ParameterError
from provisioner.templating.catalog import Catalog
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

URL = "http://172.17.0.1:9999/v1"
GLUE = paths.builtin_templates_dir() / "goose" / "dockyard_goose.py"


def test_default_preset_renders_an_unattended_goose() -> None:
    tpl = Catalog().get("goose")
    spec = render_workspace(tpl, select_preset(tpl, None), {"base_url": URL})
    assert spec.preset == "default" and spec.memory == "2g"
    # Dockyard's MCP tools (the bridge's relay) as a stdio extension of the session
    relay = ["--with-extension", "dockyard-mcp"]
    assert spec.agent_command == ["goose", "session", *relay]
    assert spec.resume_command == ["dockyard-goose", "resume", *relay]
    assert spec.setup_script is None  # the environment is all the configuration
    assert spec.env["OPENAI_BASE_URL"] == URL
    assert spec.env["GOOSE_PROVIDER"] == "openai" and spec.env["GOOSE_MODEL"] == "gpt-4o"
    assert spec.env["OPENAI_API_KEY"] == "sk-dockyard-placeholder-key"
    # nothing that would stop to ask: no tool approvals, no telemetry question, no keyring
    assert spec.env["GOOSE_MODE"] == "auto"
    assert spec.env["GOOSE_TELEMETRY_OFF"] == "true"
    assert spec.env["GOOSE_DISABLE_KEYRING"] == "true"
    assert spec.build is not None
    assert '"@aaif/$package@"1.52.0 ' in spec.build.dockerfile
    assert "{{ base_image }}" in spec.build.dockerfile  # filled in at build time
    assert "dockyard-goose" in spec.build.dockerfile
    profile = tpl.config.agent.profile
    assert profile.state_source == "screen" and profile.submit == "paste"


def test_parameters_required_checked_and_redacted() -> None:
    tpl = Catalog().get("goose")
    with pytest.raises(ParameterError, match="Required parameter not provided: base_url"):
        render_workspace(tpl, None, {})
    spec = render_workspace(
        tpl,
        None,
        {"base_url": URL, "api_key": "sk-real-secret", "model": "m1", "goose_version": "1.50.0"},
    )
    assert spec.env["OPENAI_API_KEY"] == "sk-real-secret"
    assert spec.env["GOOSE_MODEL"] == "m1"
    assert not any("sk-real-secret" in arg for arg in spec.agent_command)
    assert spec.build is not None and '"@aaif/$package@"1.50.0 ' in spec.build.dockerfile
    shown = redact(tpl, spec.parameters)
    assert shown["api_key"] != "sk-real-secret" and shown["base_url"] == URL
    assert "sk-real-secret" not in json.dumps(shown)
    secret = {p.name: p for p in tpl.config.parameters}["api_key"]
    assert secret.secret and secret.env == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    ("line", "is_prompt"),
    [
        ("> ", True),  # the cursor's line up to the cursor (a grey hint follows it)
        (">", True),
        ("> fix the tests", False),  # typed text
        ("•  Indexing imagination...  (Ctrl+C to interrupt)", False),  # the spinner
        ("  ▸ shell", False),
        ("", False),  # under the output while a tool runs or the model thinks
    ],
)
def test_prompt_regex_matches_the_empty_input_line_only(line: str, is_prompt: bool) -> None:
    profile = Catalog().get("goose").config.agent.profile
    assert bool(re.search(profile.prompt_regex, line)) is is_prompt


# -- dockyard-goose resume -----------------------------------------------------------------


def _glue() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dockyard_goose", GLUE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_goose(tmp_path: Path, output: str, code: int = 0) -> str:
    """A `goose` whose `session list` prints `output` and logs its arguments."""
    script = tmp_path / "bin" / "goose"
    script.parent.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "args"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {log}\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_resume_continues_the_session_kept_for_the_workdir(tmp_path: Path) -> None:
    glue = _glue()
    goose = _fake_goose(tmp_path, json.dumps([{"id": "20260101_1", "working_dir": "/w"}]))
    assert glue.resume_argv(["--debug"], "/w", goose) == [goose, "session", "--resume", "--debug"]
    listed = (tmp_path / "args").read_text().split()
    assert listed == ["session", "list", "--format", "json", "--working_dir", "/w"]


@pytest.mark.parametrize(("output", "code"), [("[]", 0), ("not json", 0), ("[]", 1)])
def test_resume_starts_a_session_when_there_is_none(tmp_path: Path, output: str, code: int) -> None:
    glue = _glue()
    goose = _fake_goose(tmp_path, output, code)
    assert glue.resume_argv([], "/w", goose) == [goose, "session"]


def test_resume_without_goose_starts_a_session() -> None:
    assert _glue().resume_argv([], "/w", "/nonexistent/goose")[1:] == ["session"]


def test_glue_is_an_executable_standard_library_script() -> None:
    text = GLUE.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    imports = set(re.findall(r"^(?:import|from) (\w+)", text, re.MULTILINE))
    assert imports <= {"__future__", "json", "os", "subprocess", "sys"}, imports
    assert _glue().main(["nonsense"]) == 2
