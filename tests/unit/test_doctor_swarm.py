"""`dockyard doctor`'s Swarm checks (provisioner/doctor/swarm_checks.py) failing on purpose
through fake probes: the manager away or not a manager, a drained node, no node ready, a
missing or wrong network, a registry that is not there, a push refused, a node that cannot
pull; and the real probes against a closed port. The real swarm:
tests/docker/test_swarm_doctor.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cli.main import cli
from provisioner.doctor import checks
from provisioner.doctor.checks import Level, ProbeError, Result, run_checks
from provisioner.doctor.swarm_checks import SWARM_CHECKS, is_loopback, with_swarm
from provisioner.placement import NodeView
from tests.unit.test_doctor import FakeProbes

NODES = [NodeView("i1", "n1", role="manager"), NodeView("i2", "n2"), NodeView("i3", "n3")]
ENDPOINTS = {"n1": "unix:///n1.sock", "n2": "unix:///n2.sock", "n3": "tcp://n3:2375"}


class FakeSwarmProbes:
    """A healthy swarm whose every node has an endpoint; a test breaks one thing."""

    def __init__(self, **broken: Any) -> None:
        self.conf: Any = {
            "manager": "unix:///m.sock",
            "registry": "registry.internal:5000",
            "network": "dockyard-net",
            "node_endpoints": dict(ENDPOINTS),
        }
        self.info: Any = {"ControlAvailable": True, "LocalNodeState": "active", "Managers": 1}
        self.node_list: Any = list(NODES)
        self.net: Any = {"Name": "dockyard-net", "Driver": "overlay", "Attachable": True}
        self.reg: Any = ("https://registry.internal:5000/v2/", 200)
        self.pushed: Any = "registry.internal:5000/dockyard/doctor-probe:latest"
        self.pulls: dict[str, Any] = {}
        self.history: Any = []
        for key, value in broken.items():
            setattr(self, key, value)

    @staticmethod
    def _give(value: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        return value

    def config(self) -> Mapping[str, Any]:
        return self._give(self.conf)  # type: ignore[no-any-return]

    def manager(self) -> Mapping[str, Any]:
        return self._give(self.info)  # type: ignore[no-any-return]

    def nodes(self) -> list[NodeView]:
        self.manager()
        return self._give(self.node_list)  # type: ignore[no-any-return]

    def network(self, name: str) -> Mapping[str, Any] | None:
        self.manager()
        return self._give(self.net)  # type: ignore[no-any-return]

    def registry(self, registry: str) -> tuple[str, int]:
        return self._give(self.reg)  # type: ignore[no-any-return]

    def push(self, registry: str) -> str:
        return self._give(self.pushed)  # type: ignore[no-any-return]

    def pull(self, node: str, endpoint: str, ref: str) -> None:
        self._give(self.pulls.get(node))

    def pull_errors(self) -> list[tuple[str, str]]:
        return self._give(self.history)  # type: ignore[no-any-return]


def found(sp: FakeSwarmProbes) -> dict[str, Result]:
    table = with_swarm(checks.CHECKS, sp)
    return {r.name: r for r in run_checks(FakeProbes(), table) if r.name in SWARM_CHECKS}


def test_a_healthy_swarm_is_all_ok_in_place_of_the_placeholder() -> None:
    table = with_swarm(checks.CHECKS, FakeSwarmProbes())
    assert "swarm" not in table and list(SWARM_CHECKS) == [n for n in table if n in SWARM_CHECKS]
    results = found(FakeSwarmProbes())
    assert {n: r.level for n, r in results.items()} == dict.fromkeys(SWARM_CHECKS, Level.OK)
    assert "n1, n2, n3" in results["swarm-nodes"].summary


UNREACHED = {"manager": "unix:///m.sock", "registry": "r:5000", "network": "dockyard-net"}
DRAINED = [NODES[0], NodeView("i2", "n2", availability="drain"), NODES[2]]
DOWN = [NodeView(n.id, n.hostname, state="down", message="heartbeat failure") for n in NODES]


@pytest.mark.parametrize(
    ("broken", "name", "level", "words"),
    [
        ({"info": ProbeError("connection refused")}, "swarm-manager", Level.FAIL, "refused"),
        ({"info": ProbeError("connection refused")}, "swarm-nodes", Level.SKIP, "manager"),
        ({"info": ProbeError("connection refused")}, "swarm-network", Level.SKIP, "manager"),
        ({"info": {"ControlAvailable": False, "LocalNodeState": "inactive"}}, "swarm-manager",
         Level.FAIL, "not a swarm manager"),
        ({"conf": ProbeError("no swarm: section")}, "swarm-manager", Level.FAIL, "no swarm:"),
        ({"node_list": DRAINED}, "swarm-nodes", Level.WARN, "node n2 is drained"),
        ({"node_list": DOWN}, "swarm-nodes", Level.FAIL, "no node can take"),
        ({"node_list": []}, "swarm-nodes", Level.FAIL, "no nodes"),
        ({"net": None}, "swarm-network", Level.FAIL, "does not exist"),
        ({"net": {"Driver": "overlay", "Attachable": False}}, "swarm-network", Level.FAIL,
         "not attachable"),
        ({"net": {"Driver": "bridge", "Attachable": True}}, "swarm-network", Level.FAIL,
         "bridge"),
        ({"reg": ProbeError("http: connection refused")}, "registry", Level.FAIL, "refused"),
        ({"reg": ProbeError("http: connection refused")}, "registry-push", Level.SKIP,
         "registry"),
        ({"reg": ("http://r:5000/v2/", 404)}, "registry", Level.FAIL, "HTTP 404"),
        ({"reg": ("https://r:5000/v2/", 401)}, "registry", Level.OK, "credentials"),
        ({"pushed": ProbeError("server gave HTTP response to HTTPS client")}, "registry-push",
         Level.FAIL, "HTTP response"),
        ({"pushed": ProbeError("denied")}, "swarm-pull", Level.SKIP, "registry-push"),
        ({"pulls": {"n3": ProbeError("manifest unknown")}}, "swarm-pull", Level.FAIL,
         "node n3: manifest unknown"),
        ({"history": [("n2", "No such image: r/x")], "conf": UNREACHED}, "swarm-pull", Level.FAIL,
         "node n2: a recent task there"),
    ],
)  # fmt: skip
def test_each_swarm_check_fails_on_purpose(
    broken: dict[str, Any], name: str, level: Level, words: str
) -> None:
    result = found(FakeSwarmProbes(**broken))[name]
    assert result.level == level, result
    assert words in result.summary, result
    if level in (Level.WARN, Level.FAIL):
        assert result.fix, f"{name} says what to do"


def test_the_drained_nodes_fix_names_them() -> None:
    result = found(FakeSwarmProbes(node_list=DRAINED))["swarm-nodes"]
    assert result.fix.endswith("--availability active n2")


def test_pulls_without_endpoints_say_what_was_not_checked() -> None:
    conf = {**FakeSwarmProbes().conf, "node_endpoints": {"n1": "unix:///n1.sock"}}
    result = found(FakeSwarmProbes(conf=conf))["swarm-pull"]
    assert result.level == Level.SKIP and "pulled on n1" in result.summary
    assert "not checked on n2, n3" in result.summary and "node_endpoints" in result.fix
    loop = {**conf, "registry": "127.0.0.1:5000"}
    result = found(FakeSwarmProbes(conf=loop))["swarm-pull"]
    assert result.level == Level.WARN and "loopback" in result.summary
    # a node pulled just now is not failed for an older error there
    ok = found(FakeSwarmProbes(history=[("n1", "No such image")]))["swarm-pull"]
    assert ok.level == Level.OK


@pytest.mark.parametrize(
    ("registry", "loop"),
    [("127.0.0.1:5000", True), ("localhost:5000", True), ("[::1]:5000", True),
     ("10.0.0.1:5000", False), ("registry.internal", False), ("127.example:5000", False)],
)  # fmt: skip
def test_loopback_registry_names(registry: str, loop: bool) -> None:
    assert is_loopback(registry) is loop


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_the_real_probes_fail_on_a_missing_manager_and_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = {
        "backend": "swarm",
        "swarm": {
            "manager": f"unix://{tmp_path}/no-manager.sock",
            "registry": f"127.0.0.1:{_closed_port()}",
            "node_endpoints": {"n1": f"unix://{tmp_path}/no-node.sock"},
        },
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DOCKYARD_HOME", str(home))
    result = CliRunner().invoke(cli, ["doctor", "--local", "-o", "json"])
    assert result.exit_code == 1, result.output
    got = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "swarm" not in got
    assert (
        got["swarm-manager"]["level"] == "FAIL"
        and "no-manager.sock" in (got["swarm-manager"]["summary"])
    )
    assert got["registry"]["level"] == "FAIL" and "refused" in got["registry"]["summary"]
    assert got["registry-push"]["level"] == "SKIP"
    assert got["swarm-nodes"]["level"] == "SKIP" and got["swarm-pull"]["level"] == "SKIP"
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]  # nothing written


def test_a_bad_swarm_section_is_a_failure_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("backend: swarm\nswarm: {manager: 'http://x'}\n")
    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["doctor", "--local", "-o", "json"])
    got = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert got["swarm-manager"]["level"] == "FAIL"
    assert "swarm.manager" in got["swarm-manager"]["summary"]
    assert got["registry"]["level"] == "FAIL" and result.exit_code == 1
