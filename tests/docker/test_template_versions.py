"""Pushed template versions pin what a task runs (real server and daemon)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from provisioner import paths
from tests.docker.conftest import ServerHandle


def variant(folder: Path, work_seconds: int) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(paths.builtin_templates_dir() / "scripted", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest["name"] = "pinned"
    manifest["parameters"][0]["default"] = work_seconds
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def bridge_config(server: ServerHandle, task: str) -> dict[str, object]:
    """The config the task's bridge got: a file copied in (a restart), else its env."""
    code, out = server.exec(task, "cat", "/opt/dockyard/bridge.json")
    if code != 0:
        env = dict(e.split("=", 1) for e in server.container(task).attrs["Config"]["Env"])
        out = env["DOCKYARD_BRIDGE_CONFIG"]
    return dict(json.loads(out))


def test_push_versions_and_pinning(server: ServerHandle, tmp_path: Path) -> None:
    folder = variant(tmp_path / "pinned", 1)
    pushed = server.cli("template", "push", str(folder), "--label", "v1").stdout
    assert "Pushed template pinned version" in pushed and "(v1)" in pushed
    first = server.cli("task", "create", "-t", "pinned", "-q", "--wait", "on v1").stdout.strip()
    try:
        v1 = server.status(first)["template_version"]
        variant(folder, 2)
        server.cli("template", "push", str(folder), "--label", "v2")
        versions = json.loads(server.cli("template", "versions", "pinned", "-o", "json").stdout)
        assert [v["label"] for v in versions] == ["v1", "v2"]
        assert [v["active"] for v in versions] == [False, True]

        second = server.cli("task", "create", "-t", "pinned", "-q", "--wait", "on v2").stdout
        second = second.strip()
        old = server.cli(
            "task", "create", "-t", "pinned", "--template-version", "v1", "-q", "--wait", "old"
        ).stdout.strip()
        assert server.status(second)["template_version"] != v1
        assert server.status(old)["template_version"] == v1
        assert bridge_config(server, second)["agent_command"][-1] == "2"  # type: ignore[index]
        assert bridge_config(server, old)["agent_command"][-1] == "1"  # type: ignore[index]

        # A new version never changes a running task, not even when it restarts.
        server.cli("task", "pause", first)
        server.cli("task", "resume", first)
        server.wait_idle(first)
        assert server.status(first)["template_version"] == v1
        assert bridge_config(server, first)["agent_command"][-1] == "1"  # type: ignore[index]
        for task in (second, old):
            server.cli("task", "delete", "-y", task)
    finally:
        server.cli("task", "delete", "-y", first, check=False)
        for image in server.docker.images.list(name="dockyard-tpl-pinned"):
            for tag in image.tags:
                if tag.startswith("dockyard-tpl-pinned:"):  # the same image may carry others
                    server.docker.images.remove(tag)


def test_delete_is_refused_while_a_task_pins_the_version(
    server: ServerHandle, tmp_path: Path
) -> None:
    folder = variant(tmp_path / "deletable", 1)
    manifest = folder / "template.yaml"
    manifest.write_text(manifest.read_text().replace("name: pinned", "name: deletable"))
    server.cli("template", "push", str(folder), "--label", "v1")
    task = server.cli("task", "create", "-t", "deletable", "-q", "--wait", "hi").stdout.strip()
    try:
        refused = server.cli("template", "delete", "deletable", "-y", check=False)
        assert refused.exit_code != 0
        name = server.status(task)["name"]
        assert "in use by live tasks" in refused.stderr and name in refused.stderr
        on_disk = server.cli("template", "delete", "scripted", "-y", check=False)
        assert on_disk.exit_code != 0 and "is a folder on disk" in on_disk.stderr

        server.cli("task", "delete", "-y", task)
        deleted = server.cli("template", "delete", "deletable", "--version", "v1", "-y")
        assert "Deleted template deletable version(s)" in deleted.stdout
        gone = server.cli("template", "versions", "deletable", check=False)
        assert gone.exit_code != 0 and "Unknown template 'deletable'" in gone.stderr
    finally:
        server.cli("task", "delete", "-y", task, check=False)
        for image in server.docker.images.list(name="dockyard-tpl-deletable"):
            for tag in image.tags:
                if tag.startswith("dockyard-tpl-deletable:"):
                    server.docker.images.remove(tag)
