"""Security on a real daemon: workspaces hold no API credential and cannot use the API;
racing deletes have one winner; tasks belong to their creator."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle, remove_instance
from tests.docker.test_vertical_slice import create
from tests.serving import admin_token, serve

API_TOKEN = re.compile(r"dy_[A-Za-z0-9_-]{43}")


@pytest.fixture
def task(server: ServerHandle) -> Iterator[str]:
    task_id = create(server, "hello security")
    yield task_id
    server.cli("task", "delete", "-y", task_id, check=False)


def test_ten_racing_deletes_have_one_winner(server: ServerHandle) -> None:
    task_id = create(server, "delete me ten times")
    codes: list[int] = []

    def delete() -> None:
        reply = httpx.delete(
            f"{server.url}/api/v2/tasks/{task_id}", headers=server.headers, timeout=60
        )
        codes.append(reply.status_code)

    threads = [threading.Thread(target=delete) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [404] * 9, codes
    assert server.containers(task_id) == []


@pytest.fixture
def exposed(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[ServerHandle]:
    """A server listening on every address, as `dockyard server --host 0.0.0.0` does."""
    home = tmp_path / "home"
    home.mkdir()
    engine = build_engine(home)
    engine.tick_s = 0.5
    instance = engine.backend.instance  # type: ignore[attr-defined]
    try:
        with serve(engine, home, host="0.0.0.0") as url:
            yield ServerHandle(url, home, engine, instance, docker_client)
    finally:
        remove_instance(docker_client, instance)
        engine.store.close()


def test_a_workspace_cannot_use_the_api(exposed: ServerHandle) -> None:
    task_id = create(exposed, "try to escape")
    container = exposed.container(task_id)
    # nothing in the workspace's configuration is an API token
    config = json.dumps(container.attrs["Config"])
    assert API_TOKEN.search(config) is None
    assert admin_token(exposed.home) not in config
    network = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))
    port = exposed.url.rsplit(":", 1)[1]
    api = f"http://{network['Gateway']}:{port}/api/v2/tasks"
    bridge_token = exposed.engine.store.get(task_id).bridge_token
    probe = (
        "import sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request(sys.argv[1])\n"
        "if sys.argv[2]: req.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    for token in ("", bridge_token):
        code, out = exposed.exec(task_id, "python3", "-c", probe, api, token)
        # the server answered (it is reachable from here), and said no
        assert out.strip() == "401", (code, out)
    # no process in the workspace was given an API token
    code, env = exposed.exec(task_id, "sh", "-c", "cat /proc/[0-9]*/environ")
    assert code == 0 and "PATH=" in env
    assert API_TOKEN.search(env) is None
