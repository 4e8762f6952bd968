"""Placement on a cluster (provisioner/placement.py): constraints, spread, capacity per
node, and what a node's state means for its workspaces; the swarm settings and template
field that feed it; the Swarm backend's reading of a node that is away (no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.backends import swarm as swarm_module
from provisioner.backends.base import Observed
from provisioner.backends.docker import LABEL_INSTANCE, LABEL_MANAGED, LABEL_TASK
from provisioner.backends.swarm import (
    LABEL_NODE,
    LABEL_NODE_NAME,
    SwarmBackend,
    SwarmSettings,
)
from provisioner.backends.swarm_client import ServiceInfo, TaskInfo, memory_bytes
from provisioner.errors import BackendError, BackendUnavailable, DockyardError
from provisioner.placement import (
    NodeView,
    PlacementError,
    check_constraint,
    choose,
    drained,
    on_lost,
    problem,
    settling,
)
from provisioner.templating.schema import TemplateConfig

N1 = NodeView("id1", "n1", role="manager", addr="10.0.0.1", labels={"zone": "a"})
N2 = NodeView("id2", "n2", addr="10.0.0.2", labels={"zone": "b", "gpu": "yes"})
N3 = NodeView("id3", "n3", addr="10.0.0.3", labels={"zone": "b"})


@pytest.mark.parametrize(
    "text",
    [
        "node.role==worker",
        "node.hostname != n1",
        "node.labels.zone==b",
        "engine.labels.ssd==true",
        "node.platform.arch==x86_64",
        "node.id==abc123",
    ],
)
def test_swarm_constraints_are_accepted(text: str) -> None:
    assert check_constraint(text) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "node.role",
        "node.role=worker",  # Swarm's operators are == and !=
        "node.labels.zone==a; rm -rf /",  # shell quoting
        "node.labels.zone==$(id)",
        "node.labels.zone==a\nnode.role==worker",  # a second line
        "node.labels.zone==\x1b[31m",  # control characters
        "node.labels.../../etc==x",  # nothing of a path is special, but not this
        "container.labels.x==y",  # not an attribute Swarm places by
        "node.labels.x==" + "y" * 300,  # bounded
    ],
)
def test_other_constraints_are_refused_with_the_grammar(text: str) -> None:
    with pytest.raises(PlacementError) as err:
        check_constraint(text)
    assert "constraint" in str(err.value)


def test_choose_spreads_to_the_least_loaded_node_that_meets_constraints() -> None:
    nodes = [N1, N2, N3]
    assert choose(nodes, [], {}).hostname == "n1"  # ties: first hostname
    assert choose(nodes, [], {"id1": 1}).hostname == "n2"
    assert choose(nodes, [], {"id1": 1, "id2": 1}).hostname == "n3"
    assert choose(nodes, ["node.labels.zone==b"], {"id2": 2, "id3": 1}).hostname == "n3"
    assert choose(nodes, ["node.labels.gpu==yes"], {"id2": 9}).hostname == "n2"
    assert choose(nodes, ["node.role!=manager", "node.labels.gpu!=yes"], {}).hostname == "n3"


def test_choose_skips_nodes_down_drained_or_full_and_says_why_none_fits() -> None:
    down = NodeView("id1", "n1", state="down", message="heartbeat failure")
    drained = NodeView("id2", "n2", availability="drain")
    assert choose([down, drained, N3], [], {}).hostname == "n3"
    with pytest.raises(PlacementError) as err:
        choose([down, drained, N3], ["node.labels.gpu==yes"], {})
    message = str(err.value)
    assert "node n1 is down: heartbeat failure" in message
    assert "node n2 is drained" in message
    assert "node n3 does not meet node.labels.gpu==yes" in message
    with pytest.raises(PlacementError, match=r"node n3 is full \(2 of 2\)"):
        choose([N3], [], {"id3": 2}, per_node=2)
    with pytest.raises(PlacementError, match="no nodes"):
        choose([], [], {})


def test_problem_names_the_node() -> None:
    assert problem(N1) is None
    assert problem(NodeView("x", "n9", state="down")) == "node n9 is down"
    assert problem(NodeView("x", "n9", availability="drain")) == "node n9 is drained"
    assert "paused" in (problem(NodeView("x", "n9", availability="pause")) or "")


def test_template_placement_is_validated() -> None:
    base = {"name": "t", "agent": {"command": ["a"]}}
    placement = {"constraints": ["node.role==worker"]}
    ok = TemplateConfig.model_validate(
        {**base, "backend": "swarm", "workspace": {"placement": placement}}
    )
    assert ok.workspace.placement.constraints == ["node.role==worker"]
    assert ok.workspace.placement.preferences == "spread"
    for placement in (
        {"constraints": ["rm -rf /"]},
        {"constraints": ["node.role==worker"] * 17},
        {"preferences": "binpack"},
        {"other": 1},
    ):
        with pytest.raises(ValueError):
            TemplateConfig.model_validate({**base, "workspace": {"placement": placement}})
    assert ok.workspace.placement.on_drain == "error"  # as before the option existed
    paused = TemplateConfig.model_validate(
        {**base, "workspace": {"placement": {"on_drain": "pause"}}}
    )
    assert paused.workspace.placement.on_drain == "pause"


@pytest.mark.parametrize(
    "value", ["Pause", "stop", "", "pause\n", "pause; rm -rf /", "../pause", 1, None, ["pause"]]
)
def test_a_bad_on_drain_is_a_template_error_naming_the_field_and_choices(value: object) -> None:
    base = {"name": "t", "agent": {"command": ["a"]}}
    with pytest.raises(ValueError) as err:
        TemplateConfig.model_validate({**base, "workspace": {"placement": {"on_drain": value}}})
    text = str(err.value)
    assert "on_drain" in text and "'error'" in text and "'pause'" in text, text


def test_a_drained_node_pauses_only_tasks_whose_template_asks() -> None:
    assert drained(NodeView("x", "n2", availability="drain"))
    assert not drained(NodeView("x", "n2", state="down", availability="drain"))
    assert not drained(NodeView("x", "n2", availability="pause"))
    assert settling(NodeView("x", "n2", state="unknown"))
    assert not settling(NodeView("x", "n2", state="down"))
    pause = {"on_drain": "pause"}
    assert on_lost(pause, "node n2 is drained", True) == "pause"
    assert on_lost({}, "node n2 is drained", True) == "error"  # the default, older tasks
    assert on_lost({"on_drain": "error"}, "node n2 is drained", True) == "error"
    # a node down or gone: nothing there to pause, whatever the template says
    assert on_lost(pause, "node n2 is down: heartbeat failure", False) == "error"
    assert on_lost(pause, "", False) == "error"  # not a node's loss: the container died


GOOD = {"manager": "unix:///run/m.sock", "registry": "10.0.0.1:5000", "network": "dockyard-net"}


def test_swarm_settings_are_checked() -> None:
    settings = SwarmSettings.from_config({**GOOD, "workspaces_per_node": 4})
    assert settings.registry == "10.0.0.1:5000" and settings.workspaces_per_node == 4
    assert SwarmSettings.from_config({**GOOD, "network": None}).network == "dockyard-net"
    for bad in (
        None,
        "unix:///x",
        {**GOOD, "manager": "http://x"},
        {**GOOD, "manager": "unix:///run/m.sock; rm -rf /"},
        {**GOOD, "registry": "https://registry"},
        {**GOOD, "registry": "reg/../x"},
        {**GOOD, "network": "bad name"},
        {**GOOD, "workspaces_per_node": 0},
        {**GOOD, "workspaces_per_node": True},
        {**GOOD, "extra": 1},
    ):
        with pytest.raises(ValueError):
            SwarmSettings.from_config(bad)


def test_server_config_chooses_the_swarm_backend(tmp_path: Path) -> None:
    from provisioner.backends.docker import DockerBackend
    from provisioner.server.backend_config import configured_backends

    docker = DockerBackend(instance="i1")

    def backends(config: str) -> dict[str, Any]:
        (tmp_path / "config.yaml").write_text(config)
        return configured_backends(tmp_path, docker, {})

    assert backends("{}") == {"docker": docker}
    swarm = "swarm: {manager: 'unix:///run/m.sock', registry: 'r:5000'}\n"
    found = backends(swarm)
    assert found["docker"] is docker and isinstance(found["swarm"], SwarmBackend)
    found = backends("backend: swarm\n" + swarm)
    assert found["docker"] is found["swarm"]  # templates naming docker run on the swarm
    with pytest.raises(DockyardError, match="needs a swarm section"):
        backends("backend: swarm\n")
    with pytest.raises(DockyardError, match="not one of"):
        backends("backend: kubernetes\n")
    with pytest.raises(DockyardError, match=r"swarm.registry"):
        backends("swarm: {manager: 'unix:///run/m.sock', registry: 'a b'}\n")


def test_memory_sizes() -> None:
    assert memory_bytes("512m") == 512 * 1024**2
    assert memory_bytes("2g") == 2 * 1024**3
    assert memory_bytes("1024") == 1024
    assert memory_bytes(None) is None


# --- the backend's reading of the swarm, on a fake manager ---------------------------
class FakeSwarm:
    """The manager's answers, as SwarmClient gives them."""

    def __init__(self, nodes: list[NodeView], replicas: int = 1) -> None:
        self._nodes = nodes
        labels = {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: "i1",
            LABEL_TASK: "t1",
            LABEL_NODE: "id2",
            LABEL_NODE_NAME: "n2",
        }
        self.service = ServiceInfo("s1", "dockyard-t1", 1, replicas, labels, [], "img", {})
        self.task = TaskInfo("k1", "s1", "id2", "running", "running", "", None, {7777: 30001}, "")
        self.updates: list[dict[str, Any]] = []

    def nodes(self) -> list[NodeView]:
        return self._nodes

    def services(self, labels: dict[str, str]) -> list[ServiceInfo]:
        wanted = labels.items() <= self.service.labels.items()
        return [self.service] if wanted else []

    def tasks(self, service: str | None = None) -> list[TaskInfo]:
        return [self.task]

    def update_service(self, service: ServiceInfo, **changes: Any) -> None:
        self.updates.append(changes)


