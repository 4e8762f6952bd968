"""Freeing a deleted task's volumes on its swarm node (provisioner/backends/swarm_volumes.py)
against a fake manager and fake node daemons: the node's endpoint removes them (one in use
is tried again), else a wipe service pinned to the node empties them and is removed; a
drained or departed node does not hold a delete up; the sweep reaps ended wipes and finds
leftover volumes. The real swarm: tests/docker/test_swarm.py."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from provisioner.backends.swarm import SwarmSettings
from provisioner.backends.swarm_client import ServiceInfo, TaskInfo
from provisioner.backends.swarm_volumes import (
    LABEL_WIPE,
    Placed,
    VolumeJanitor,
    check_endpoints,
    volume_names,
    wipe_command,
)
from provisioner.placement import NodeView

TASK = "3f2a9c1e-0000-4000-8000-00000000abcd"
BASE = {"dockyard.managed": "true", "dockyard.instance": "i1"}
GOOD = {"manager": "unix:///run/m.sock", "registry": "10.0.0.1:5000"}


def _conflict() -> docker.errors.APIError:
    response = type("R", (), {"status_code": 409, "reason": "Conflict"})()
    return docker.errors.APIError("volume is in use", response=response)  # type: ignore[arg-type]


class FakeNodeApi:
    """A node's (or the manager's) Docker API: volumes, and services made on it."""

    def __init__(self, manager: FakeSwarm | None = None) -> None:
        self.volumes_left = set(volume_names(TASK))
        self.busy = 0  # removes refused as in use before they succeed
        self.manager = manager

    def remove_volume(self, name: str) -> None:
        if self.busy:
            self.busy -= 1
            raise _conflict()
        if name not in self.volumes_left:
            raise docker.errors.NotFound("no such volume")
        self.volumes_left.discard(name)

    def volumes(self, filters: dict[str, Any]) -> dict[str, Any]:
        return {"Volumes": [{"Labels": {"dockyard.task": TASK}} for _ in self.volumes_left]}

    def create_service(self, template: Any, name: str, labels: dict[str, str], mode: Any) -> Any:
        assert self.manager is not None
        return {"ID": self.manager.add_wipe(template, labels)}

    def close(self) -> None:
        pass


class FakeSwarm:
    """The manager's view: nodes, services, and each wipe's task (as `outcome` says)."""

    def __init__(self, availability: str = "active", outcome: str = "complete") -> None:
        self.node_list = [NodeView("id1", "n1", availability=availability)]
        self.svcs: dict[str, ServiceInfo] = {}
        self.outcome = outcome
        self.templates: list[Any] = []

    def add_wipe(self, template: Any, labels: dict[str, str]) -> str:
        sid = f"s{len(self.svcs)}"
        self.templates.append(template)
        spec = {"Labels": labels, "TaskTemplate": dict(template)}
        self.svcs[sid] = ServiceInfo(sid, "wipe", 1, 1, labels, [], "img", spec)
        return sid

    def nodes(self) -> list[NodeView]:
        return self.node_list

    def services(self, labels: dict[str, str]) -> list[ServiceInfo]:
        return [
            s for s in self.svcs.values() if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def tasks(self, service: str | None = None) -> list[TaskInfo]:
        state = self.outcome if self.node_list[0].availability == "active" else "pending"
        err = "exit status 1" if state == "failed" else ""
        return [TaskInfo("t", service or "", "id1", state, "shutdown", err, None, {}, "1")]

    def remove_service(self, service: str) -> None:
        self.svcs.pop(service, None)


def janitor(swarm: FakeSwarm, endpoints: dict[str, str] | None = None) -> Any:
    apis: dict[str, FakeNodeApi] = {}

    def connect(url: str) -> FakeNodeApi:
        return apis.setdefault(url, FakeNodeApi(swarm if url == "manager" else None))

    j = VolumeJanitor(swarm, "manager", BASE, endpoints, connect=connect)  # type: ignore[arg-type]
    j.apis = apis
    return j


PLACED = [Placed("id1", "n1", "reg:5000/dockyard/x-bridge:1")]


def test_with_the_nodes_endpoint_the_volumes_are_removed_even_if_in_use_a_moment() -> None:
    j = janitor(FakeSwarm(), {"n1": "unix:///n1.sock"})
    node = j._client("unix:///n1.sock")
    node.busy = 2  # the workspace's container is still stopping
    (freed,) = j.free(TASK, PLACED)
    assert freed.how == "removed" and not node.volumes_left
    assert not j.swarm.svcs, "no wipe was needed"


def test_a_node_whose_endpoint_does_not_answer_does_not_fail_the_delete() -> None:
    def refuse(url: str) -> Any:
        raise docker.errors.DockerException("Error while fetching server API version")

    j = VolumeJanitor(FakeSwarm(), "manager", BASE, {"n1": "tcp://n1:2375"}, connect=refuse)  # type: ignore[arg-type]
    (freed,) = j.free(TASK, PLACED)
    assert freed.how == "pending" and "the sweep retries" in freed.detail
    assert j.leftover_task_ids() == set(), "skipped, asked again by the next sweep"


def test_without_one_a_wipe_pinned_to_the_node_empties_them_and_the_sweep_removes_it() -> None:
    swarm = FakeSwarm()
    j = janitor(swarm)
    (freed,) = j.free(TASK, PLACED)
    assert freed.how == "wiping" and len(swarm.svcs) == 1, "a delete does not wait for it"
    container = swarm.templates[0]["ContainerSpec"]
    assert swarm.templates[0]["Placement"]["Constraints"] == ["node.id==id1"]
    assert {m["Source"] for m in container["Mounts"]} == set(volume_names(TASK))
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Image"] == PLACED[0].image
    assert j.free(TASK, PLACED)[0].how == "wiping" and len(swarm.svcs) == 1, "one at a time"
    assert j.reap() == set() and not swarm.svcs, "ended: removed by the sweep"


def test_a_failed_wipe_is_logged_and_removed(caplog: pytest.LogCaptureFixture) -> None:
    swarm = FakeSwarm(outcome="failed")
    j = janitor(swarm)
    j.free(TASK, PLACED)
    assert j.reap() == set() and not swarm.svcs
    assert "exit status 1" in caplog.text


def test_a_drained_node_does_not_hold_the_delete_up_and_the_sweep_reaps_the_wipe_later() -> None:
    swarm = FakeSwarm(availability="drain")
    j = janitor(swarm)
    (freed,) = j.free(TASK, PLACED)
    assert freed.how == "pending" and "drained" in freed.detail
    assert j.reap() == {TASK}, "the wipe waits for the node"
    swarm.node_list = [NodeView("id1", "n1")]  # undrained: Swarm runs the wipe
    assert j.reap() == set() and not swarm.svcs


def test_a_node_that_left_needs_no_wipe() -> None:
    swarm = FakeSwarm()
    swarm.node_list = []
    (freed,) = janitor(swarm).free(TASK, PLACED)
    assert freed.how == "gone" and not swarm.svcs


def test_the_sweep_finds_leftover_volumes_on_nodes_with_an_endpoint() -> None:
    j = janitor(FakeSwarm(), {"n1": "unix:///n1.sock", "n2": "tcp://n2:2375"})
    assert j.leftover_task_ids() == {TASK}
    j.free(TASK, [])  # the sweep's remove: no service left, every endpoint asked
    assert j.leftover_task_ids() == set()


def test_the_wipe_command_empties_dot_files_and_checks() -> None:
    argv = wipe_command(TASK)
    assert argv[:2] == ["sh", "-c"] and "-mindepth 1 -delete" in argv[2]
    assert all(f"/wipe/{v}" in argv[2] for v in volume_names(TASK))
    assert LABEL_WIPE == "dockyard.wipe"


def test_node_endpoints_in_the_config() -> None:
    endpoints = {"n1": "unix:///srv/n1.sock", "n-2.example": "tcp://10.0.0.2:2375"}
    assert SwarmSettings.from_config({**GOOD, "node_endpoints": endpoints}).node_endpoints == (
        endpoints
    )
    assert SwarmSettings.from_config(GOOD).node_endpoints == {}


@pytest.mark.parametrize(
    "bad",
    [
        "unix:///x",
        ["n1"],
        {"n1": "http://n1:2375"},
        {"n1": "unix:///n1.sock; rm -rf /"},
        {"n1": "tcp://n1:2375\nx"},
        {"n1": "unix:///n1.sock\n"},
        {"n1\n": "unix:///n1.sock"},
        {"../n1": "unix:///n1.sock"},
        {"n1\x1b[2J": "unix:///n1.sock"},
        {"": "unix:///n1.sock"},
        {"n" * 300: "unix:///n1.sock"},
        {"n1": None},
        {7: "unix:///n1.sock"},
    ],
)
def test_hostile_node_endpoints_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="node_endpoints"):
        check_endpoints(bad)
    with pytest.raises(ValueError):
        SwarmSettings.from_config({**GOOD, "node_endpoints": bad})
