"""Loading, parameter resolution and rendering of templates and presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provisioner.errors import ParameterError, PresetNotFound, TemplateError, TemplateNotFound
from provisioner.templating.catalog import Catalog, load_template
from provisioner.templating.params import REDACTED, redact
from provisioner.templating.render import render_workspace, select_preset


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


TEMPLATE = """\
name: demo
description: a demo
parameters:
  - name: repo
    type: string
    required: true
  - name: tries
    type: integer
    default: 2
  - name: fast
    type: bool
    default: false
  - name: model
    type: string
    default: small
    options: [small, large]
  - name: api_key
    type: string
    secret: true
workspace:
  image: base
  env:
    REPO: "{{ repo }}"
    TRIES: "{{ tries * 2 }}"
agent:
  command: ["agent", "--model", "{{ model }}", "{% if fast %}--fast{% else %}--slow{% endif %}"]
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    write(tmp_path / "templates" / "demo" / "template.yaml", TEMPLATE)
    write(tmp_path / "presets" / "demo" / "web.yaml", "default: true\nparameters:\n  repo: web\n")
    write(tmp_path / "presets" / "demo" / "api.yaml", "parameters:\n  repo: api\n  fast: true\n")
    write(tmp_path / "presets" / "demo" / "bare.yaml", "parameters: {}\n")
    return Catalog([tmp_path / "templates"], [tmp_path / "presets"])


def test_render_with_preset_and_overrides(catalog: Catalog) -> None:
    tpl = catalog.get("demo")
    spec = render_workspace(tpl, tpl.preset("api"), {"tries": "5", "model": "large"})
    assert spec.env == {"REPO": "api", "TRIES": "10"}
    assert spec.agent_command == ["agent", "--model", "large", "--fast"]
    assert spec.parameters["tries"] == 5
    assert spec.preset == "api"
    assert spec.template_version == tpl.version


def test_default_preset_is_used_when_none_named(catalog: Catalog) -> None:
    tpl = catalog.get("demo")
    preset = select_preset(tpl, None)
    assert preset is not None and preset.name == "web"
    assert render_workspace(tpl, preset, {}).env["REPO"] == "web"


def test_missing_required_parameter_names_presets_that_set_it(catalog: Catalog) -> None:
    tpl = catalog.get("demo")
    with pytest.raises(ParameterError) as info:
        render_workspace(tpl, tpl.preset("bare"), {})
    assert info.value.message == "Required parameter not provided: repo"
    assert info.value.hint == "presets that set it: api, web"


def test_unknown_parameter(catalog: Catalog) -> None:
    tpl = catalog.get("demo")
    with pytest.raises(ParameterError, match="Unknown parameter 'colour' from --param"):
        render_workspace(tpl, tpl.preset("web"), {"colour": "red"})


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("tries", "many", "expected an integer"),
        ("tries", "2.5", "expected an integer"),
        ("fast", "perhaps", "expected true or false"),
        ("model", "huge", "'huge' is not one of: small, large"),
    ],
)
def test_wrong_types_are_named(catalog: Catalog, key: str, value: str, fragment: str) -> None:
    tpl = catalog.get("demo")
    with pytest.raises(ParameterError, match=fragment) as info:
        render_workspace(tpl, tpl.preset("web"), {key: value})
    assert f"Parameter {key} from --param" in info.value.message


def test_secrets_are_redacted(catalog: Catalog) -> None:
    tpl = catalog.get("demo")
    spec = render_workspace(tpl, tpl.preset("web"), {"api_key": "sk-123"})
    assert spec.parameters["api_key"] == "sk-123"
    assert redact(tpl, spec.parameters)["api_key"] == REDACTED


def test_unknown_template_and_preset(catalog: Catalog) -> None:
    with pytest.raises(TemplateNotFound, match="Unknown template 'nope' \\(templates: demo\\)"):
        catalog.get("nope")
    with pytest.raises(PresetNotFound, match="has no preset 'nope' \\(presets: api, bare, web\\)"):
        catalog.get("demo").preset("nope")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t" / "template.yaml", "name: x\nagent: [unclosed\n")
    with pytest.raises(TemplateError) as info:
        load_template(path.parent, [])
    assert f"{path}:3" in info.value.message and "invalid YAML" in info.value.message


def test_schema_errors_name_file_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t" / "template.yaml",
        "name: x\ncolour: red\nagent:\n  command: []\nparameters:\n  - name: p\n    type: float\n",
    )
    with pytest.raises(TemplateError) as info:
        load_template(path.parent, [])
    msg = info.value.message
    assert f"{path}:2: field colour: unknown field" in msg
    assert f"{path}:4: field agent.command" in msg
    assert f"{path}:7: field parameters.0.type" in msg


