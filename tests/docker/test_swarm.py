"""The Swarm backend on a real two-node swarm (tests/swarm.py): workspaces spread across
nodes, logs and send on each, pause/resume on the same node, delete, and a node drained or
lost turning its task to error with the node named, resumable once it is back."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from provisioner.backends.swarm import LABEL_NODE_NAME, SwarmBackend
from provisioner.backends.swarm_client import ServiceInfo
from provisioner.backends.swarm_volumes import LABEL_WIPE, volume_names
from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle
from tests.polling import wait_until
from tests.serving import serve
from tests.swarm import Swarm, swarm_cluster, tools_missing

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    missing = tools_missing()
    if missing or os.geteuid() != 0:
        why = f"missing {', '.join(missing)}" if missing else "needs root (namespaces)"
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER"):
            pytest.fail(f"the swarm tier cannot run: {why}")
        pytest.skip(f"the swarm tier cannot run: {why}")
    with swarm_cluster(nodes=2) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def server(
    swarm: Swarm, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    home = tmp_path_factory.mktemp("dockyard-swarm-home")
    config = {
        "backend": "swarm",
        "swarm": {
            "manager": swarm.manager.socket,
            "registry": swarm.registry,
            "network": swarm.network,
        },
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    engine = build_engine(home)
    engine.tick_s = 0.5
    instance = engine.backend.instance  # type: ignore[attr-defined]
    try:
        with serve(engine, home) as url:
            yield ServerHandle(url, home, engine, instance, docker_client)
    finally:
        _remove_pushed_images(docker_client, swarm.registry)


def _remove_pushed_images(client: docker.DockerClient, registry: str) -> None:
    """The registry's names (tags, and the digests a push records) the backend gave
    images on this machine's daemon, and the bridge images it built: the registry is gone
    with the swarm. An image that has other names (the template's) keeps them."""
    for image in client.images.list():
        names = [*image.tags, *(image.attrs.get("RepoDigests") or [])]
        for name in names:
            if name.startswith(f"{registry}/"):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(name)


def _backend(server: ServerHandle) -> SwarmBackend:
    backend = server.engine.backend.backends["swarm"]  # type: ignore[attr-defined]
    assert isinstance(backend, SwarmBackend)
    return backend


def _service(server: ServerHandle, task_id: str) -> ServiceInfo:
    service = _backend(server)._service(task_id)
    assert service is not None
    return service


def _node_of(server: ServerHandle, task_id: str) -> str:
    return _service(server, task_id).labels[LABEL_NODE_NAME]


def _create(server: ServerHandle, prompt: str, wait: bool = True) -> str:
    args = ["task", "create", "--template", "scripted", "-q", prompt]
    task_id = server.cli(*args, *(["--wait"] if wait else [])).stdout.strip()
    assert len(task_id) == 36, task_id
    return task_id


@pytest.fixture(scope="module")
def two_tasks(server: ServerHandle) -> Iterator[list[str]]:
    """Two tasks, made at once: spread puts them on different nodes (placement is one
    at a time), whose pulls of the image then overlap."""
    tasks = [_create(server, "hello from one", False), _create(server, "hello from two", False)]
    for task in tasks:
        server.wait_idle(task, timeout=120)
    yield tasks
    for task in tasks:
        server.cli("task", "delete", "-y", task, check=False)


def test_tasks_spread_and_logs_send_work_on_each_node(
    server: ServerHandle, two_tasks: list[str]
) -> None:
    assert {_node_of(server, t) for t in two_tasks} == {"dys-n1", "dys-n2"}
    for n, task in enumerate(two_tasks):
        server.wait_idle(task, timeout=90)
        prompt = ("hello from one", "hello from two")[n]
        server.wait_output(task, f"Done: {prompt}")
        server.cli("task", "send", task, f"follow-up {n}")
        server.wait_output(task, f"Done: follow-up {n}")
        status = server.status(task)
        assert status["status"] == "active", status
        assert status["node"] == _node_of(server, task)  # recorded in the task


def test_pause_resume_stays_on_its_node_with_its_disk(
    server: ServerHandle, two_tasks: list[str]
) -> None:
    task = two_tasks[1]
    node = _node_of(server, task)
    server.wait_idle(task, timeout=90)
    server.cli("task", "pause", task)
    server.wait_for(task, lambda s: s["status"] == "paused", 60, "paused")
    assert _service(server, task).replicas == 0
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=90)
    assert _node_of(server, task) == node
    # the agent's context lives in the home volume on that node: it survived the pause
    resumed = [line for line in server.output(task) if line.startswith("Resumed")]
    assert resumed and "previous context: 0 inputs" not in resumed[-1], resumed


