"""Coder's Tasks API against a real Docker workspace: a task created the way Coder's
clients create one (template version + preset ids), followed to idle, steered with a
follow-up, its logs read and deleted, with the container and volumes gone after."""

from __future__ import annotations

from typing import Any

import httpx

from tests.docker.conftest import ServerHandle
from tests.polling import wait_until


def test_a_coder_client_runs_a_task_in_docker(server: ServerHandle) -> None:
    token = server.headers["Authorization"].split(" ", 1)[1]
    http = httpx.Client(base_url=server.url, headers={"Coder-Session-Token": token}, timeout=60)

    def ok(method: str, path: str, code: int = 200, **kw: Any) -> Any:
        reply = http.request(method, path, **kw)
        assert reply.status_code == code, (method, path, reply.text)
        return reply.json() if reply.content else None

    (tpl,) = ok("GET", "/api/v2/templates", params={"q": "exact_name:scripted"})
    presets = ok("GET", f"/api/v2/templateversions/{tpl['active_version_id']}/presets")
    preset = next(p for p in presets if p["Default"])
    body = {
        "template_version_id": tpl["active_version_id"],
        "template_version_preset_id": preset["ID"],
        "input": "write hello.txt",
        "name": "coder-in-docker",
    }
    task = ok("POST", "/api/v2/tasks/me", 201, json=body)
    path = f"/api/v2/tasks/me/{task['id']}"
    try:

        def idle() -> Any:
            seen = ok("GET", path)
            state = seen["current_state"]
            return seen if seen["status"] == "active" and state["state"] == "idle" else None

        assert wait_until(idle, 120, "active and idle")["workspace_status"] == "running"
        assert server.containers(task["id"])  # a real container runs it
        ok("POST", path + "/send", 204, json={"input": "and a follow-up"})

        def answered() -> Any:
            logs = ok("GET", path + "/logs")["logs"]
            inputs = [e["content"] for e in logs if e["type"] == "input"]
            return logs if "and a follow-up" in "".join(inputs) and idle() else None

        logs = wait_until(answered, 60, "the follow-up answered")
        assert any(e["type"] == "output" for e in logs)
    finally:
        ok("DELETE", path, 202)
    assert http.get(path).status_code == 404
    wait_until(lambda: not server.containers(task["id"]), 60, "the container removed")
    assert not server.volumes(task["id"])
