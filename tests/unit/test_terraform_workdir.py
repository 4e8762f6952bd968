"""The Terraform backend's pure parts: rendering, variables, state parsing, the 1.x wrapper."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from python_terraform import IsFlagged, IsNotFlagged, Terraform

from provisioner.backends.base import BridgeBundle
from provisioner.backends.docker_client import ContainerInfo
from provisioner.backends.terraform import TerraformBackend
from provisioner.backends.terraform_runner import StreamingTerraform, TerraformRunner
from provisioner.backends.terraform_workdir import (
    TFVARS_FILE,
    dockyard_variables,
    error_summary,
    has_resources,
    parse_outputs,
    read_variables,
    task_workdir,
    terraform_variables,
    write_bridge,
    write_variables,
    write_workdir,
)
from provisioner.errors import BackendError, TemplateError
from provisioner.spec import WorkspaceSpec
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_workspace
from provisioner.templating.schema import TemplateConfig

TASK = "0a1b2c3d-0000-4000-8000-1234567890ab"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples"
needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform")


def builtin_spec(**overrides: Any) -> WorkspaceSpec:
    template = Catalog().get("terraform-docker")
    return render_workspace(template, template.default_preset(), overrides)


def write_template(folder: Path, main_tf: str, terraform: str = "terraform: {}") -> Catalog:
    (folder / "t" / "terraform").mkdir(parents=True)
    (folder / "t" / "template.yaml").write_text(
        "name: t\nbackend: terraform\n"
        "parameters:\n  - name: size\n    type: integer\n    default: 3\n"
        f"agent:\n  command: [bash]\n{terraform}\n"
    )
    (folder / "t" / "terraform" / "main.tf").write_text(main_tf)
    return Catalog([folder], [folder / "presets"])


# schema and rendering -----------------------------------------------------------------
def test_backend_terraform_requires_its_section() -> None:
    base = {"name": "t", "agent": {"command": ["bash"]}}
    with pytest.raises(ValidationError, match="needs a terraform section"):
        TemplateConfig.model_validate({**base, "backend": "terraform"})
    with pytest.raises(ValidationError, match="needs backend: terraform"):
        TemplateConfig.model_validate({**base, "terraform": {}})
    config = TemplateConfig.model_validate({**base, "backend": "terraform", "terraform": {}})
    assert config.terraform is not None and config.terraform.files == ["*.tf", "*.tf.json"]


def test_builtin_template_renders_its_terraform() -> None:
    spec = builtin_spec(work_seconds=2)
    assert spec.backend == "terraform" and spec.terraform is not None
    assert list(spec.terraform.files) == ["main.tf"]
    main = spec.terraform.files["main.tf"]
    assert main.startswith("# terraform-docker: one Dockyard workspace")  # Jinja ran
    assert 'output "bridge_endpoint"' in main and 'variable "running"' in main
    assert spec.terraform.variables == {"stop_timeout": 5}


def test_docker_templates_carry_no_terraform() -> None:
    template = Catalog().get("scripted")
    assert render_workspace(template, None, {}).terraform is None


def test_undefined_name_in_a_terraform_file_fails_at_render(tmp_path: Path) -> None:
    catalog = write_template(tmp_path, 'locals {\n  x = "{{ nope }}"\n}\n')
    with pytest.raises(TemplateError, match=r"main\.tf: 'nope' is undefined"):
        render_workspace(catalog.get("t"), None, {})


def test_parameters_and_variables_are_rendered(tmp_path: Path) -> None:
    catalog = write_template(
        tmp_path,
        "locals {\n  n = {{ size }}\n}\n",
        'terraform:\n  variables:\n    twice: "{{ size * 2 }}"\n    flag: true',
    )
    spec = render_workspace(catalog.get("t"), None, {"size": 4})
    assert spec.terraform is not None
    assert "n = 4" in spec.terraform.files["main.tf"]
    assert spec.terraform.variables == {"twice": "8", "flag": True}


def test_no_matching_files_is_a_template_error(tmp_path: Path) -> None:
    catalog = write_template(tmp_path, "", "terraform:\n  files: ['*.hcl']")
    with pytest.raises(TemplateError, match=r"no file in .* matches \*\.hcl"):
        render_workspace(catalog.get("t"), None, {})


def test_kreuzwerker_example_renders(tmp_path: Path) -> None:
    # Documented, not applied (no provider download here): its Dockyard side must hold.
    template = Catalog([EXAMPLE], [tmp_path]).get("terraform-kreuzwerker")
    spec = render_workspace(template, None, {})
    assert spec.terraform is not None and list(spec.terraform.files) == ["main.tf.j2"]
    main = spec.terraform.files["main.tf.j2"]
    assert 'resource "docker_volume" "workspace"' in main
    assert 'resource "docker_volume" "home"' in main
    assert "{%" not in main and "{#" not in main
    assert spec.memory == "2048m"
    write_workdir(tmp_path / "w", spec, {})
    assert (tmp_path / "w" / "main.tf").is_file()  # .j2 dropped for Terraform


# variables and the working directory ----------------------------------------------------
def test_variables_precedence_and_dockyard_values(tmp_path: Path) -> None:
    spec = builtin_spec()
    ours = dockyard_variables(
        task_id=TASK,
        task_name="fix-bug-ab12",
        instance="inst1",
        spec=spec,
        image="img:1",
        bridge_dir=tmp_path / "bridge",
        bridge_port=40123,
        running=False,
    )
    merged = terraform_variables(spec, {**ours, "work_seconds": 9})
    assert merged["work_seconds"] == 9  # Dockyard's own win over parameters
    assert merged["stop_timeout"] == 5 and merged["memory"] == "512m"
    assert merged["labels"] == {
        "dockyard.managed": "true",
        "dockyard.instance": "inst1",
        "dockyard.task": TASK,
        "dockyard.template": "terraform-docker",
    }
    assert merged["agent_user"] == "1000:1000" and merged["bridge_container_port"] == 7777
    assert merged["running"] is False and merged["bridge_port"] == 40123
    json.dumps(merged)  # all of it fits terraform.tfvars.json


def test_write_workdir_and_bridge(tmp_path: Path) -> None:
    spec = builtin_spec()
    workdir = task_workdir(tmp_path, TASK)
    workdir.mkdir()
    (workdir / "old.tf").write_text("stale")
    (workdir / "terraform.tfstate").write_text("{}")
    write_workdir(workdir, spec, {"running": False, "secret": "s3"})
    assert not (workdir / "old.tf").exists() and (workdir / "terraform.tfstate").exists()
    assert (workdir / "main.tf").read_text() == spec.terraform.files["main.tf"]  # type: ignore[union-attr]
    assert stat.S_IMODE((workdir / TFVARS_FILE).stat().st_mode) == 0o600
    variables = read_variables(workdir)
    variables["running"] = True
    write_variables(workdir, variables)
    assert read_variables(workdir) == {"running": True, "secret": "s3"}

    bridge = write_bridge(workdir, BridgeBundle(b"PK", b"{}", "tok"))
    assert (bridge / "token").read_text() == "tok"
    assert stat.S_IMODE((bridge / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE((bridge / "bridge.pyz").stat().st_mode) == 0o644


def test_task_ids_are_checked_before_becoming_paths(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not a task id"):
        task_workdir(tmp_path, "../../etc")


# reading what Terraform left ----------------------------------------------------------
def test_outputs_from_state_and_from_output_json() -> None:
    state = {
        "version": 4,
        "outputs": {
            "bridge_endpoint": {"value": "http://127.0.0.1:4000", "type": "string"},
            "container": {"value": "dockyard-x-1", "type": "string"},
        },
        "resources": [{"type": "terraform_data", "instances": [{"attributes": {}}]}],
    }
    expected = {"bridge_endpoint": "http://127.0.0.1:4000", "container": "dockyard-x-1"}
    assert parse_outputs(json.dumps(state)) == expected
    assert parse_outputs(json.dumps(state["outputs"])) == expected
    assert parse_outputs("") == {}
    with pytest.raises(ValueError):
        parse_outputs('{"version": 4, "outp')  # a state being written
    assert has_resources(json.dumps(state))
    assert not has_resources(json.dumps({"version": 4, "resources": []}))


def test_error_summary_unframes_terraforms_diagnostics() -> None:
    stderr = (
        "There are some problems with the CLI configuration:\n╷\n"
        "│ Warning: Unable to open CLI configuration file\n╵\n\n"
        "╷\n│ Error: local-exec provisioner error\n│ \n"
        "│   with terraform_data.boom,\n"
        "│ Error running command 'exit 1': exit status 1. Output: quota exceeded\n╵\n"
    )
    summary = error_summary(stderr)
    assert summary.splitlines()[0] == "Error: local-exec provisioner error"
    assert summary.endswith("Output: quota exceeded")
    assert "Warning" not in summary
    assert error_summary("a\nb\nc", lines=2) == "b\nc"


# python-terraform made fit for Terraform 1.x ----------------------------------------------
class Recording(StreamingTerraform):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.argv: list[str] = []

    def _execute(self, argv: list[str]) -> tuple[int, str, str]:
        self.argv = argv
        return 0, "", ""


def test_destroy_approves_instead_of_force(tmp_path: Path) -> None:
    # python-terraform 0.10.1 itself passes -force, which Terraform >= 0.15 rejects.
    original = Terraform(working_dir=str(tmp_path))
    assert "-force" in original.generate_cmd_string(
        "destroy", **original._generate_default_options({"force": IsFlagged})
    )
    tf = Recording(tmp_path)
    tf.destroy(lock_timeout="60s")
    assert tf.argv[:2] == ["terraform", "destroy"]
    assert "-auto-approve" in tf.argv and "-force" not in tf.argv
    assert "-lock-timeout=60s" in tf.argv and "-input=false" in tf.argv


def test_apply_plan_init_arguments(tmp_path: Path) -> None:
    tf = Recording(tmp_path)
    tf.apply("tfplan", skip_plan=True)
    assert tf.argv[-1] == "tfplan" and "-auto-approve=true" in tf.argv
    assert not any(a.startswith("-var-file") for a in tf.argv)  # no empty temp var file
    tf.plan(out="tfplan")
    assert "-detailed-exitcode" in tf.argv and "-out=tfplan" in tf.argv
    tf.init()
    assert tf.argv[:2] == ["terraform", "init"] and "-reconfigure" in tf.argv
    assert not any(a.startswith("-var-file") for a in tf.argv)
    tf.cmd("output", json=IsFlagged, capture_output=False, synchronous=False)
    assert tf.argv == ["terraform", "output", "-json"]  # no leaked -synchronous flag


def test_flag_values() -> None:
    tf = Terraform()
    argv = tf.generate_cmd_string("x", a=IsFlagged, b=IsNotFlagged, c=None, d=True, e=False)
    assert argv == ["terraform", "x", "-a", "-d=true", "-e=false"]


# against the real binary (fast, offline: terraform_data only) --------------------------
@needs_terraform
def test_runner_against_terraform(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'variable "who" {\n  type = string\n}\n'
        'resource "terraform_data" "hello" {\n  input = var.who\n'
        '  provisioner "local-exec" {\n    command = "echo hello ${var.who}"\n  }\n}\n'
        'output "greeting" {\n  value = "hi ${terraform_data.hello.output}"\n}\n'
    )
    write_variables(tmp_path, {"who": "dockyard"})
    runner = TerraformRunner()
    assert "terraform_version" in runner.version()
    lines: list[str] = []
    runner.init(tmp_path, lines.append)
    assert runner.apply(tmp_path, lines.append) is True
    assert "terraform_data.hello (local-exec): hello dockyard" in lines
    assert any(line.startswith("Plan: 1 to add") for line in lines)
    assert runner.outputs(tmp_path) == {"greeting": "hi dockyard"}
    assert runner.apply(tmp_path, lines.append) is False  # nothing to change
    # Unwrapped, python-terraform's destroy fails on Terraform 1.x (and says so with the
    # deprecated Logger.warn, an error under this suite's warning filter):
    with pytest.warns(DeprecationWarning, match="'warn' method is deprecated"):
        code, _, err = Terraform(working_dir=str(tmp_path)).destroy()
    assert code != 0 and "-force" in err
    runner.destroy(tmp_path, lines.append)
    assert "Destroy complete! Resources: 1 destroyed." in lines
    assert not has_resources((tmp_path / "terraform.tfstate").read_text())


@needs_terraform
def test_failed_apply_raises_with_terraforms_message(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "terraform_data" "boom" {\n  provisioner "local-exec" {\n'
        '    command = "echo quota exceeded; exit 1"\n  }\n}\n'
    )
    runner = TerraformRunner()
    runner.init(tmp_path)
    lines: list[str] = []
    with pytest.raises(BackendError) as info:
        runner.apply(tmp_path, lines.append)
    message = str(info.value)
    assert message.startswith("terraform apply failed: Error: local-exec provisioner error")
    assert "exit status 1" in message and "quota exceeded" in message
    assert "Error: local-exec provisioner error" in lines  # the logs say it too


# the backend's start/stop logic, with Terraform and Docker faked --------------------------
class FakeRunner(TerraformRunner):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[bool] = []

    def apply(self, workdir: Path, on_line: Any = None) -> bool:
        self.applied.append(read_variables(workdir)["running"])
        return True


class FakeDocker:
    def __init__(self, running: bool) -> None:
        self.running = running

    def inspect(self, name: str) -> ContainerInfo:
        state = {"Status": "running" if self.running else "exited", "Running": self.running}
        return ContainerInfo.from_attrs({"Id": "c1", "Name": name, "State": state})


@pytest.mark.parametrize(
    ("recorded", "actual", "want", "applies"),
    [
        (False, False, True, [True]),  # resume
        (True, True, False, [False]),  # pause
        (True, True, True, []),  # already running: nothing to do
        (True, False, True, [False, True]),  # it stopped by itself: flip the trigger twice
        (False, True, False, [True, False]),  # started by hand: same
    ],
)
def test_start_and_stop_converge(
    tmp_path: Path, recorded: bool, actual: bool, want: bool, applies: list[bool]
) -> None:
    runner = FakeRunner()
    backend = TerraformBackend("i", tmp_path, FakeDocker(actual), runner, images=object())  # type: ignore[arg-type]
    workdir = task_workdir(backend.root, TASK)
    workdir.mkdir(parents=True)
    write_variables(workdir, {"running": recorded})
    state = {"version": 4, "outputs": {"container": {"value": "c"}}, "resources": []}
    (workdir / "terraform.tfstate").write_text(json.dumps(state))
    if want:
        backend.start(TASK, BridgeBundle(b"PK", b"{}", "tok"))
    else:
        backend.stop(TASK)
    assert runner.applied == applies
    assert backend.task_ids() == {TASK}


def test_start_without_a_workspace_is_an_error(tmp_path: Path) -> None:
    backend = TerraformBackend("i", tmp_path, FakeDocker(False), FakeRunner(), images=object())  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="no Terraform workspace"):
        backend.start(TASK, BridgeBundle(b"PK", b"{}", "tok"))
    backend.stop(TASK)  # nothing to stop: fine
    backend.remove(TASK)  # nothing to remove: fine
    assert backend.task_ids() == set()