def test_draining_a_node_errors_its_task_naming_the_node(
    server: ServerHandle, swarm: Swarm, two_tasks: list[str]
) -> None:
    task = next(t for t in two_tasks if _node_of(server, t) == "dys-n2")
    other = next(t for t in two_tasks if t != task)
    server.wait_idle(task, timeout=90)
    manager = swarm.manager.client()
    node = next(n for n in manager.nodes() if n["Description"]["Hostname"] == "dys-n2")
    spec = {**node["Spec"], "Availability": "drain"}
    manager.update_node(node["ID"], node["Version"]["Index"], spec)
    try:
        status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error")
        assert "node dys-n2 is drained" in status["message"], status
        assert server.status(other)["status"] == "active"  # the other node's task runs on
        # while it is drained, a resume says why it cannot start
        server.cli("task", "resume", task, check=False)
        status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error again")
        assert "dys-n2" in status["message"], status
    finally:
        node = manager.inspect_node(node["ID"])
        spec = {**node["Spec"], "Availability": "active"}
        manager.update_node(node["ID"], node["Version"]["Index"], spec)
        manager.close()
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=90)
    assert _node_of(server, task) == "dys-n2"


def test_delete_removes_the_service(server: ServerHandle) -> None:
    task = _create(server, "short lived")
    server.wait_idle(task, timeout=90)
    server.cli("task", "delete", "-y", task)
    backend = _backend(server)
    assert backend._service(task) is None
    assert task not in backend.task_ids()


def test_a_lost_node_errors_its_task_and_resume_works_once_it_returns(
    server: ServerHandle, swarm: Swarm, two_tasks: list[str]
) -> None:
    task = next(t for t in two_tasks if _node_of(server, t) == "dys-n2")
    server.wait_idle(task, timeout=90)
    worker = swarm.node("dys-n2")
    swarm.kill_daemon(worker)
    status = server.wait_for(task, lambda s: s["status"] == "error", 90, "error")
    assert "node dys-n2" in status["message"], status
    swarm.start_daemon(worker)
    _wait_node_ready(swarm, "dys-n2")
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=120)
    assert _node_of(server, task) == "dys-n2"


def _wait_node_ready(swarm: Swarm, hostname: str) -> None:
    from tests.polling import wait_until

    with contextlib.closing(swarm.manager.client()) as manager:

        def ready() -> bool:
            nodes = manager.nodes()
            return any(
                n["Description"]["Hostname"] == hostname and n["Status"]["State"] == "ready"
                for n in nodes
            )

        wait_until(ready, timeout=60, what=f"{hostname} ready again", interval=0.2)


def _volume_data(swarm: Swarm, node: str, volume: str) -> Path:
    """A node's volume as its dockerd keeps it (the node's data root is on this host)."""
    return swarm.node(node).dir / "data" / "volumes" / volume / "_data"


def test_delete_frees_the_disk_on_its_node(server: ServerHandle, swarm: Swarm) -> None:
    """Without the node's endpoint a wipe empties the task's volumes there; with it, the
    orphan sweep removes a deleted task's volume left on the node."""
    task = _create(server, "disk")
    node = swarm.node(_node_of(server, task))
    backend = _backend(server)
    home = _volume_data(swarm, node.name, volume_names(task)[1])
    assert any(home.iterdir()), "the agent's context is on the node"
    server.cli("task", "delete", "-y", task)
    volumes = [_volume_data(swarm, node.name, volume) for volume in volume_names(task)]
    wait_until(lambda: not any(any(data.iterdir()) for data in volumes), 60, "the wipe")
    assert all(data.is_dir() for data in volumes), "empty named volumes stay"
    # the sweep's listing removes the wipe service once it has ended
    wait_until(
        lambda: (backend.task_ids(), not backend.swarm.services({LABEL_WIPE: task}))[1],
        60,
        "the wipe service's removal",
        interval=0.2,
    )

    # a volume a delete could not free (its node was away, say): found and removed
    # through the node's endpoint (what a delete does too, when the config names it)
    lost = "0123abcd-0000-4000-8000-000000000000"
    with contextlib.closing(node.client()) as client:
        labels = {**backend._labels(lost), "dockyard.test": "1"}
        client.create_volume(volume_names(lost)[0], labels=labels)
    assert lost not in backend.task_ids(), "not without the node's endpoint"
    backend.volumes.endpoints[node.name] = node.socket
    try:
        assert lost in backend.task_ids()
        server.engine._sweep_orphans()
        assert not _volume_data(swarm, node.name, volume_names(lost)[0]).parent.exists()
    finally:
        del backend.volumes.endpoints[node.name]
