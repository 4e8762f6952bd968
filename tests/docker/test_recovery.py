"""Crash recovery: kill -9 of the server, two engines on one database, a dockerd restart."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import yaml
from click.testing import CliRunner

from cli.main import cli
from provisioner import paths
from provisioner.lifecycle import Status
from provisioner.server.main import build_engine
from tests.docker.conftest import remove_instance
from tests.polling import HTTP_TIMEOUT
from tests.postgres import PostgresCluster
from tests.serving import admin_env, admin_headers


class ServerProcess:
    """A real `python -m provisioner.server` that a test can kill -9 and start again."""

    def __init__(self, home: Path, template_dir: Path) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "DOCKYARD_HOME": str(home),
            "DOCKYARD_TEMPLATE_PATH": str(template_dir),
        }
        self.env.pop("DOCKYARD_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        (self.home / "server.json").unlink(missing_ok=True)
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner.server", "--home", str(self.home)],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not (self.home / "server.json").exists():
            assert self.proc.poll() is None, (self.home / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        self.url = json.loads((self.home / "server.json").read_text())["url"]

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=admin_env(self.url, self.home))
        assert result.exit_code == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    def task(self, ref: str) -> dict[str, Any]:
        reply = httpx.get(
            f"{self.url}/api/v2/tasks/{ref}", headers=admin_headers(self.home), timeout=HTTP_TIMEOUT
        )
        return dict(reply.json())

    def logs(self, ref: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        while True:  # the API pages: read until a page comes back empty
            after = entries[-1]["id"] if entries else 0
            reply = httpx.get(
                f"{self.url}/api/dockyard/v1/tasks/{ref}/logs",
                params={"after": after},
                headers=admin_headers(self.home),
                timeout=HTTP_TIMEOUT,
            ).json()
            if not reply["logs"]:
                return entries
            entries.extend(reply["logs"])

    def wait(self, ref: str, pred: Any, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        task: dict[str, Any] = {}
        while time.monotonic() < deadline:
            task = self.task(ref)
            if pred(task):
                return task
            time.sleep(0.2)
        raise AssertionError(f"timed out; last: {task}")


def write_variant(root: Path, name: str, **changes: Any) -> None:
    folder = root / name
    shutil.copytree(paths.builtin_templates_dir() / "scripted", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest.update(name=name, **changes)
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.fixture
def proc_server(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[ServerProcess]:
    templates = tmp_path / "templates"
    templates.mkdir()
    write_variant(templates, "slow-start", setup="echo setup begins\nsleep 4\necho setup ends\n")
    server = ServerProcess(tmp_path / "home", templates)
    server.home.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        instance = paths.instance_id(server.home)
        label = f"dockyard.instance={instance}"
        for c in docker_client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for v in docker_client.volumes.list(filters={"label": label}):
            v.remove(force=True)
        for variant in ("slow-start", "comes-back"):  # image tags of the test templates
            for image in docker_client.images.list(name=f"dockyard-tpl-{variant}"):
                for tag in image.tags:
                    if tag.startswith(f"dockyard-tpl-{variant}:"):
                        with contextlib.suppress(docker.errors.APIError):
                            docker_client.images.remove(tag)


def assert_transcript_exact(logs: list[dict[str, Any]]) -> None:
    """Every bridge entry stored once, none missing: seq runs 1..N without gaps."""
    seqs = [e["seq"] for e in logs if e["seq"] is not None]
    assert seqs == list(range(1, len(seqs) + 1)), "transcript has gaps or duplicates"


def containers_of(client: docker.DockerClient, task_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"dockyard.task={task_id}"})


def test_kill9_during_initializing(
    proc_server: ServerProcess, docker_client: docker.DockerClient
) -> None:
    task_id = proc_server.cli("task", "create", "-t", "slow-start", "-q", "after a crash").strip()
    proc_server.wait(task_id, lambda t: t["phase"] == "setup", 120)
    proc_server.kill9()
    proc_server.start()
    task = proc_server.wait(task_id, lambda t: t["status"] == "active" and t["state"] == "idle")
    assert task["status"] == "active"
    assert len(containers_of(docker_client, task_id)) == 1
    logs = proc_server.logs(task_id)
    out = [e["content"] for e in logs if e["type"] == "output"]
    assert out.count("setup begins") == 1 and out.count("setup ends") == 1
    assert out.count("Done: after a crash") == 1
    assert_transcript_exact(logs)


def test_kill9_during_active_loses_and_repeats_nothing(
    proc_server: ServerProcess, docker_client: docker.DockerClient
) -> None:
    task_id = proc_server.cli("task", "create", "-t", "scripted", "-q", "--wait", "start").strip()
    proc_server.cli("task", "send", task_id, "--no-wait", "/flood 20000")
    proc_server.wait(task_id, lambda t: t["state"] == "working", 30)
    time.sleep(0.3)  # mid-flood
    proc_server.kill9()
    proc_server.start()
    proc_server.wait(task_id, lambda t: t["state"] == "idle" and "Done" in t["message"])
    logs = proc_server.logs(task_id)
    flood = [e["content"] for e in logs if e["content"].startswith("flood line ")]
    assert flood == [f"flood line {i}" for i in range(1, 20001)]
    assert_transcript_exact(logs)
    assert len(containers_of(docker_client, task_id)) == 1


def test_orphan_workspaces_and_volumes_are_removed_on_restart(
    proc_server: ServerProcess, docker_client: docker.DockerClient
) -> None:
    # One restart, two kinds of leftovers (one server start less than a test each): a
    # container of a task the database does not know, and a volume whose container is gone.
    instance = paths.instance_id(proc_server.home)
    image = docker_client.images.list(name="dockyard-base")[0].tags[0]
    orphan_task = "00000000-0000-0000-0000-000000000000"
    ghost = "00000000-0000-0000-0000-00000000dead"
    orphan = docker_client.containers.run(
        image,
        ["sleep", "300"],
        detach=True,
        labels={
            "dockyard.managed": "true",
            "dockyard.instance": instance,
            "dockyard.task": orphan_task,
        },
    )
    volume = docker_client.volumes.create(
        labels={"dockyard.managed": "true", "dockyard.instance": instance, "dockyard.task": ghost}
    )
    proc_server.kill9()
    proc_server.start()
    container_gone = volume_gone = False
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not (container_gone and volume_gone):
        container_gone = not containers_of(docker_client, orphan_task)
        volume_gone = not docker_client.volumes.list(filters={"label": f"dockyard.task={ghost}"})
        time.sleep(0.2)
    if not container_gone:
        orphan.remove(force=True)
    if not volume_gone:
        volume.remove(force=True)
    assert container_gone, "the orphan container was not removed"
    assert volume_gone, "the volume of a task that no longer exists was not removed"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_engines_on_one_database_never_both_act(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    database: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "shared-home"
    home.mkdir()
    if database == "postgresql":  # servers on two hosts share PostgreSQL, not a file
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.database()
        request.addfinalizer(lambda: cluster.drop(url))
        monkeypatch.setenv("DOCKYARD_DATABASE_URL", url)
    first, second = build_engine(home), build_engine(home)
    assert first.store.db.dialect.name == database
    first.tick_s = second.tick_s = 0.2
    first.start()
    second.start()
    ids: list[str] = []
    try:
        for i in range(3):
            engine = first if i % 2 == 0 else second
            task = engine.create_task(
                template="scripted",
                preset=None,
                prompt=f"race {i}",
                parameters={},
                name=None,
                owner="tester",
            )
            ids.append(task.id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tasks = [first.store.get(i) for i in ids]
            if all(t.status == Status.ACTIVE and t.state == "idle" for t in tasks):
                break
            time.sleep(0.2)
        else:
            history = {
                t.id: [(e["actor"], e["to_value"]) for e in first.store.events(t.id)] for t in tasks
            }
            raise AssertionError(
                "not all idle: "
                + "; ".join(
                    f"{t.status.value}/{t.state}: {t.message!r} {history[t.id]}" for t in tasks
                )
            )
        for task_id in ids:
            assert len(containers_of(docker_client, task_id)) == 1
            claims = [
                e
                for e in first.store.events(task_id)
                if e["kind"] == "status" and e["to_value"] == "initializing"
            ]
            assert len(claims) == 1, claims
    finally:
        for task_id in ids:
            first.delete(task_id)
        first.stop()
        second.stop()
        first.store.close()
        second.store.close()
        remove_instance(docker_client, paths.instance_id(home))


def _dockerd_pid() -> int | None:
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out.strip() else None


def _restart_dockerd() -> None:
    pid = _dockerd_pid()
    assert pid is not None, "no dockerd process to restart"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _dockerd_pid() is not None:
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)
    subprocess.run(["sh", "-c", "nohup dockerd >>/var/log/dockyard-dockerd.log 2>&1 &"], check=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "dockerd did not come back"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DOCKYARD_TEST_RESTART_DOCKERD"),
    reason="restarts the machine's dockerd; set DOCKYARD_TEST_RESTART_DOCKERD=1 (CI does)",
)
def test_dockerd_restart_under_running_tasks(
    proc_server: ServerProcess, docker_client: docker.DockerClient
) -> None:
    write_variant(
        Path(proc_server.env["DOCKYARD_TEMPLATE_PATH"]),
        "comes-back",
        lifecycle={"restart": "unless-stopped"},
    )
    back = proc_server.cli("task", "create", "-t", "comes-back", "-q", "--wait", "one").strip()
    gone = proc_server.cli("task", "create", "-t", "scripted", "-q", "--wait", "two").strip()
    _restart_dockerd()
    task = proc_server.wait(back, lambda t: t["status"] == "active" and t["state"] == "idle")
    assert task["status"] == "active"
    proc_server.cli("task", "send", back, "still there?")
    proc_server.wait(back, lambda t: "Done: still there?" in t["message"])
    out = [e["content"] for e in proc_server.logs(back) if e["type"] == "output"]
    assert any(line.startswith("Resumed") for line in out)
    assert out.count("Working on: one") == 1
    lost = proc_server.wait(gone, lambda t: t["status"] == "error")
    assert "workspace stopped" in lost["message"]
