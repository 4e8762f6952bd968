"""Templates as a product: validate, push packing, versions, secrets (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner.engine.secrets import SecretStore
from provisioner.errors import ParameterError, TemplateNotFound
from provisioner.templating.catalog import Catalog, load_template
from provisioner.templating.push import pack_folder, push_archive
from provisioner.templating.render import render_workspace
from provisioner.templating.versions import VersionStore


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_template(folder: Path, command: str = "run") -> Path:
    write(
        folder / "template.yaml",
        "name: demo\nparameters:\n  - {name: key, type: string, secret: true, env: DEMO_KEY}\n"
        f"  - {{name: mode, type: string, required: true}}\nagent:\n  command: [{command}]\n",
    )
    write(folder / "presets" / "fast.yaml", "default: true\nparameters: {mode: fast}\n")
    return folder


def test_validate_ok_and_errors_with_file_and_line(tmp_path: Path) -> None:
    folder = make_template(tmp_path / "demo")
    ok = CliRunner().invoke(cli, ["template", "validate", str(folder)])
    assert ok.exit_code == 0, ok.output
    assert "ok: template demo version" in ok.stdout and "presets rendered: fast" in ok.stdout

    write(folder / "template.yaml", "name: demo\nagent:\n  command: run\n  colour: red\n")
    bad = CliRunner().invoke(cli, ["template", "validate", str(folder)])
    assert bad.exit_code == 1
    assert f"{folder / 'template.yaml'}:3: field agent.command" in bad.stderr
    assert f"{folder / 'template.yaml'}:4: field agent.colour: unknown field" in bad.stderr


def test_validate_reports_a_preset_that_does_not_render(tmp_path: Path) -> None:
    folder = make_template(tmp_path / "demo")
    write(folder / "presets" / "broken.yaml", "parameters: {mode: 3, speed: 9}\n")
    result = CliRunner().invoke(cli, ["template", "validate", str(folder)])
    assert result.exit_code == 1
    assert "preset broken" in result.stderr and "Unknown parameter 'speed'" in result.stderr


def test_push_stores_versions_and_pins_them(tmp_path: Path) -> None:
    catalog = Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "store"))
    folder = make_template(tmp_path / "demo")
    first, tpl1 = push_archive(catalog, pack_folder(folder), "v1")
    assert catalog.get("demo").version == first.version
    make_template(folder, command="run2")
    second, _ = push_archive(catalog, pack_folder(folder), None)
    assert second.version != first.version
    assert catalog.get("demo").config.agent.command == ["run2"]  # newest push is active
    pinned = catalog.get("demo", "v1")  # by label
    assert pinned.version == first.version and pinned.config.agent.command == ["run"]
    assert catalog.get("demo", first.version[:6]).version == first.version  # by prefix
    assert [v.label for v in catalog.versions.versions("demo")] == ["v1", None]  # type: ignore[union-attr]
    with pytest.raises(TemplateNotFound, match="Version 'nope' of template 'demo' is unknown"):
        catalog.get("demo", "nope")
    assert tpl1.presets["fast"].config.parameters == {"mode": "fast"}


def test_pack_refuses_a_folder_without_template(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:9", "template", "push", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no template.yaml" in result.stderr


def test_secrets_come_from_env_or_secrets_file_and_stay_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpl = load_template(make_template(tmp_path / "demo"), [])
    store = SecretStore(tmp_path / "home")
    assert store.from_environment(tpl, {}) == {}
    write(tmp_path / "home" / "secrets.yaml", "demo:\n  key: from-file\n")
    assert store.from_environment(tpl, {}) == {"key": "from-file"}
    monkeypatch.setenv("DEMO_KEY", "from-env")
    assert store.from_environment(tpl, {}) == {"key": "from-env"}
    assert store.from_environment(tpl, {"key": "given"}) == {}  # --param wins
    store.save("t1", {"key": "s3cret"})
    path = tmp_path / "home" / "secrets" / "t1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.load("t1") == {"key": "s3cret"}
    store.delete("t1")
    assert store.load("t1") == {} and not path.exists()


def test_search_path_from_config_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioner import paths

    home = tmp_path / "home"
    monkeypatch.setenv("DOCKYARD_HOME", str(home))
    monkeypatch.setenv("DOCKYARD_TEMPLATE_PATH", str(tmp_path / "from-env"))
    assert paths.template_search_path()[1:] == [tmp_path / "from-env"]
    write(home / "config.yaml", f"template_path:\n  - {tmp_path / 'team'}\n")
    make_template(tmp_path / "team" / "demo")
    assert paths.template_search_path()[1:] == [tmp_path / "team", tmp_path / "from-env"]
    assert "demo" in Catalog().names()
    write(home / "config.yaml", "template_path: 3\n")
    with pytest.raises(Exception, match="template_path must be a list"):
        paths.template_search_path()


def test_a_preset_may_leave_a_required_parameter_to_the_task(tmp_path: Path) -> None:
    folder = make_template(tmp_path / "demo")
    write(folder / "presets" / "plain.yaml", "parameters: {}\n")  # leaves `mode`
    ok = CliRunner().invoke(cli, ["template", "validate", str(folder)])
    assert ok.exit_code == 0, ok.output
    assert "plain (leaves mode to the task)" in ok.stdout
    # the rest of such a preset is still checked
    write(folder / "presets" / "plain.yaml", "parameters: {speed: 9}\n")
    bad = CliRunner().invoke(cli, ["template", "validate", str(folder)])
    assert bad.exit_code == 1 and "Unknown parameter 'speed'" in bad.stderr
    # and only the create fails, naming the presets that set it
    write(folder / "presets" / "plain.yaml", "parameters: {}\n")
    tpl = load_template(folder, [])
    with pytest.raises(ParameterError, match="Required parameter not provided: mode") as info:
        render_workspace(tpl, tpl.presets["plain"], {})
    assert "presets that set it: fast" in str(info.value)
