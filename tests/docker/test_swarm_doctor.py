"""`dockyard doctor`'s Swarm checks on a real swarm (tests/swarm.py): all OK with the
manager, the nodes, the overlay network, the registry, a push from this machine's Docker
and a pull on every node; then a drained node, a missing network and a registry on a
closed port, each said with what to do."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import docker
import pytest

from provisioner.doctor.checks import Level, Result, run_checks
from provisioner.doctor.swarm_checks import SWARM_CHECKS, with_swarm
from provisioner.doctor.swarm_probes import PROBE_REPO, SwarmMachineProbes
from tests.swarm import Swarm

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


def _settings(swarm: Swarm, **changes: Any) -> dict[str, Any]:
    section = {
        **swarm.settings(),
        "node_endpoints": {n.name: n.socket for n in swarm.nodes},
        **changes,
    }
    return {"backend": "swarm", "swarm": {k: v for k, v in section.items() if v is not None}}


def _doctor(settings: dict[str, Any]) -> dict[str, Result]:
    """The Swarm checks alone (the machine's own are tests/docker/test_doctor.py's)."""
    probes = SwarmMachineProbes(settings)
    try:
        table = with_swarm({"swarm": lambda _: Result("swarm", Level.SKIP, "")}, probes)
        return {r.name: r for r in run_checks(None, table)}  # type: ignore[arg-type]
    finally:
        probes.close()


def _set_availability(swarm: Swarm, hostname: str, availability: str) -> None:
    with contextlib.closing(swarm.manager.client()) as manager:
        node = next(n for n in manager.nodes() if n["Description"]["Hostname"] == hostname)
        spec = {**node["Spec"], "Availability": availability}
        manager.update_node(node["ID"], node["Version"]["Index"], spec)


def test_a_healthy_swarm_then_each_thing_broken(
    swarm: Swarm, docker_client: docker.DockerClient
) -> None:
    found = _doctor(_settings(swarm))
    assert {n: r.level for n, r in found.items()} == dict.fromkeys(SWARM_CHECKS, Level.OK), found
    assert "dys-n1, dys-n2" in found["swarm-pull"].summary  # each node pulled for real
    # the probe image is gone from this machine and from the nodes it was pulled on
    assert not docker_client.images.list(name=f"{swarm.registry}/{PROBE_REPO}")
    for node in swarm.nodes:
        with contextlib.closing(node.client()) as client:
            assert not client.images(name=f"{swarm.registry}/{PROBE_REPO}")

    _set_availability(swarm, "dys-n2", "drain")
    try:
        nodes = _doctor(_settings(swarm))["swarm-nodes"]
        assert nodes.level == Level.WARN and "node dys-n2 is drained" in nodes.summary
        assert "--availability active dys-n2" in nodes.fix
    finally:
        _set_availability(swarm, "dys-n2", "active")

    network = _doctor(_settings(swarm, network="dys-missing"))["swarm-network"]
    assert network.level == Level.FAIL and "dys-missing does not exist" in network.summary
    assert "--attachable dys-missing" in network.fix

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    found = _doctor(_settings(swarm, registry=closed))
    assert found["registry"].level == Level.FAIL and "refused" in found["registry"].summary
    assert found["registry-push"].level == Level.SKIP
    assert found["swarm-manager"].level == Level.OK  # the rest still says what it found

    # no endpoints: the nodes are not asked, and a loopback registry name is a warning
    pull = _doctor(_settings(swarm, node_endpoints=None))["swarm-pull"]
    assert pull.level == Level.WARN and "loopback" in pull.summary