def _backend(fake: FakeSwarm) -> SwarmBackend:
    settings = SwarmSettings.from_config(GOOD)
    return SwarmBackend("i1", settings, swarm=fake)  # type: ignore[arg-type]


def test_observe_gives_the_bridge_on_its_node_and_a_lost_node_by_name() -> None:
    fake = FakeSwarm([N1, N2])
    observed = _backend(fake).observe("t1")
    assert observed == Observed(
        exists=True, running=True, endpoint="http://10.0.0.2:30001", node="n2"
    )
    assert _backend(fake).running_task_ids() == {"t1"}
    assert _backend(fake).observe("other").exists is False

    down = NodeView("id2", "n2", state="down", message="heartbeat failure")
    observed = _backend(FakeSwarm([N1, down])).observe("t1")
    assert not observed.running and observed.exists
    assert observed.death_cause() == "node n2 is down: heartbeat failure"
    assert _backend(FakeSwarm([N1, down])).running_task_ids() == set()

    gone = _backend(FakeSwarm([N1])).observe("t1")
    assert "node n2 left the swarm" in gone.death_cause()
    assert not observed.drained and not gone.drained

    # just after a manager restart every node is `unknown` until it reports: waited for
    unknown = NodeView("id2", "n2", addr="10.0.0.2", state="unknown", message="leadership")
    observed = _backend(FakeSwarm([N1, unknown])).observe("t1")
    assert observed.restarting and not observed.lost and not observed.running
    assert _backend(FakeSwarm([N1, unknown])).running_task_ids() == {"t1"}

    drain = NodeView("id2", "n2", addr="10.0.0.2", availability="drain")
    observed = _backend(FakeSwarm([N1, drain])).observe("t1")
    assert observed.drained and observed.lost == "node n2 is drained"


