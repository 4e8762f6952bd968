"""A real server whose Docker daemon is missing: clear errors, nothing created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(
        store, DockerBackend("test", dead), Catalog(), BridgeBundler(tmp_path / "cache")
    )
    with serve(engine, tmp_path) as base:
        yield base
    store.close()


@pytest.fixture
def env(url: str, tmp_path: Path) -> dict[str, str]:
    return admin_env(url, tmp_path)


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def test_create_without_docker_says_how_to_start_it(env: dict[str, str]) -> None:
    result = run(env, "task", "create", "--template", "scripted", "fix it")
    assert result.exit_code == 1
    assert "error: Docker is not running" in result.stderr
    assert "sudo dockerd" in result.stderr
    listed = run(env, "task", "list", "-o", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []  # nothing was created


def test_template_errors_come_before_docker(env: dict[str, str]) -> None:
    result = run(env, "task", "create", "--template", "scripted", "--preset", "fast", "x")
    assert result.exit_code == 1
    assert "has no preset 'fast' (presets: default, slow)" in result.stderr


def test_unreachable_server(tmp_path: Path) -> None:
    result = run({"DOCKYARD_URL": "http://127.0.0.1:9"}, "task", "list")
    assert result.exit_code == 1
    assert "cannot reach the Dockyard server at http://127.0.0.1:9" in result.stderr


@pytest.mark.parametrize("name", ["fix\n", "fix\r\n", "Fix", "-fix", "a" * 65, "fix it"])
def test_a_bad_task_name_is_refused_first(url: str, tmp_path: Path, name: str) -> None:
    # before rendering or asking Docker: the name alone decides
    body = {"template": "scripted", "prompt": "fix it", "name": name}
    reply = httpx.post(
        f"{url}/api/v2/tasks", json=body, headers=admin_headers(tmp_path), timeout=HTTP_TIMEOUT
    )
    assert reply.status_code == 400, reply.text
    assert "Invalid task name" in reply.json()["detail"]


def test_error_messages_are_capped(url: str, tmp_path: Path) -> None:
    reply = httpx.get(
        f"{url}/api/dockyard/v1/templates/{'x' * 9000}",
        headers=admin_headers(tmp_path),
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 404
    assert len(reply.json()["detail"]) <= 1000
    assert reply.json()["detail"].endswith("more characters)")
