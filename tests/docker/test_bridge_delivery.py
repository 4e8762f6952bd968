"""How the bridge reaches a workspace: a shared read-only volume per bridge version, the
task's config and token in the environment (files for a config too big for it), and a
newer bridge copied in when a server restarts an existing workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from provisioner.backends.base import BRIDGE_LIB_DIR, BridgeBundle
from provisioner.backends.bridge_volume import BridgeVolumes
from provisioner.backends.docker import LABEL_INSTANCE, LABEL_MANAGED
from provisioner.backends.docker_client import DockerClient
from tests.docker.conftest import ServerHandle
from tests.docker.test_vertical_slice import create


def agent_environ(server: ServerHandle, task: str) -> dict[str, str]:
    """The agent process's environment, read from /proc inside the workspace."""
    code, out = server.exec(task, "pgrep", "-f", "scripted-agent")
    assert code == 0, out
    pid = out.split()[0]
    code, raw = server.exec(task, "cat", f"/proc/{pid}/environ")
    assert code == 0, raw
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_bridge_comes_from_a_shared_read_only_volume(server: ServerHandle) -> None:
    first = create(server, "one")
    second = create(server, "two")
    try:
        mounts = [
            {m["Destination"]: m for m in server.container(t).attrs["Mounts"]}[BRIDGE_LIB_DIR]
            for t in (first, second)
        ]
        assert mounts[0]["Name"] == mounts[1]["Name"]
        assert mounts[0]["Name"].startswith(f"dockyard-bridge-{server.instance[:12]}-")
        assert mounts[0]["RW"] is False and mounts[1]["RW"] is False  # no agent may write it
        # root's files: the agent cannot change the bridge other workspaces run
        code, out = server.exec(second, "stat", "-c", "%u %a %n", *(
            f"{BRIDGE_LIB_DIR}/{name}" for name in ("bridge.pyz", "ready")
        ))  # fmt: skip
        assert code == 0 and out.split("\n")[0].startswith("0 644"), out
        code, out = server.exec(first, "sh", "-c", f"echo x > {BRIDGE_LIB_DIR}/bridge.pyz")
        assert code != 0
        # the volume outlives the tasks' own volumes: it is the instance's
        assert len(server.volumes(second)) == 2
    finally:
        server.cli("task", "delete", "-y", first, second, check=False)


def test_config_and_token_stay_out_of_the_agents_environment(server: ServerHandle) -> None:
    task = create(server, "env check")
    try:
        env = agent_environ(server, task)
        assert "DOCKYARD_BRIDGE_CONFIG" not in env and "DOCKYARD_BRIDGE_TOKEN" not in env
        token_file = env["DOCKYARD_BRIDGE_TOKEN_FILE"]
        assert token_file.startswith("/home/agent/.dockyard/bridge/")
        code, out = server.exec(task, "stat", "-c", "%a %u", token_file)
        assert (code, out.strip()) == (0, "600 1000")
        code, token = server.exec(task, "cat", token_file)
        assert code == 0 and token.strip() == server.engine.store.get(task).bridge_token
        # the agent's hooks reach the bridge with it
        assert env["DOCKYARD_BRIDGE_URL"] == "http://127.0.0.1:7777"
    finally:
        server.cli("task", "delete", "-y", task, check=False)


def test_a_config_too_big_for_the_environment_comes_as_a_file(server: ServerHandle) -> None:
    # ~130 KB: beyond what one environment string may hold
    prompt = "big " + " ".join(f"w{i}" for i in range(20000))
    task = create(server, prompt)
    try:
        server.wait_idle(task, timeout=60)
        inputs = [e["content"] for e in server.logs(task) if e["type"] == "input"]
        assert inputs == [prompt]  # the bridge had it whole
        code, out = server.exec(task, "stat", "-c", "%a %u", "/opt/dockyard/bridge.json")
        assert (code, out.strip()) == (0, "600 1000")
        env = server.container(task).attrs["Config"]["Env"]
        assert not any(e.startswith("DOCKYARD_BRIDGE_CONFIG=") for e in env)
    finally:
        server.cli("task", "delete", "-y", task, check=False)


