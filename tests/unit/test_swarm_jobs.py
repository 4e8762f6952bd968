"""One-shot jobs on a swarm node (swarm_jobs.run_on_node) against a recording manager:
pinned to the node, hardened, no network but an internal one, removed whatever happens."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.backends import swarm_jobs
from provisioner.backends.swarm_client import TaskInfo
from provisioner.errors import BackendError


class Api:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.network_made: list[dict[str, Any]] = []
        self.nets: list[str] = []

    def networks(self, names: list[str]) -> list[dict[str, str]]:
        return [{"Name": n} for n in self.nets if n in names]

    def create_network(self, name: str, **kwargs: Any) -> None:
        self.network_made.append({"name": name, **kwargs})
        self.nets.append(name)

    def create_service(self, template: Any, **kwargs: Any) -> dict[str, str]:
        self.created.append({"template": template, **kwargs})
        return {"ID": "svc1"}

    def service_logs(self, service: str, **kwargs: Any) -> list[bytes]:
        return [b"line one\n", b"line two\n"]


class Swarm:
    def __init__(self, states: list[TaskInfo | None]) -> None:
        self._api = Api()
        self.states = states
        self.removed: list[str] = []

    def tasks(self, service: str | None = None) -> list[TaskInfo]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return [state] if state else []

    def remove_service(self, service: str) -> None:
        self.removed.append(service)


def _task(state: str, code: int | None, error: str = "") -> TaskInfo:
    return TaskInfo("k1", "svc1", "node1", state, "shutdown", error, code, {}, "")


def _run(swarm: Swarm, network: str | None = None, timeout: float = 5) -> tuple[int, str]:
    return swarm_jobs.run_on_node(
        swarm,  # type: ignore[arg-type]
        node="node1",
        image="reg/img:1",
        name="dockyard-job-x",
        command=["git", "diff", "a b;c"],
        labels={"dockyard.managed": "true", swarm_jobs.LABEL_JOB: "t1"},
        user="1000:1000",
        workdir="/workspace",
        volumes={"v-ws": "/workspace", "v-home": "/home/agent"},
        env={"HOME": "/home/agent"},
        network=network,
        timeout=timeout,
    )


def test_a_job_runs_pinned_hardened_and_isolated_then_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(swarm_jobs, "POLL_S", 0.001)
    swarm = Swarm([None, _task("running", None), _task("failed", 3, "non-zero exit (3)")])
    assert _run(swarm) == (3, "line one\nline two\n")
    (made,) = swarm._api.created
    spec = made["template"]
    container = spec["ContainerSpec"]
    assert container["Command"] == ["git", "diff", "a b;c"]  # an argv, never a shell line
    assert container["User"] == "1000:1000" and container["CapabilityDrop"] == ["ALL"]
    assert container["Privileges"] == {"NoNewPrivileges": True}
    assert {(m["Source"], m["Target"]) for m in container["Mounts"]} == {
        ("v-ws", "/workspace"),
        ("v-home", "/home/agent"),
    }
    assert spec["Placement"]["Constraints"] == ["node.id==node1"]
    assert spec["RestartPolicy"]["Condition"] == "none"
    assert [n["Target"] for n in spec["Networks"]] == [swarm_jobs.ISOLATED]
    (network,) = swarm._api.network_made
    assert network["internal"] is True and swarm_jobs.LABEL_JOB not in network["labels"]
    assert swarm.removed == ["svc1"]
    # a second job reuses the network; one with network gets the one asked for
    swarm = Swarm([_task("complete", 0)])
    swarm._api.nets = [swarm_jobs.ISOLATED]
    assert _run(swarm, network="dockyard-net") == (0, "line one\nline two\n")
    assert [n["Target"] for n in swarm._api.created[0]["template"]["Networks"]] == ["dockyard-net"]
    assert swarm._api.network_made == []


def test_a_job_that_cannot_start_or_end_is_removed_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(swarm_jobs, "POLL_S", 0.001)
    swarm = Swarm([_task("rejected", None, "no such image")])
    with pytest.raises(BackendError, match="did not run on its node: no such image"):
        _run(swarm)
    assert swarm.removed == ["svc1"]
    swarm = Swarm([_task("running", None)])
    with pytest.raises(BackendError, match=r"did not finish within 0\.05s"):
        _run(swarm, timeout=0.05)
    assert swarm.removed == ["svc1"]


def test_mounts_of_reads_a_service_spec() -> None:
    spec = {
        "TaskTemplate": {
            "ContainerSpec": {
                "Dir": "/w",
                "Mounts": [
                    {"Type": "volume", "Source": "a", "Target": "/w"},
                    {"Type": "bind", "Source": "/etc", "Target": "/x"},
                    {"Source": "", "Target": "/y"},
                ],
            }
        }
    }
    assert swarm_jobs.mounts_of(spec) == ("/w", {"a": "/w"})
    assert swarm_jobs.mounts_of({}) == (None, {})
