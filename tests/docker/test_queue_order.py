"""The queue on a real daemon, end to end through the CLI: with DOCKYARD_MAX_WORKSPACES=1,
tasks of priorities 10, 90 and 50 run in the order 90, 50, 10; an interrupt pauses an idle
task of lower priority and starts at once; a target routes a task without a template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle
from tests.docker.test_capacity import RunningSampler
from tests.serving import serve


@pytest.fixture
def one_at_a_time(
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ServerHandle]:
    """A server of its own allowed one workspace (DOCKYARD_MAX_WORKSPACES=1), with a target."""
    home = tmp_path_factory.mktemp("dockyard-queue")
    (home / "config.yaml").write_text(
        "targets:\n  builder: {template: scripted, codebases: [api-server]}\n"
    )
    monkeypatch.setenv("DOCKYARD_MAX_WORKSPACES", "1")
    engine = build_engine(home)
    assert engine.max_workspaces == 1
    engine.tick_s = 0.3
    instance = engine.backend.instance  # type: ignore[attr-defined]
    with serve(engine, home) as url:
        handle = ServerHandle(url, home, engine, instance, docker_client)
        try:
            yield handle
        finally:
            for task in json.loads(handle.cli("task", "list", "-o", "json").stdout):
                handle.cli("task", "delete", "-y", task["id"], check=False)
            handle.remove_everything()
    engine.store.close()


def create(server: ServerHandle, prompt: str, *extra: str) -> str:
    return server.cli(
        "task", "create", "-q", "--param", "work_seconds=0.2", *extra, prompt
    ).stdout.strip()


def queue(server: ServerHandle) -> list[dict[str, Any]]:
    return list(json.loads(server.cli("task", "list", "--queue", "-o", "json").stdout))


def test_priority_order_and_an_interrupt_preempting_an_idle_task(
    one_at_a_time: ServerHandle,
) -> None:
    server = one_at_a_time
    with RunningSampler(server) as sampler:
        # routed by codebase: the target's template, no --template given
        blocker = create(server, "blocker", "--codebase", "api-server")
        assert server.status(blocker)["target"] == "builder"
        server.wait_idle(blocker)
        low = create(server, "low", "-t", "scripted", "--priority", "10")
        high = create(server, "high", "-t", "scripted", "--priority", "90")
        mid = create(server, "mid", "-t", "scripted", "--priority", "50")
        assert [e["id"] for e in queue(server)] == [high, mid, low]
        assert [e["position"] for e in queue(server)] == [1, 2, 3]

        server.cli("task", "delete", "-y", blocker)
        for running, later in ((high, [mid, low]), (mid, [low])):
            server.wait_idle(running)
            assert all(server.status(t)["status"] == "pending" for t in later)
            server.cli("task", "pause", running)
        server.wait_idle(low)

        # low (priority 10) is idle in the only slot: an interrupt pauses it and starts
        urgent = create(server, "urgent", "-t", "scripted", "--action", "interrupt")
        server.wait_idle(urgent)
        paused = server.wait_for(low, lambda s: s["status"] == "paused", what="low paused")
        assert paused["message"].startswith("preempted by interrupt task")
        events = json.loads(server.cli("task", "events", low, "-o", "json").stdout)
        assert any(e["kind"] == "preempt" and e["actor"] == "engine" for e in events)
        events = json.loads(server.cli("task", "events", urgent, "-o", "json").stdout)
        (preempt,) = [e for e in events if e["kind"] == "preempt"]
        assert preempt["to_value"] == low
        # the ones paused by hand stay paused: nothing preempted them
        assert {server.status(t)["status"] for t in (high, mid)} == {"paused"}
    assert sampler.most <= 1, f"{sampler.most} workspaces ran at once with a limit of 1"
