"""The Terraform backend end to end: the built-in terraform-docker template on the real daemon.

Terraform runs offline here: terraform_data resources whose local-exec provisioners drive
the docker CLI. Driven through the CLI against the in-process server, like the slice tests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisioner import paths
from provisioner.backends.terraform import TerraformBackend
from provisioner.templating.catalog import Catalog
from tests.docker.conftest import ServerHandle
from tests.polling import HTTP_TIMEOUT

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform")

TEMPLATE = "terraform-docker"


def create(server: ServerHandle, prompt: str, template: str = TEMPLATE) -> str:
    result = server.cli("task", "create", "-t", template, "-q", "--wait", prompt)
    task_id = result.stdout.strip()
    assert len(task_id) == 36, result.stdout
    return task_id


def workdir(server: ServerHandle, task_id: str) -> Path:
    return server.home / "terraform" / task_id


def system_lines(server: ServerHandle, task_id: str) -> list[str]:
    return [e["content"] for e in server.logs(task_id) if e["type"] == "system"]


def tfvars(server: ServerHandle, task_id: str) -> dict[str, object]:
    return dict(json.loads((workdir(server, task_id) / "terraform.tfvars.json").read_text()))


def assert_gone(server: ServerHandle, task_id: str) -> None:
    assert server.containers(task_id) == []
    assert server.volumes(task_id) == []
    assert not workdir(server, task_id).exists()


@pytest.fixture(scope="module")
def task(server: ServerHandle) -> Iterator[str]:
    task_id = create(server, "hello terraform")
    yield task_id
    server.cli("task", "delete", "-y", task_id, check=False)


def test_task_runs_through_terraform(server: ServerHandle, task: str) -> None:
    status = server.wait_idle(task)
    assert status["template"] == TEMPLATE and status["preset"] == "default"
    assert "Done: hello terraform" in server.output(task)
    # Plan and apply output are in the task's logs, from the initializing phases.
    lines = system_lines(server, task)
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in lines
    assert any(line.startswith("Apply complete! Resources: 3 added") for line in lines)
    assert "terraform_data.container: Creation complete" in " ".join(lines)

    server.cli("task", "send", task, "tell me more")
    server.wait_output(task, "Done: tell me more")
    server.wait_idle(task)


def test_workspace_matches_the_docker_backend(server: ServerHandle, task: str) -> None:
    attrs = server.container(task).attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Init"] is True
    assert host["Memory"] == 512 * 1024 * 1024 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 1_000_000_000 and host["PidsLimit"] == 256
    labels = attrs["Config"]["Labels"]
    assert labels["dockyard.managed"] == "true" and labels["dockyard.task"] == task
    assert labels["dockyard.instance"] == server.instance
    assert labels["dockyard.template"] == TEMPLATE
    (binding,) = host["PortBindings"]["7777/tcp"]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": str(tfvars(server, task)["bridge_port"])}
    volumes = server.volumes(task)
    assert len(volumes) == 2
    assert all(v.attrs["Labels"]["dockyard.template"] == TEMPLATE for v in volumes)
    code, out = server.exec(task, "stat", "-c", "%U %a", "/opt/dockyard/token")
    assert code == 0 and out.strip() == "agent 600"


def test_pause_and_resume_are_terraform_runs(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "send", task, "/write kept.txt still here")
    server.wait_output(task, "Wrote kept.txt")
    server.wait_idle(task)

    server.cli("task", "pause", task)
    assert server.status(task)["status"] == "paused"
    assert server.container(task).status == "exited"
    assert tfvars(server, task)["running"] is False

    before = len(server.logs(task))
    server.cli("task", "resume", task)
    server.wait_idle(task)
    assert tfvars(server, task)["running"] is True
    resumed = [e["content"] for e in server.logs(task)[before:] if e["type"] == "system"]
    assert any("docker start" in line for line in resumed), resumed  # the apply, logged
    code, out = server.exec(task, "cat", "/workspace/kept.txt")
    assert code == 0 and out == "still here\n"
    out_lines = server.output(task)
    assert out_lines.count("Working on: hello terraform") == 1  # not run again
    assert any(line.startswith("Resumed") for line in out_lines)
    server.cli("task", "send", task, "after resume")
    server.wait_output(task, "Done: after resume")


def test_state_survives_a_server_restart(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    state = workdir(server, task) / "terraform.tfstate"
    assert state.is_file() and state.is_relative_to(server.home)
    # A new backend (as a restarted server builds) finds the task from its state alone.
    fresh = TerraformBackend(server.instance, server.home)
    observed = fresh.observe(task)
    port = tfvars(server, task)["bridge_port"]
    assert observed.exists and observed.running
    assert observed.endpoint == f"http://127.0.0.1:{port}"
    assert task in fresh.task_ids() and task in fresh.running_task_ids()
    assert any(line.startswith("Scripted agent") for line in fresh.tail(task, 50))


def test_delete_destroys_everything(server: ServerHandle) -> None:
    task_id = create(server, "short lived")
    assert len(server.containers(task_id)) == 1 and len(server.volumes(task_id)) == 2
    assert workdir(server, task_id).is_dir()
    server.cli("task", "delete", "-y", task_id)
    assert_gone(server, task_id)


@contextlib.contextmanager
def variant_served(server: ServerHandle, name: str, tmp_path: Path) -> Iterator[None]:
    """Serve the template variant in tmp_path/templates while the block runs; then drop
    its image tag (variants share the scripted image's layers and id: only our tag goes)."""
    previous = server.engine.catalog
    server.engine.catalog = Catalog(
        [paths.builtin_templates_dir(), tmp_path / "templates"], [paths.builtin_presets_dir()]
    )
    try:
        yield
    finally:
        server.engine.catalog = previous
        for image in server.docker.images.list(name=f"dockyard-tpl-{name}"):
            for tag in image.tags:
                if tag.startswith(f"dockyard-tpl-{name}:"):
                    server.docker.images.remove(tag, noprune=False)


@pytest.fixture
def broken(server: ServerHandle, tmp_path: Path) -> Iterator[str]:
    name = "terraform-broken"
    folder = tmp_path / "templates" / name
    shutil.copytree(paths.builtin_templates_dir() / TEMPLATE, folder)
    manifest = folder / "template.yaml"
    manifest.write_text(manifest.read_text().replace(f"name: {TEMPLATE}", f"name: {name}"))
    with (folder / "terraform" / "main.tf").open("a") as main:
        main.write(
            '\nresource "terraform_data" "quota" {\n'
            "  depends_on = [terraform_data.volumes]\n"
            '  provisioner "local-exec" {\n'
            '    command = "echo quota exceeded for ${var.task_name} >&2; exit 1"\n'
            "  }\n}\n"
        )
    with variant_served(server, name, tmp_path):
        yield name


def test_failed_apply_is_an_error_with_terraforms_message(
    server: ServerHandle, broken: str
) -> None:
    result = server.cli("task", "create", "-t", broken, "-q", "--wait", "never runs", check=False)
    task_id = result.stdout.strip().splitlines()[0]
    try:
        status = server.wait_for(task_id, lambda s: s["status"] == "error", 60, "error")
        assert [p["phase"] for p in status["phases"]][-1] == "create"
        message = status["message"]
        assert message.startswith("terraform apply failed: Error: local-exec provisioner error")
        assert "exit status 1" in message and "quota exceeded for never-runs" in message
        assert "Error: local-exec provisioner error" in system_lines(server, task_id)
        assert len(server.volumes(task_id)) == 2  # made before the failure; destroy cleans up
    finally:
        server.cli("task", "delete", "-y", task_id)
    assert_gone(server, task_id)


def test_timings_are_reasonable(server: ServerHandle) -> None:
    # Not a benchmark: a guard that Terraform runs stay in seconds, not minutes.
    started = time.monotonic()
    task_id = create(server, "quick one")
    try:
        assert time.monotonic() - started < 60
        phases = {p["phase"]: p["duration_s"] for p in server.status(task_id)["phases"]}
        assert phases["create"] < 20 and phases["start"] < 20, phases
    finally:
        server.cli("task", "delete", "-y", task_id)
    assert_gone(server, task_id)


def test_injected_memory_is_refused_and_runs_nothing(server: ServerHandle, tmp_path: Path) -> None:
    marker = tmp_path / "x"
    body = {
        "template": TEMPLATE,
        "prompt": "hello",
        "parameters": {"memory": f"512m $(id > {marker})"},
    }
    answer = httpx.post(
        f"{server.url}/api/v2/tasks", json=body, headers=server.headers, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 400, answer.text
    assert "Parameter memory" in answer.text and "512m or 2g" in answer.text
    time.sleep(2)  # a few reconcile ticks: nothing was queued that could run it
    assert not marker.exists()


@pytest.fixture
def unchecked(server: ServerHandle, tmp_path: Path) -> Iterator[str]:
    """terraform-docker with a workdir parameter that no rule checks: only quoting stands."""
    name = "terraform-unchecked"
    folder = tmp_path / "templates" / name
    shutil.copytree(paths.builtin_templates_dir() / TEMPLATE, folder)
    manifest = folder / "template.yaml"
    text = manifest.read_text().replace(f"name: {TEMPLATE}", f"name: {name}")
    text = text.replace("parameters:\n", "parameters:\n  - name: dir\n    default: /workspace\n")
    manifest.write_text(text.replace("  workdir: /workspace", '  workdir: "{{ dir }}"'))
    with variant_served(server, name, tmp_path):
        yield name


def test_hostile_values_stay_one_argument_in_local_exec(
    server: ServerHandle, unchecked: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = f"/w$(touch {marker})`touch {marker}`"
    body = {"template": unchecked, "prompt": "hello", "parameters": {"dir": hostile}}
    answer = httpx.post(
        f"{server.url}/api/v2/tasks", json=body, headers=server.headers, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 201, answer.text
    task_id = answer.json()["id"]
    try:
        server.wait_idle(task_id, timeout=120)
        assert server.container(task_id).attrs["Config"]["WorkingDir"] == hostile
        assert not marker.exists()
    finally:
        server.cli("task", "delete", "-y", task_id, check=False)
    assert_gone(server, task_id)
    assert not marker.exists()
