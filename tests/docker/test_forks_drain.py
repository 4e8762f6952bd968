"""Forks, drain and a server's SIGTERM on a real daemon, with the scripted agent."""

from __future__ import annotations

import json
import secrets
from typing import Any

import docker
import httpx

from provisioner.backends.docker import LABEL_FORK, LABEL_INSTANCE
from tests.docker.conftest import ServerHandle
from tests.docker.test_recovery import ServerProcess, containers_of, proc_server
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers

__all__ = ["proc_server"]

FAST = ("--param", "work_seconds=0.1")


def inputs(logs: list[dict[str, Any]]) -> list[str]:
    return [e["content"] for e in logs if e["type"] == "input"]


def test_a_fork_continues_the_parents_files_and_session(server: ServerHandle) -> None:
    parent = f"fork-parent-{secrets.token_hex(2)}"
    child = f"fork-child-{secrets.token_hex(2)}"
    server.cli(
        "task", "create", "-t", "scripted", *FAST, "--name", parent, "--wait",
        "/write notes.txt written by the parent",
    )  # fmt: skip
    parent_id = server.status(parent)["id"]
    # no --template: a fork runs its parent's; the parent keeps running meanwhile
    server.cli("task", "create", "--parent", parent, "--name", child, "--wait", "/write kid.txt x")
    kid = server.status(child)
    assert kid["parent_id"] == parent_id and kid["template"] == "scripted"
    code, text = server.exec(kid["id"], "cat", "/workspace/notes.txt")
    assert (code, text) == (0, "written by the parent\n")
    # the agent resumed the parent's session (one input handled), then took its own once
    out = server.wait_output(child, "Wrote kid.txt")
    assert "Resumed (previous context: 1 inputs)" in out
    assert "Wrote notes.txt" not in out
    assert inputs(server.logs(child)) == ["/write kid.txt x"]
    # two disks from now on; the copying helper is gone
    assert server.exec(parent_id, "test", "-e", "/workspace/kid.txt")[0] != 0
    assert server.status(parent)["status"] == "active"
    helpers = server.docker.containers.list(
        all=True, filters={"label": [f"{LABEL_INSTANCE}={server.instance}", LABEL_FORK]}
    )
    assert helpers == []
    events = json.loads(server.cli("task", "events", parent, "-o", "json").stdout)
    assert any(e["kind"] == "fork" and e["to_value"] == child for e in events)
    for name in (child, parent):
        server.cli("task", "delete", "-y", name)
    assert server.volumes(kid["id"]) == []


def test_sigterm_leaves_workspaces_running_and_drain_outlives_a_restart(
    proc_server: ServerProcess, docker_client: docker.DockerClient
) -> None:
    task_id = proc_server.cli("task", "create", "-t", "scripted", *FAST, "-q", "--wait", "hi")
    task_id = task_id.strip()
    (container,) = containers_of(docker_client, task_id)
    proc_server.stop()  # SIGTERM
    # it shut down by itself (uvicorn raises the SIGTERM again once shut down), not killed
    assert proc_server.proc is not None and proc_server.proc.returncode in (0, -15)
    container.reload()
    assert container.status == "running", "a server's SIGTERM must never stop a workspace"
    proc_server.start()  # a new server adopts it: no restart, the same agent
    proc_server.cli("task", "send", task_id, "again")
    proc_server.wait(task_id, lambda t: t["state"] == "idle" and "again" in t["message"])
    container.reload()
    assert container.attrs["RestartCount"] == 0 and container.status == "running"

    proc_server.cli("drain", "--grace", "0s")
    assert proc_server.task(task_id)["status"] == "paused"
    container.reload()
    assert container.status == "exited"
    proc_server.stop()
    proc_server.start()
    health = httpx.get(
        f"{proc_server.url}/api/v2/health",
        headers=admin_headers(proc_server.home),
        timeout=HTTP_TIMEOUT,
    ).json()
    assert health["drain"]["draining"] and health["drain"]["paused_by_drain"] == 1
    assert "t" in proc_server.cli("undrain")
    task = proc_server.wait(task_id, lambda t: t["status"] == "active" and t["state"] == "idle")
    assert task["status"] == "active"
    logs = proc_server.logs(task_id)
    out = [e["content"] for e in logs if e["type"] == "output"]
    assert "Resumed (previous context: 2 inputs)" in out
    assert inputs(logs) == ["hi", "again"], "nothing was typed again"