def test_undefined_variable_in_template(tmp_path: Path) -> None:
    write(
        tmp_path / "t" / "template.yaml",
        "name: x\nagent:\n  command: ['run', '{{ missing }}']\n",
    )
    tpl = load_template(tmp_path / "t", [])
    with pytest.raises(TemplateError, match=r"field agent.command\[1\]: 'missing' is undefined"):
        render_workspace(tpl, None, {})


def test_sandbox_blocks_attribute_escape(tmp_path: Path) -> None:
    write(
        tmp_path / "t" / "template.yaml",
        "name: x\nagent:\n  command: ['{{ ''.__class__.__mro__ }}']\n",
    )
    tpl = load_template(tmp_path / "t", [])
    with pytest.raises(TemplateError):
        render_workspace(tpl, None, {})


def test_version_changes_with_content(tmp_path: Path) -> None:
    path = write(tmp_path / "t" / "template.yaml", "name: x\nagent:\n  command: [a]\n")
    before = load_template(path.parent, []).version
    write(tmp_path / "t" / "setup.sh", "echo hi\n")
    assert load_template(path.parent, []).version != before


def test_builtin_scripted_template_renders() -> None:
    tpl = Catalog().get("scripted")
    assert {"default", "slow"} <= set(tpl.presets)
    slow = render_workspace(tpl, tpl.preset("slow"), {})
    assert slow.agent_command[-1] == "5"
    assert slow.build is not None and "FROM {{ base_image }}" in slow.build.dockerfile
    default = render_workspace(tpl, select_preset(tpl, None), {})
    assert default.agent_command[-1] == "1" and default.memory == "512m"


CHECKED = """\
name: checked
parameters:
  - name: repo
    type: string
    default: web
    validation: {regex: "[a-z][a-z0-9-]*", message: "lowercase repository names only"}
  - name: branch
    type: string
    default: "{{ repo }}-work"
  - name: tries
    type: integer
    default: 3
    validation: {min: 1, max: 5}
  - name: size
    type: choice
    options: [small, large, 2]
    default: small
  - name: tags
    type: list
    default: [a]
    validation: {max: 2}
agent:
  command: ["run", "{{ branch }}", "{{ size }}", "{{ tags | join(',') }}"]
"""


@pytest.fixture
def checked(tmp_path: Path) -> Catalog:
    write(tmp_path / "templates" / "checked" / "template.yaml", CHECKED)
    return Catalog([tmp_path / "templates"], [tmp_path / "presets"])


def test_defaults_may_reference_other_parameters(checked: Catalog) -> None:
    tpl = checked.get("checked")
    assert render_workspace(tpl, None, {}).agent_command == ["run", "web-work", "small", "a"]
    spec = render_workspace(tpl, None, {"repo": "api", "tags": "x,y", "size": "2"})
    assert spec.agent_command == ["run", "api-work", "2", "x,y"]
    assert spec.parameters["size"] == 2  # a choice keeps the option's own type


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"repo": "Web"}, "does not match '[a-z][a-z0-9-]*' (lowercase repository names only)"),
        ({"tries": "0"}, "value 0 is below the minimum 1"),
        ({"tries": "9"}, "value 9 is above the maximum 5"),
        ({"tags": "a,b,c"}, "items 3 is above the maximum 2"),
        ({"size": "huge"}, "'huge' is not one of: small, large, 2"),
    ],
)
def test_validation_rules(checked: Catalog, overrides: dict[str, str], fragment: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(fragment)):
        render_workspace(checked.get("checked"), None, overrides)


def test_choice_without_options_is_a_template_error(tmp_path: Path) -> None:
    write(
        tmp_path / "t" / "template.yaml",
        "name: x\nparameters:\n  - {name: p, type: choice}\nagent:\n  command: [a]\n",
    )
    with pytest.raises(TemplateError, match="is a choice but lists no options"):
        load_template(tmp_path / "t", [])


def test_line_of_points_into_nested_yaml() -> None:
    from provisioner.templating.locate import line_of

    text = "name: x\nagent:\n  command:\n    - a\n    - b\nparameters: []\n"
    assert line_of(text, ["agent", "command", 1]) == 5
    assert line_of(text, ["agent", "nope"]) == 2
    assert line_of(text, ["parameters"]) == 6
    assert line_of("[unclosed", ["x"]) is None


def test_presets_inside_the_template_folder(tmp_path: Path) -> None:
    write(tmp_path / "t" / "template.yaml", "name: inner\nagent:\n  command: [a]\n")
    write(tmp_path / "t" / "presets" / "mine.yaml", "default: true\nparameters: {}\n")
    tpl = load_template(tmp_path / "t", [])
    assert list(tpl.presets) == ["mine"] and tpl.default_preset() is not None
