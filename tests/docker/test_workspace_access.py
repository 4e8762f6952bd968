"""A way into a real workspace container, and files out, end to end through the API (the
CLI as a separate process, a shell driven through a real pty): `task exec`, `task
shell` (resize, exit code), `task cp` both ways (a link out refused), `task download`,
and a tiny HTTP + WebSocket app in the workspace reached by a preview URL and by
`task port-forward`, with no host port published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest
from websockets.sync.client import connect

from tests.docker.conftest import ServerHandle
from tests.docker.test_vertical_slice import create
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_env

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "workspace_app.py"
PORT = 3000


@pytest.fixture
def task(server: ServerHandle) -> Iterator[str]:
    task_id = create(server, "hello")
    server.wait_idle(task_id)
    yield task_id
    server.cli("task", "delete", "-y", task_id, check=False)


def _env(server: ServerHandle) -> dict[str, str]:
    return {**os.environ, **admin_env(server.url, server.home), "PYTHONPATH": str(ROOT)}


def _cli(server: ServerHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=_env(server),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def test_exec_shell_and_files_in_a_real_workspace(
    server: ServerHandle, task: str, tmp_path: Path
) -> None:
    done = _cli(server, "task", "exec", task, "--", "sh", "-c", "id -u; pwd; exit 5")
    assert (done.returncode, done.stdout) == (5, "1000\n/workspace\n"), done.stderr

    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli.main", "task", "shell", task],
        env=_env(server),
        cwd=str(ROOT),
        dimensions=(24, 80),
        timeout=30,
    )
    try:
        child.sendline("echo MARK-$((6*7)) $(id -un)")
        child.expect("MARK-42")
        child.sendline("stty size")
        child.expect(r"24 80\s")
        child.setwinsize(50, 160)
        wait_until(
            lambda: (
                child.sendline("stty size"),
                child.expect([r"50 160\s", pexpect.TIMEOUT], timeout=1) == 0,
            )[1],
            20,
            "the container's terminal to take the new size",
        )
        child.sendline("exit 9")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 9

    # a client that goes away: its command is hung up on (Docker itself never ends it)
    left = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "task", "exec", task, "--", "sleep", "123"],
        env=_env(server),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    sleeping = "ps -eo args | grep -x 'sleep 123'"
    wait_until(lambda: server.exec(task, "sh", "-c", sleeping)[0] == 0, 30, "the command to run")
    left.kill()
    left.wait()
    wait_until(lambda: server.exec(task, "sh", "-c", sleeping)[0] == 1, 30, "the command to end")

    # files in, out, and a link the agent planted that points out of the workspace
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("from here")
    assert _cli(server, "task", "cp", str(tmp_path / "in"), f"{task}:").returncode == 0
    done = _cli(server, "task", "exec", task, "--", "sh", "-c", "cat in/a.txt; ln -s /etc escape")
    assert done.stdout == "from here"
    out = tmp_path / "out"
    out.mkdir()
    assert _cli(server, "task", "cp", f"{task}:in/a.txt", str(out / "b.txt")).returncode == 0
    assert (out / "b.txt").read_text() == "from here"
    refused = _cli(server, "task", "cp", f"{task}:escape/passwd", str(out))
    assert refused.returncode == 1 and "outside the workspace" in refused.stderr
    refused = _cli(server, "task", "cp", str(tmp_path / "in" / "a.txt"), f"{task}:escape/x")
    assert refused.returncode == 1 and "outside the workspace" in refused.stderr
    assert _cli(server, "task", "download", task, "-o", str(tmp_path / "w.tgz")).returncode == 0
    with tarfile.open(tmp_path / "w.tgz") as tar:
        assert "./in/a.txt" in tar.getnames()


def test_preview_urls_and_port_forward_reach_an_app_in_the_workspace(
    server: ServerHandle, task: str, tmp_path: Path
) -> None:
    assert _cli(server, "task", "cp", str(APP), f"{task}:app.py").returncode == 0
    start = f"nohup python3 app.py {PORT} >app.log 2>&1 &"
    assert _cli(server, "task", "exec", task, "--", "sh", "-c", start).returncode == 0
    base = f"{server.url}/api/dockyard/v1/tasks/{task}/apps/{PORT}"
    wait_until(
        lambda: (
            httpx.get(f"{base}/", headers=server.headers, timeout=HTTP_TIMEOUT).status_code == 200
        ),
        30,
        "the app to answer through the preview URL",
    )
    reply = httpx.get(f"{base}/page?q=1", headers=server.headers, timeout=HTTP_TIMEOUT)
    assert reply.text == "hello from the workspace: /page?q=1 auth=none"
    ws_url = (
        server.url.replace("http://", "ws://") + f"/api/dockyard/v1/tasks/{task}/apps/{PORT}/echo"
    )
    with connect(ws_url, additional_headers=server.headers, open_timeout=HTTP_TIMEOUT) as ws:
        ws.send("hi")
        assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: hi"
    assert not server.container(task).attrs["HostConfig"].get("PortBindings")  # none published
    # a browser's dashboard session: sent on to a grant, the answer sandboxed
    token = server.headers["Authorization"].split()[1]
    opened = httpx.get(
        f"{base}/page", headers={"cookie": f"dockyard_session={token}"}, timeout=HTTP_TIMEOUT
    )
    assert opened.status_code == 303, opened.text
    grant_url = server.url + opened.headers["location"]
    reply = httpx.get(
        grant_url, headers={"cookie": f"dockyard_session={token}"}, timeout=HTTP_TIMEOUT
    )
    assert reply.text == "hello from the workspace: /page auth=none"
    assert "allow-same-origin" not in reply.headers["content-security-policy"]
    assert reply.headers["content-security-policy"].startswith("sandbox allow-scripts")
    grant_ws = grant_url.replace("http://", "ws://").removesuffix("page") + "echo"
    with connect(grant_ws, origin="null", open_timeout=HTTP_TIMEOUT) as ws:  # type: ignore[arg-type]
        ws.send("sandboxed")
        assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: sandboxed"

    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli.main", "task", "port-forward", task, f"{PORT}:0"],
        env=_env(server),
        cwd=str(ROOT),
        timeout=30,
    )
    try:
        child.expect(r"Forwarding 127\.0\.0\.1:(\d+)")
        local = int(child.match.group(1))
        got = httpx.get(f"http://127.0.0.1:{local}/fwd", timeout=HTTP_TIMEOUT)
        assert got.text == "hello from the workspace: /fwd auth=none"
        with connect(f"ws://127.0.0.1:{local}/echo", open_timeout=HTTP_TIMEOUT) as ws:
            ws.send("tunnel")
            assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: tunnel"
    finally:
        child.terminate(force=True)
    events = json.loads(_cli(server, "task", "events", task, "-o", "json").stdout)
    kinds = {e["kind"] for e in events}
    assert {"exec", "cp", "port-forward"} <= kinds