def test_a_restarted_workspace_runs_the_servers_own_bridge(server: ServerHandle) -> None:
    task = create(server, "restart me")
    try:
        _, ps = server.exec(task, "ps", "-eo", "args")
        assert f"{BRIDGE_LIB_DIR}/bridge.pyz" in ps, ps
        server.cli("task", "pause", task)
        server.cli("task", "resume", task)
        server.wait_idle(task, timeout=60)
        # the copy made at restart runs (the volume's zipapp hands over to it, with the
        # interpreter's flags it was started with)
        _, ps = server.exec(task, "ps", "-eo", "args")
        assert "python3 -I -S /opt/dockyard/bridge.pyz --config" in ps, ps
        assert "Resumed" in "\n".join(server.output(task))
    finally:
        server.cli("task", "delete", "-y", task, check=False)


def test_a_removed_bridge_volume_is_made_again(server: ServerHandle) -> None:
    task = create(server, "first")
    name = {m["Destination"]: m for m in server.container(task).attrs["Mounts"]}[BRIDGE_LIB_DIR][
        "Name"
    ]
    server.cli("task", "delete", "-y", task)
    server.docker.volumes.get(name).remove()
    task = create(server, "after the volume went")  # --wait: the bridge answered
    try:
        assert "Done: after the volume went" in "\n".join(
            server.wait_output(task, "Done: after the volume went")
        )
    finally:
        server.cli("task", "delete", "-y", task, check=False)


@pytest.fixture
def instance(docker_client: docker.DockerClient) -> Iterator[str]:
    """A throwaway instance id; everything labelled with it is removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    labels = {"label": [f"{LABEL_INSTANCE}={name}"]}
    for c in docker_client.containers.list(all=True, filters=labels):
        c.remove(force=True)
    for v in docker_client.volumes.list(filters=labels):
        v.remove(force=True)


def test_older_bridge_volumes_go_unless_mounted(server: ServerHandle, instance: str) -> None:
    client = DockerClient()
    labels = {LABEL_MANAGED: "true", LABEL_INSTANCE: instance}
    volumes = BridgeVolumes(client, labels, instance)
    old = BridgeBundle(zipapp=b"old bridge", config_json=b"{}", token="t")
    kept = BridgeBundle(zipapp=b"older bridge, still mounted", config_json=b"{}", token="t")
    new = BridgeBundle(zipapp=b"new bridge", config_json=b"{}", token="t")
    probe = create(server, "which image")
    image = server.container(probe).attrs["Config"]["Image"]
    server.cli("task", "delete", "-y", probe)
    assert volumes.prepare(old, image) == volumes.name(old)
    volumes.prepare(kept, image)  # the older one goes: nothing mounts it
    assert set(client.volumes(labels)) == {volumes.name(kept)}
    holder = client.create_container(
        image=image, name=f"dockyard-test-{instance}", command=["true"], labels=labels,
        user="1000:1000", workdir="/", env={}, volumes={volumes.name(kept): BRIDGE_LIB_DIR},
        memory=None, cpus=None, pids=None, read_only=frozenset({volumes.name(kept)}),
    )  # fmt: skip
    name = volumes.prepare(new, image)
    # filled through a container made for it, which is gone again; root's files
    assert [c.id for c in client.containers(labels)] == [holder]
    files = [f"{BRIDGE_LIB_DIR}/bridge.pyz", f"{BRIDGE_LIB_DIR}/ready"]
    out = server.docker.containers.run(
        image, ["stat", "-c", "%u %a %s", *files], labels=labels, remove=True,
        volumes={name: {"bind": BRIDGE_LIB_DIR, "mode": "ro"}},
    )  # fmt: skip
    assert out.decode().split("\n")[0] == f"0 644 {len(new.zipapp)}"
    assert volumes.prepare(new, image) == name  # known now: nothing to do
    # the mounted older one stayed
    assert set(client.volumes(labels)) == {name, volumes.name(kept)}
    # ... until its workspace goes (a removed workspace prunes): the current one stays
    client.remove_container(holder)
    volumes.prune_unused()
    assert set(client.volumes(labels)) == {name}
