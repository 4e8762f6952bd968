"""A lead agent fans work out from inside its workspace: the scripted agent creates two
child tasks through the in-workspace MCP relay (dockyard-mcp), they run in workspaces of
their own and complete, and the parent completes once both have."""

from __future__ import annotations

import httpx

from tests.docker.conftest import ServerHandle
from tests.polling import HTTP_TIMEOUT


def test_a_parent_creates_two_children_and_completes_after_them(server: ServerHandle) -> None:
    created = server.cli(
        "task", "create", "--template", "scripted", "--preset", "default", "-q",
        "/fanout 2 /complete SUCCESS child done",
    )  # fmt: skip
    parent = created.stdout.strip()
    children: list[dict[str, object]] = []
    try:
        done = server.wait_for(
            parent, lambda s: s["status"] in ("completed", "failed"), 180, "the parent's end"
        )
        listed = httpx.get(
            f"{server.url}/api/dockyard/v1/tasks", headers=server.headers, timeout=HTTP_TIMEOUT
        ).json()["tasks"]
        children = [t for t in listed if t.get("created_by") == f"task:{done['id']}"]
        assert len(children) == 2, listed
        assert all(c["status"] == "completed" and c["outcome"] == "SUCCESS" for c in children)
        assert done["status"] == "completed" and done["outcome"] == "SUCCESS", done
        assert all(f"{c['name']} completed" in done["output"] for c in children)
        assert all(str(c["finished_at"]) <= str(done["finished_at"]) for c in children)
        # the children's histories say which task created them, through its own token
        for child in children:
            path = f"{server.url}/api/dockyard/v1/tasks/{child['id']}/events"
            events = httpx.get(path, headers=server.headers, timeout=HTTP_TIMEOUT).json()["events"]
            assert events[0]["actor"] == f"task:{done['id']}", events[0]
    finally:
        for child in children:
            server.cli("task", "delete", "-y", str(child["id"]), check=False)
        server.cli("task", "delete", "-y", parent, check=False)
