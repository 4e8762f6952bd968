"""Retention for real: a finished task's branch is kept from its stopped workspace (a
helper container beside its volumes) on retention's own thread, then the workspace is
removed; while that keep is held, the server's reconcile pass starts another task.
The keep is held with a gate around the engine's keep call (then the real keep runs)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from provisioner.engine.kept import KeptBundles
from provisioner.model import Task
from tests.docker.conftest import ServerHandle
from tests.docker.templates import add_scripted_variant, cleanup_templates
from tests.fake_model_server import docker_bridge_gateway
from tests.git_server import serve_repository
from tests.polling import wait_until


def test_retention_keeps_the_branch_off_the_pass_then_removes(
    server: ServerHandle, tmp_path: Path
) -> None:
    brief = add_scripted_variant(server, "brief-keep", lifecycle={"retention": "1s"})
    gitwork = server.engine.gitwork
    real_keep = gitwork.keep_before_removal
    opened, entered = threading.Event(), threading.Event()
    seen: list[tuple[str, bool]] = []

    def held(task: Task, kept: KeptBundles, *, actor: str) -> bool:
        entered.set()
        assert opened.wait(120), "the test never opened the gate"
        seen.append((threading.current_thread().name, bool(server.containers(task.id))))
        return real_keep(task, kept, actor=actor)

    gitwork.keep_before_removal = held  # type: ignore[method-assign]
    task = other = ""
    try:
        served = serve_repository(
            tmp_path / "git", {"README.md": "# demo\n"}, host=docker_bridge_gateway()
        )
        with served as (repo, _):
            params = [f"--param=repo={repo.url}", f"--param=repo_credential={repo.token}"]
            task = _created(server, "-t", brief, *params, "/write kept.txt outlived")
            server.wait_output(task, "Wrote kept.txt", timeout=180)
            task_id = server.wait_idle(task)["id"]
            server.cli("task", "complete", task, "--outcome", "SUCCESS")
            wait_until(entered.is_set, 60, "retention's keep to start")
            # held: the pass goes on, and a new task starts and reaches active/idle
            other = _created(server, "-t", "scripted", "/write x.txt y")
            server.wait_idle(other)
            assert server.containers(task_id), "removed before its keep ended"
            opened.set()
            gone = server.wait_for(
                task, lambda s: (s.get("workspace") or {}).get("removed_at"), 60, "removed"
            )
        assert seen == [("retention", True)]
        assert not server.containers(task_id) and not server.volumes(task_id)
        assert "retention" in gone["workspace"]["reason"]
        assert (server.home / "kept" / f"{task_id}.bundle").is_file()
        assert "+outlived" in server.cli("task", "diff", task).stdout
    finally:
        opened.set()
        del gitwork.keep_before_removal  # the real method again
        for name in (task, other):
            if name:
                server.cli("task", "delete", "-y", name, check=False)
        cleanup_templates(server)


def _created(server: ServerHandle, *args: Any) -> str:
    out = server.cli("task", "create", "-q", "--param=work_seconds=0.05", *args).stdout
    return str(out.strip().splitlines()[-1])
