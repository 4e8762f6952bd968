"""The CLI with no server configured starts a real local one, per DOCKYARD_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import docker

from tests.docker.conftest import remove_instance


def dockyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKYARD_URL"}
    env["DOCKYARD_HOME"] = str(home)
    return subprocess.run(["dockyard", *args], env=env, capture_output=True, text=True, timeout=300)


def test_cli_starts_a_local_server_and_runs_a_task(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    home = tmp_path / "home"
    first = dockyard(home, "task", "list")
    assert first.returncode == 0, first.stderr
    assert "dockyard: started a local server at http://127.0.0.1:" in first.stderr
    server = json.loads((home / "server.json").read_text())
    try:
        again = dockyard(home, "task", "list")
        assert again.returncode == 0 and "started" not in again.stderr  # reused, not restarted

        created = dockyard(
            home, "task", "create", "-t", "scripted", "--wait", "-q", "local server check"
        )
        assert created.returncode == 0, created.stderr
        task_id = created.stdout.strip()
        logs = dockyard(home, "task", "logs", task_id)
        assert "Done: local server check" in logs.stdout
        assert (home / "dockyard.db").exists()
        deleted = dockyard(home, "task", "delete", "-y", task_id)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        os.kill(server["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 15
        while (home / "server.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        instance = json.loads((home / "instance.json").read_text())["id"]
        leftovers = remove_instance(docker_client, instance)
        assert leftovers == []
