"""Parameters never become code: built-in templates validate every parameter, and the
terraform-docker template's shell scripts take values only as quoted environment variables."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from provisioner import paths
from provisioner.errors import ParameterError
from provisioner.templating.catalog import Catalog, load_template
from provisioner.templating.render import render_string, render_workspace

PAYLOAD = "512m $(id > /tmp/x)"
BUILTINS = sorted(p.name for p in paths.builtin_templates_dir().iterdir() if p.is_dir())
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_reported_memory_payload_is_refused() -> None:
    template = Catalog().get("terraform-docker")
    with pytest.raises(ParameterError) as caught:
        render_workspace(template, template.default_preset(), {"memory": PAYLOAD})
    message = str(caught.value)
    assert "Parameter memory" in message
    assert "^[0-9]+[bkmg]?$" in message and "512m or 2g" in message


@pytest.mark.parametrize("folder", [*BUILTINS, "terraform-kreuzwerker"])
def test_every_builtin_parameter_has_a_rule(folder: str) -> None:
    base = EXAMPLES if folder == "terraform-kreuzwerker" else paths.builtin_templates_dir()
    template = load_template(base / folder, preset_dirs=[])
    for p in template.config.parameters:
        rule = p.validation
        if p.type in ("string", "list"):
            assert p.options or (rule and rule.regex), f"{folder}: {p.name} is unchecked"
        elif p.type in ("number", "integer"):
            assert rule and rule.min is not None and rule.max is not None, f"{folder}: {p.name}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("memory", "2g; id"),
        ("base_url", "http://x/$(id)"),
        ("model", "gpt`id`"),
        ("claude_code_version", '1.0.0" && id && "'),
        ("api_key", "sk key"),
    ],
)
def test_claude_code_parameters_refuse_shell_text(name: str, value: str) -> None:
    template = Catalog().get("claude-code")
    with pytest.raises(ParameterError, match=f"Parameter {name} "):
        render_workspace(template, None, {name: value})


def test_refusals_show_no_secret_and_no_huge_value() -> None:
    template = Catalog().get("claude-code")
    with pytest.raises(ParameterError) as caught:
        render_workspace(template, None, {"api_key": "sk-secret with space"})
    assert "sk-secret" not in str(caught.value)
    with pytest.raises(ParameterError) as caught:
        render_workspace(template, None, {"model": "m" * 5000 + ";"})
    assert len(str(caught.value)) < 400


def test_shell_quote_filter_makes_one_word() -> None:
    hostile = "1.0.0' && touch /tmp/pwned && echo '"
    text = render_string("npm i pkg@{{ v | shell_quote }}", {"v": hostile}, "test")
    assert (
        subprocess.run(
            ["bash", "-c", 'printf "%s\\n" ' + text.removeprefix("npm i ")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == f"pkg@{hostile}\n"
    )


# The rendered Terraform of terraform-docker, with the template's validation taken away: the
# quoting alone must keep every value one argument.
def _unchecked_copy(tmp_path: Path) -> Catalog:
    source = paths.builtin_templates_dir() / "terraform-docker"
    target = tmp_path / "templates" / "terraform-docker"
    shutil.copytree(source, target)
    manifest = target / "template.yaml"
    text = manifest.read_text()
    text = re.sub(r"\n    validation:\n(      .*\n)+", "\n", text)
    # a workdir from a parameter no rule checks (memory is checked as a resource too)
    text = text.replace("parameters:\n", "parameters:\n  - name: dir\n    default: /w\n")
    manifest.write_text(text.replace("  workdir: /workspace", '  workdir: "{{ dir }}"'))
    return Catalog([tmp_path / "templates"], [paths.builtin_presets_dir()])


def _scripts(main_tf: str) -> list[str]:
    """Every local-exec command of the file as the shell gets it (locals expanded)."""
    heredocs = {
        m.group(1): textwrap.dedent(m.group(2))
        for m in re.finditer(r"(\w+)\s*=\s*<<-EOT\n(.*?)\n\s*EOT", main_tf, re.S)
    }
    read_labels = heredocs.pop("read_labels")
    scripts = list(heredocs.values())
    scripts += [
        m.group(1).replace('\\"', '"')
        for m in re.finditer(r'(?:command\s*=|EOT\s*:)\s*"((?:[^"\\]|\\.)*)"', main_tf)
    ]
    scripts += [textwrap.dedent(m) for m in re.findall(r"\? <<-EOT\n(.*?)\n\s*EOT", main_tf, re.S)]
    expanded = []
    for script in scripts:
        script = script.replace("${local.read_labels}", read_labels)
        # Anything Terraform would interpolate into the script text is a hole.
        holes = re.findall(r"(?<!\$)[$%]\{[^}]*\}", script)
        assert not holes, f"Terraform values spliced into a command: {holes}"
        expanded.append(script.replace("$${", "${"))
    return expanded


def test_terraform_commands_take_values_only_quoted(tmp_path: Path) -> None:
    catalog = _unchecked_copy(tmp_path)
    template = catalog.get("terraform-docker")
    spec = render_workspace(template, template.default_preset(), {"dir": f"/w {PAYLOAD}"})
    assert spec.workdir == f"/w {PAYLOAD}"  # no validation: only the quoting stands
    assert spec.terraform is not None
    scripts = _scripts(spec.terraform.files["main.tf"])
    assert len(scripts) >= 5

    marker = tmp_path / "pwned"
    evil = f"$(touch {marker}) `touch {marker}`; touch {marker} #"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    (bindir / "docker").write_text(
        "#!/bin/bash\n"
        f'for a in "$@"; do printf "%s\\0" "$a"; done >> {calls}; printf "\\n" >> {calls}\n'
        '[ "$1 $2" = "container inspect" ] && exit 1\n'
        "cat >/dev/null\nexit 0\n"
    )
    (bindir / "docker").chmod(0o755)
    bridge = tmp_path / "bridge"
    bridge.mkdir()
    for name in ("bridge.pyz", "bridge.json", "token"):
        (bridge / name).write_text("x")
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "NAME": f"n{evil}",
        "LABELS": f"dockyard.instance={evil}\ndockyard.task=t",
        "AGENT_USER": "1000:1000",
        "AGENT_UID": "1000",
        "AGENT_GID": "1000",
        "AGENT_HOME": f"/home/{evil}",
        "WORKDIR": f"/w{evil}",
        "VOLUME_WORKSPACE": f"v{evil}",
        "VOLUME_HOME": "vh",
        "MEMORY": f"512m {evil}",
        "CPUS": f"1{evil}",
        "PIDS": "256",
        "RESTART": f"no{evil}",
        "CAP_ADD": f"NET_RAW\n{evil}",
        "BRIDGE_PORT": "1",
        "BRIDGE_CONTAINER_PORT": "2",
        "BRIDGE_DIR": str(bridge),
        "BRIDGE_CONTAINER_DIR": f"/b{evil}",
        "IMAGE": f"-i{evil}",
        "STOP_TIMEOUT": f"5{evil}",
    }
    for script in scripts:
        subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, check=False, timeout=20)
    assert not marker.exists()
    argv = [line.split("\0")[:-1] for line in calls.read_text().splitlines()]
    create = next(a for a in argv if a[0] == "create")
    assert create[create.index("--memory") + 1] == f"512m {evil}"
    assert create[create.index("--") + 1] == f"-i{evil}"  # an image is never an option
    assert ["--label", f"dockyard.instance={evil}"] == create[1 + create.index(f"n{evil}") :][:2]
