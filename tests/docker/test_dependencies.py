"""Dependencies on a real daemon: a dependent task starts only once its dependency is
completed (`dockyard task complete`), with no capacity limit to hold it back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle
from tests.serving import serve


@pytest.fixture
def unlimited(
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ServerHandle]:
    """A server of its own with DOCKYARD_MAX_WORKSPACES unset: nothing but dependencies
    can make a task wait."""
    monkeypatch.delenv("DOCKYARD_MAX_WORKSPACES", raising=False)
    home = tmp_path_factory.mktemp("dockyard-deps")
    engine = build_engine(home)
    assert engine.max_workspaces is None
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


def test_a_dependent_starts_only_after_its_dependency_completes(unlimited: ServerHandle) -> None:
    server = unlimited
    base = ("task", "create", "-t", "scripted", "-q")
    build = server.cli(*base, "--name", "build", "build it").stdout.strip()
    made = server.cli(
        "task", "create", "-t", "scripted", "--name", "test", "--depends-on", "build", "test it"
    )
    assert "It is waiting for dependencies: build (" in made.stdout
    server.wait_idle(build)
    waiting = server.wait_for(
        "test",
        lambda s: s["message"] == "waiting for dependencies: build (active)",
        what="the dependent naming its running dependency",
    )
    assert waiting["status"] == "pending" and waiting["blocked"] is True
    assert server.containers(waiting["id"]) == []  # nothing was made for it
    queue = server.cli("task", "list", "--queue").stdout
    assert "waiting for dependencies: build (active)" in queue

    done = server.cli("task", "complete", "build", "--outcome", "SUCCESS", "--output", "built")
    assert "completed" in done.stdout
    started = server.wait_idle("test")
    assert started["blocked"] is False
    assert server.output("test").count("Done: test it") == 1
    assert not server.container(build).attrs["State"]["Running"]  # the finished one stopped
    events = json.loads(server.cli("task", "events", "test", "-o", "json").stdout)
    moves = [(e["kind"], e["from_value"], e["to_value"]) for e in events]
    assert ("dependency", "waiting", "ready") in moves
    assert moves.index(("dependency", "waiting", "ready")) < moves.index(
        ("status", "pending", "initializing")
    )
