"""Warm pools: claim a ready workspace, never twice, refill, replace stale members."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.docker.conftest import ServerHandle
from tests.docker.templates import add_scripted_variant, cleanup_templates
from tests.polling import HTTP_TIMEOUT


def members(server: ServerHandle) -> list[dict[str, Any]]:
    return list(json.loads(server.cli("pool", "list", "-o", "json").stdout))


def wait_pool_ready(server: ServerHandle, size: int, version: str | None = None) -> list[Any]:
    deadline = time.monotonic() + 120
    ready: list[Any] = []
    while time.monotonic() < deadline:
        ready = [
            m
            for m in members(server)
            if m["status"] == "active"
            and m["state"] == "idle"
            and (version is None or m["template_version"] == version)
        ]
        if len(ready) >= size:
            return ready
        time.sleep(0.3)
    raise AssertionError(f"pool never had {size} ready members: {members(server)}")


def test_warm_pool_claims_refills_and_replaces(server: ServerHandle) -> None:
    name = add_scripted_variant(
        server, "warm", claim_setup="echo 'claimed by {{ task.name }}' > /workspace/claimed.txt\n"
    )
    folder = server.home / "test-templates" / name
    (folder / "presets").mkdir(exist_ok=True)
    (folder / "presets" / "pooled.yaml").write_text(
        "default: true\nprebuilds: 2\nparameters:\n  work_seconds: 1\n"
    )
    try:
        ready = wait_pool_ready(server, 2)
        warm_ids = {m["id"] for m in ready}

        # Two creates at once get two different warm workspaces.
        results: list[dict[str, Any]] = []
        started = time.monotonic()

        def create(prompt: str) -> None:
            reply = httpx.post(
                f"{server.url}/api/v2/tasks",
                headers=server.headers,
                json={"template": name, "prompt": prompt, "name": prompt},
                timeout=60,
            )
            reply.raise_for_status()
            results.append(reply.json())

        threads = [threading.Thread(target=create, args=(p,)) for p in ("job-one", "job-two")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        assert {r["id"] for r in results} == warm_ids  # both claimed, neither twice
        assert all(r["status"] == "active" for r in results)
        me = httpx.get(
            f"{server.url}/api/v2/me", headers=server.headers, timeout=HTTP_TIMEOUT
        ).json()["user"]
        assert {r["owner"] for r in results} == {me}  # a claim makes the creator the owner
        assert took < 10, f"claiming took {took:.1f}s"
        for r in results:
            server.wait_output(r["id"], f"Done: {r['name']}")
            code, out = server.exec(r["id"], "cat", "/workspace/claimed.txt")
            assert code == 0 and out == f"claimed by {r['name']}\n"
            out_lines = server.output(r["id"])
            assert out_lines.count(f"Working on: {r['name']}") == 1
        listed = {t["id"] for t in json.loads(server.cli("task", "list", "-o", "json").stdout)}
        assert warm_ids <= listed  # they are ordinary tasks now

        # The pool refills with new members.
        refilled = wait_pool_ready(server, 2)
        assert not ({m["id"] for m in refilled} & warm_ids)

        # A new template version replaces the members built from the old one.
        old_version = refilled[0]["template_version"]
        manifest = folder / "template.yaml"
        manifest.write_text(manifest.read_text().replace("Offline", "Offline (v2)"))
        fresh = wait_pool_ready(server, 2, version=None)
        deadline = time.monotonic() + 120
        while any(m["template_version"] == old_version for m in members(server)):
            assert time.monotonic() < deadline, members(server)
            time.sleep(0.3)
        fresh = wait_pool_ready(server, 2)
        assert all(m["template_version"] != old_version for m in fresh)
        for r in results:
            server.cli("task", "delete", "-y", r["id"])
    finally:
        cleanup_templates(server)
        for m in members(server):
            server.cli("task", "delete", "-y", m["id"], check=False)
