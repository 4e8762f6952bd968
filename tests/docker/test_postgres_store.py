"""A real server whose store is PostgreSQL (DOCKYARD_DATABASE_URL), a task's whole life."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sqlalchemy import create_engine, text

from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle, remove_instance
from tests.docker.templates import add_scripted_variant, cleanup_templates
from tests.postgres import PostgresCluster
from tests.serving import serve

TABLES = ("tasks", "events", "logs", "prompts")


@pytest.fixture
def pg_server(
    postgres_cluster: PostgresCluster,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ServerHandle, str]]:
    url = postgres_cluster.database()
    monkeypatch.setenv("DOCKYARD_DATABASE_URL", url)
    home = tmp_path / "home"
    home.mkdir()
    engine = build_engine(home)
    engine.tick_s = 0.5
    instance = engine.backend.instance  # type: ignore[attr-defined]
    try:
        with serve(engine, home) as base:
            handle = ServerHandle(base, home, engine, instance, docker_client)
            try:
                yield handle, url
            finally:
                cleanup_templates(handle)
    finally:
        remove_instance(docker_client, instance)
        engine.store.close()
        postgres_cluster.drop(url)


def rows(url: str, table: str) -> list[str]:
    """Every row of a table as PostgreSQL prints it."""
    db = create_engine(url)
    try:
        with db.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT t::text FROM {table} t"))]
    finally:
        db.dispose()


def test_a_task_lives_and_dies_in_postgresql(pg_server: tuple[ServerHandle, str]) -> None:
    server, url = pg_server
    name = add_scripted_variant(
        server,
        "pg-secretive",
        parameters=[
            {"name": "work_seconds", "type": "number", "default": 0},
            {"name": "memory", "type": "string", "default": "512m"},
            {"name": "api_key", "type": "string", "secret": True, "required": True},
        ],
        workspace={"env": {"API_KEY": "{{ api_key }}"}},
    )
    secret = "sk-pg-test-0123456789"
    created = server.cli(
        "task", "create", "-t", name, "-q", "--wait", "--param", f"api_key={secret}", "hello pg"
    )
    task = created.stdout.strip()
    server.wait_idle(task)
    assert "Done: hello pg" in server.output(task)
    assert not list(server.home.glob("dockyard.db*"))  # nothing went to SQLite
    assert any(task in row for row in rows(url, "tasks"))

    server.cli("task", "send", task, "/write kept.txt still here")
    server.wait_output(task, "Wrote kept.txt")
    server.wait_idle(task)

    server.cli("task", "pause", task)
    assert server.status(task)["status"] == "paused"
    assert server.container(task).status == "exited"
    assert "Wrote kept.txt" in server.output(task)  # logs stay readable while paused

    server.cli("task", "resume", task)
    server.wait_idle(task)
    assert server.exec(task, "cat", "/workspace/kept.txt") == (0, "still here\n")
    server.cli("task", "send", task, "after resume")
    server.wait_output(task, "Done: after resume")
    inputs = [e for e in server.logs(task) if e["type"] == "input"]
    assert [e["content"] for e in inputs] == [
        "hello pg",
        "/write kept.txt still here",
        "after resume",
    ]
    history = [(e["from_value"], e["to_value"]) for e in server.engine.store.events(task)]
    assert ("active", "paused") in history and ("paused", "initializing") in history

    stored = "\n".join(row for table in TABLES for row in rows(url, table))
    assert secret not in stored  # never stored in clear
    assert "after resume" in stored

    server.cli("task", "delete", "-y", task)
    assert server.containers(task) == [] and server.volumes(task) == []
    assert all(rows(url, table) == [] for table in TABLES)
