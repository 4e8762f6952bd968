"""The built-in aider template: what it renders, its prompt profile, its metadata helper."""

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


def test_default_preset_renders_an_unattended_aider() -> None:
    tpl = Catalog().get("aider")
    spec = render_workspace(tpl, select_preset(tpl, None), {"base_url": URL, "model": "m1"})
    assert spec.preset == "default" and spec.memory == "2g"
    argv = spec.agent_command
    assert argv[0] == "aider"
    assert argv[argv.index("--model") + 1] == "openai/m1"
    assert argv[argv.index("--weak-model") + 1] == "openai/m1"
    assert argv[argv.index("--openai-api-base") + 1] == URL
    assert argv[argv.index("--edit-format") + 1] == "whole"
    # nothing that would wait for a person or call out at start
    for flag in (
        "--yes-always",
        "--no-fancy-input",
        "--no-pretty",
        "--no-check-update",
        "--no-analytics",
        "--no-show-release-notes",
        "--no-detect-urls",
    ):
        assert flag in argv
    # the key goes in the environment, never on the command line
    assert spec.env["OPENAI_API_KEY"] == "sk-dummy"
    assert not any("sk-dummy" in arg for arg in argv)
    assert spec.resume_command is not None
    assert spec.resume_command == ["aider", "--restore-chat-history", *argv[1:]]
    assert spec.setup_script and "dockyard-aider-metadata" in spec.setup_script
    assert spec.build is not None and "aider-chat==" in spec.build.dockerfile


def test_base_url_is_required_without_the_preset() -> None:
    tpl = Catalog().get("aider")
    with pytest.raises(ParameterError, match="Required parameter not provided: base_url"):
        render_workspace(tpl, None, {})
    spec = render_workspace(tpl, None, {"base_url": URL, "api_key": "sk-real"})
    assert spec.env["OPENAI_API_KEY"] == "sk-real"
    assert redact(tpl, spec.parameters)["api_key"] != "sk-real"
    with pytest.raises(ParameterError):
        render_workspace(tpl, None, {"base_url": URL, "edit_format": "freestyle"})


@pytest.mark.parametrize(
    ("line", "is_prompt"),
    [
        ("> ", True),
        ("ask> ", True),
        ("architect> ", True),
        ("diff-fenced> ", True),
        ("ask multi> ", True),
        ("multi> ", True),
        ("> quoted text", False),
        ("if a > ", False),
        ("Tokens: 598 sent, 20 received.", False),
        ("hello.py", False),
        ("Create new file? (Y)es/(N)o [Yes]: ", False),
    ],
)
def test_prompt_regex_matches_aiders_input_line_only(line: str, is_prompt: bool) -> None:
    profile = Catalog().get("aider").config.agent.profile
    assert bool(re.search(profile.prompt_regex, line)) is is_prompt


def _metadata_module() -> ModuleType:
    path = paths.builtin_templates_dir() / "aider" / "model_metadata.py"
    spec = importlib.util.spec_from_file_location("aider_model_metadata", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metadata_uses_litellms_entry_or_defaults(tmp_path: Path) -> None:
    meta = _metadata_module()
    shipped = tmp_path / "model_prices_and_context_window_backup.json"
    shipped.write_text(
        json.dumps(
            {
                "gpt-4o": {"litellm_provider": "openai", "max_input_tokens": 128000},
                "other": {"litellm_provider": "azure", "max_input_tokens": 1},
            }
        )
    )
    pattern = str(tmp_path / "model_prices*.json")
    out = tmp_path / "home" / ".aider" / "meta.json"

    assert meta.main(["x", "openai/gpt-4o", str(out)], pattern) == 0
    assert json.loads(out.read_text()) == {
        "openai/gpt-4o": {"litellm_provider": "openai", "max_input_tokens": 128000}
    }
    # a name litellm knows under another provider is not taken for this one
    assert meta.main(["x", "openai/other", str(out)], pattern) == 0
    entry = json.loads(out.read_text())["openai/other"]
    assert entry["litellm_provider"] == "openai" and entry["max_input_tokens"] == 128000
    assert entry["input_cost_per_token"] == 0.0
    # no shipped list at all: still defaults, never a failure
    assert meta.main(["x", "ollama/qwen", str(out)], str(tmp_path / "none*.json")) == 0
    assert json.loads(out.read_text())["ollama/qwen"]["litellm_provider"] == "ollama"
    assert meta.main(["x"], pattern) == 2
