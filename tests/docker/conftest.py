"""The Docker tier: a real server (uvicorn in a thread) on a real daemon, cleaned up after."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from provisioner.backends.docker import LABEL_INSTANCE, LABEL_TASK
from provisioner.engine.engine import Engine
from provisioner.server.main import build_engine
from tests.serving import admin_env, admin_headers, serve
from tests.swarm import SharedSwarm, Swarm, tools_missing


def _docker_or_skip() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER"):
            pytest.fail(f"Docker is required (DOCKYARD_REQUIRE_DOCKER is set) but: {exc}")
        pytest.skip(f"Docker is not running: {exc}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = _docker_or_skip()
    yield client
    client.close()


def remove_instance(docker_client: docker.DockerClient, instance: str) -> list[Any]:
    """Remove every container and volume of a Dockyard instance (its tasks' and its shared
    bridge volume); return the containers that were still there."""
    label = {"label": f"{LABEL_INSTANCE}={instance}"}
    leftovers = docker_client.containers.list(all=True, filters=label)
    for c in leftovers:
        c.remove(force=True)
    for v in docker_client.volumes.list(filters=label):
        v.remove(force=True)
    return list(leftovers)


@dataclass
class ServerHandle:
    url: str
    home: Path
    engine: Engine
    instance: str
    docker: docker.DockerClient

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> Result:
        """Run `dockyard ARGS` against this server."""
        result = CliRunner().invoke(
            cli, list(args), input=input, env=admin_env(self.url, self.home), catch_exceptions=False
        )
        if check and result.exit_code != 0:
            raise AssertionError(
                f"dockyard {' '.join(args)} exited {result.exit_code}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    @property
    def headers(self) -> dict[str, str]:
        """Headers of an API request as this server's local admin."""
        return admin_headers(self.home)

    def status(self, task: str) -> dict[str, Any]:
        return json.loads(self.cli("task", "status", task, "-o", "json").stdout)

    def logs(self, task: str) -> list[dict[str, Any]]:
        return json.loads(self.cli("task", "logs", task, "-o", "json").stdout)

    def output(self, task: str) -> list[str]:
        return [e["content"] for e in self.logs(task) if e["type"] == "output"]

    def wait_for(self, task: str, pred: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
        """Poll the task's status until pred(status) holds."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(task)
            if pred(status):
                return status
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what or pred}: last status {status}")

    def wait_idle(self, task: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(
            task, lambda s: s["status"] == "active" and s["state"] == "idle", timeout, "idle"
        )

    def wait_output(self, task: str, line: str, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while time.monotonic() < deadline:
            out = self.output(task)
            if line in out:
                return out
            time.sleep(0.2)
        raise AssertionError(f"{line!r} never appeared in the logs; last lines: {out[-10:]}")

    def containers(self, task_id: str | None = None) -> list[Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if task_id:
            labels.append(f"{LABEL_TASK}={task_id}")
        return self.docker.containers.list(all=True, filters={"label": labels})

    def volumes(self, task_id: str | None = None) -> list[Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if task_id:
            labels.append(f"{LABEL_TASK}={task_id}")
        return self.docker.volumes.list(filters={"label": labels})

    def container(self, task_id: str) -> Any:
        (found,) = self.containers(task_id)
        return found

    def remove_everything(self) -> None:
        """Remove every container and volume this server's instance made."""
        for c in self.containers():
            c.remove(force=True)
        for v in self.volumes():
            v.remove(force=True)

    def exec(self, task_id: str, *cmd: str) -> tuple[int, str]:
        code, out = self.container(task_id).exec_run(list(cmd))
        return code, out.decode()


@pytest.fixture(scope="session")
def server(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    home = tmp_path_factory.mktemp("dockyard-home")
    engine = build_engine(home)
    engine.tick_s = 0.5
    instance = engine.backend.instance  # type: ignore[attr-defined]
    with serve(engine, home) as url:
        handle = ServerHandle(url, home, engine, instance, docker_client)
        try:
            yield handle
        finally:
            handle.remove_everything()


# The `swarm` tier (run it under `flock /tmp/dockyard-swarm.lock`: the harness is one per
# machine) shares one swarm across its modules; see SharedSwarm.
_SWARM = SharedSwarm()


@pytest.fixture(scope="module")
def swarm() -> Swarm:
    """A real two-node swarm (tests/swarm.py), shared by every module that asks for it."""
    missing = tools_missing()
    if missing or os.geteuid() != 0:
        why = f"missing {', '.join(missing)}" if missing else "needs root (namespaces)"
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER"):
            pytest.fail(f"the swarm tier cannot run: {why}")
        pytest.skip(f"the swarm tier cannot run: {why}")
    return _SWARM.get()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    yield  # the item's fixtures are torn down first: a server on the swarm stops before it
    if nextitem is None or "swarm" not in nextitem.fixturenames:
        _SWARM.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None]:
    yield  # a run stopped early (-x, ^C) tears its fixtures down here first
    _SWARM.close()
