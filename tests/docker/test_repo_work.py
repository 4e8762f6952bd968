"""A task's repository for real: the scripted agent's workspace clones a git repository
served from this host over HTTP with a token; its work is checkpointed at pause, shown by
`task diff` from the stopped workspace (a helper beside its volumes), pulled into a fresh
local clone, applied, and pushed to the served repository; after `task delete` the kept
branch is still pulled. The token appears nowhere."""

from __future__ import annotations

import json
from pathlib import Path

from tests.docker.conftest import ServerHandle
from tests.fake_model_server import docker_bridge_gateway
from tests.git_server import git, serve_repository

FILES = {"README.md": "# demo\n", "src/app.py": "print('app')\n", ".gitignore": "*.log\n"}


def test_repository_in_and_the_work_out(server: ServerHandle, tmp_path: Path) -> None:
    gateway = docker_bridge_gateway()
    with serve_repository(tmp_path / "git", FILES, host=gateway) as (repo, base):
        created = server.cli(
            "task",
            "create",
            "-q",
            "-t",
            "scripted",
            "--param=work_seconds=0.05",
            f"--param=repo={repo.url}",
            f"--param=repo_credential={repo.token}",
            "/write notes/todo.txt first thing",
        )
        task = created.stdout.strip().splitlines()[-1]
        server.wait_output(task, "Wrote notes/todo.txt", timeout=180)
        status = server.wait_idle(task)
        assert status["base_commit"] == base
        task_id = status["id"]
        name = status["name"]
        code, _ = server.exec(task_id, "sh", "-c", "echo noise > /workspace/debug.log")
        assert code == 0
        server.cli("task", "pause", task)
        paused = server.wait_for(task, lambda s: s["status"] == "paused", what="paused")
        assert paused["checkpoint_commit"]

        # from the stopped workspace: a helper beside its volumes, the agent not started
        shown = json.loads(server.cli("task", "diff", task, "-o", "json").stdout)
        assert shown["base_commit"] == base
        assert [f["path"] for f in shown["files"]] == ["notes/todo.txt"]  # debug.log ignored
        assert "+first thing" in shown["diff"]
        assert shown["commits"][0]["author"] == "Dockyard"
        assert server.status(task)["status"] == "paused"

        local = tmp_path / "local"
        git(
            tmp_path, "clone", "-q", repo.url.replace("http://", f"http://u:{repo.token}@"), "local"
        )
        server.cli("task", "pull", task, "--into", str(local))
        assert git(local, "show", f"dockyard/{name}:notes/todo.txt") == "first thing\n"
        (local / "README.md").write_text("local edit\n")
        refused = server.cli("task", "apply", task, "--into", str(local), check=False)
        assert refused.exit_code == 1 and "uncommitted changes" in refused.output
        git(local, "checkout", "-q", "--", "README.md")
        server.cli("task", "apply", task, "--into", str(local))
        assert (local / "notes" / "todo.txt").read_text() == "first thing\n"

        server.cli("task", "push", task, "--branch", "dockyard-result")
        assert repo.branches()["dockyard-result"] == paused["checkpoint_commit"]

        # the token: nowhere in the API, logs, events, container or database
        container = server.container(task_id)
        seen = [
            json.dumps(server.status(task)),
            json.dumps(server.logs(task)),
            server.cli("task", "events", task, "-o", "json").stdout,
            json.dumps(container.attrs),
            container.logs().decode(errors="replace"),
            (server.home / "dockyard.db").read_bytes().decode(errors="replace"),
        ]
        assert not [text for text in seen if repo.token in text]
        server.cli("task", "delete", "-y", task)
        assert not server.containers(task_id)

        # nothing is lost at delete: the server kept the branch, and pull still gets it
        assert (server.home / "kept" / f"{task_id}.bundle").is_file()
        git(
            tmp_path, "clone", "-q", repo.url.replace("http://", f"http://u:{repo.token}@"), "after"
        )
        server.cli("task", "pull", task, "--into", str(tmp_path / "after"))
        assert git(tmp_path / "after", "show", f"dockyard/{name}:notes/todo.txt") == "first thing\n"
        # and its diff, from the copy kept beside the bundle
        assert "+first thing" in server.cli("task", "diff", task).stdout