def test_start_on_a_node_that_is_away_is_refused_naming_it() -> None:
    drained = NodeView("id2", "n2", availability="drain")
    fake = FakeSwarm([N1, drained], replicas=0)
    with pytest.raises(BackendUnavailable, match="node n2 is drained") as err:
        _backend(fake).start("t1", bridge=None)  # type: ignore[arg-type]
    assert "resume the task once the node is back" in str(err.value)
    assert fake.updates == []  # nothing was asked of Swarm


def test_commands_go_through_the_bridge_root_and_fork_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Swarm has no cross-node exec (moby/moby#27552): a running workspace's commands go
    to its bridge, at its node's address, with the task's own token."""
    calls: list[tuple[str, ...]] = []

    class Bridge:
        def __init__(self, endpoint: str, token: str) -> None:
            calls.append(("at", endpoint, token))

        def run(self, argv: list[str], *, timeout: float) -> tuple[int, str]:
            calls.append(("run", *argv))
            return 0, "ran"

        def open_port(self, port: int) -> str:
            calls.append(("port", str(port)))
            return "stream"

    monkeypatch.setattr(swarm_module, "BridgeExec", Bridge)
    fake = FakeSwarm([N1, N2])
    backend = SwarmBackend(
        "i1",
        SwarmSettings.from_config(GOOD),
        swarm=fake,  # type: ignore[arg-type]
        bridge_token=lambda task_id: f"token-of-{task_id}",
    )
    assert backend.exec("t1", ["true", "a;b"]) == (0, "ran")
    assert backend.open_port("t1", 3000) == "stream"  # type: ignore[comparison-overlap]
    assert calls == [
        ("at", "http://10.0.0.2:30001", "token-of-t1"),
        ("run", "true", "a;b"),
        ("at", "http://10.0.0.2:30001", "token-of-t1"),
        ("port", "3000"),
    ]
    with pytest.raises(BackendError, match="root is not available"):
        backend.open_session("t1", ["sh"], tty=True, root=True)
    with pytest.raises(BackendError, match="reached through the bridge"):
        backend.address("t1")
    down = NodeView("id2", "n2", state="down", message="heartbeat failure")
    with pytest.raises(BackendError, match=r"no running workspace.*node n2 is down"):
        _backend(FakeSwarm([N1, down])).exec("t1", ["true"])
    backend = _backend(fake)
    assert backend.can_fork(None) is False  # type: ignore[arg-type]
