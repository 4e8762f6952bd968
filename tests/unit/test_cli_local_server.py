"""Finding and starting the local server: server.json, health, a real detached subprocess, lock."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner, Result
from fastapi import FastAPI

import cli.local_server as local_server
from cli.main import cli as dockyard

# A stand-in `python -m provisioner.server --home HOME`: serves health and an empty task list,
# and writes server.json once it listens, as the real server does.
STUB_SERVER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    import uvicorn
    from fastapi import FastAPI

    home = Path(sys.argv[sys.argv.index("--home") + 1])
    app = FastAPI()

    @app.get("/api/dockyard/v1/health")
    def health():
        return {"ok": True, "version": "stub", "docker": {"ok": True, "error": None},
                "home": str(home)}

    @app.get("/api/dockyard/v1/tasks")
    def tasks():
        return {"tasks": [{"id": "from-stub", "name": "stub"}]}

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            port = self.servers[0].sockets[0].getsockname()[1]
            info = {"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}
            (home / "server.json").write_text(json.dumps(info))

    print("stub server starting", flush=True)
    Server(uvicorn.Config(app, port=0, log_level="warning", ws="none", http="h11",
                          lifespan="off")).run()
    """
)
DIES = "import sys; print('boom: the store is locked', file=sys.stderr); sys.exit(3)"
HANGS = "import os, sys, time; print(os.getpid(), flush=True); time.sleep(60)"


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def write_server_json(home: Path, url: str, pid: int = 1) -> None:
    """What a server writes once it listens."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "server.json").write_text(json.dumps({"url": url, "pid": pid}))


def invoke(home: Path, *args: str) -> Result:
    """`dockyard ARGS` with no DOCKYARD_URL and DOCKYARD_HOME=home."""
    env = {"DOCKYARD_URL": None, "DOCKYARD_HOME": str(home)}
    return CliRunner().invoke(dockyard, list(args), env=env)


@pytest.fixture
def running_url() -> Iterator[str]:
    """A healthy server in a thread."""
    app = FastAPI()

    @app.get("/api/dockyard/v1/health")
    def health() -> dict[str, object]:
        return {"ok": True, "version": "t", "docker": {"ok": False, "error": "x"}, "home": "/"}

    @app.get("/api/dockyard/v1/tasks")
    def tasks() -> dict[str, object]:
        return {"tasks": [{"id": "from-thread", "name": "t"}]}

    config = uvicorn.Config(app, port=0, log_level="warning", ws="none", http="h11", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process this test started, with its session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


class StubSpawner:
    """Makes the CLI spawn a given script instead of provisioner.server; records what it started."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self._monkeypatch = monkeypatch
        self._script = tmp_path / "server_stub.py"
        original = local_server.spawn_server

        def spawn(home: Path) -> subprocess.Popen[bytes]:
            proc = original(home)
            self.started.append(proc)
            return proc

        monkeypatch.setattr(local_server, "spawn_server", spawn)

    def use(self, source: str) -> None:
        """Spawn `source` (run as `python SCRIPT --home HOME`) as the server."""
        self._script.write_text(source)
        command = [sys.executable, str(self._script), "--home"]
        self._monkeypatch.setattr(
            local_server, "server_command", lambda home: [*command, str(home)]
        )


@pytest.fixture
def spawner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StubSpawner]:
    """A StubSpawner; stops every process it started."""
    spawner = StubSpawner(monkeypatch, tmp_path)
    yield spawner
    for proc in spawner.started:
        stop(proc)


def test_server_command_runs_the_provisioner_server_module(tmp_path: Path) -> None:
    command = local_server.server_command(tmp_path)
    assert command == [sys.executable, "-m", "provisioner.server", "--home", str(tmp_path)]


def test_read_server_info_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    assert local_server.read_server_info(tmp_path) is None
    (tmp_path / "server.json").write_text("{half")
    assert local_server.read_server_info(tmp_path) is None
    write_server_json(tmp_path, "http://127.0.0.1:9", pid=42)
    assert local_server.read_server_info(tmp_path) == local_server.ServerInfo(
        "http://127.0.0.1:9", 42
    )


def test_uses_the_healthy_server_named_in_server_json(tmp_path: Path, running_url: str) -> None:
    write_server_json(tmp_path, running_url)
    result = invoke(tmp_path, "task", "list", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == "from-thread\n"
    assert result.stderr == ""


def test_starts_a_server_when_server_json_is_stale(tmp_path: Path, spawner: StubSpawner) -> None:
    spawner.use(STUB_SERVER)
    write_server_json(tmp_path, dead_url())
    result = invoke(tmp_path, "task", "list", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == "from-stub\n"
    info = local_server.read_server_info(tmp_path)
    assert info is not None
    assert info.pid == spawner.started[0].pid
    log = tmp_path / "server.log"
    assert result.stderr == f"dockyard: started a local server at {info.url} (log: {log})\n"
    assert "stub server starting" in log.read_text()
    # the next command finds it running and starts nothing
    again = invoke(tmp_path, "task", "list", "-q")
    assert (again.exit_code, again.stderr) == (0, "")
    assert len(spawner.started) == 1


def test_two_clients_at_once_start_one_server(tmp_path: Path, spawner: StubSpawner) -> None:
    spawner.use(STUB_SERVER)
    urls: list[str] = []

    def find() -> None:
        urls.append(local_server.ensure_local_server(tmp_path))

    threads = [threading.Thread(target=find) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(urls) == 3
    assert len(set(urls)) == 1
    assert len(spawner.started) == 1


def test_server_that_dies_shows_its_log(tmp_path: Path, spawner: StubSpawner) -> None:
    spawner.use(DIES)
    result = invoke(tmp_path, "task", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: the local server exited with status 3 before it was ready; last lines of "
        f"{tmp_path / 'server.log'}:\nboom: the store is locked\n"
    )
    assert "hint: run the server in the foreground to see why: dockyard server" in result.stderr


def test_server_that_never_gets_ready_is_stopped(
    tmp_path: Path, spawner: StubSpawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawner.use(HANGS)
    monkeypatch.setattr(local_server, "START_TIMEOUT", 1.0)
    result = invoke(tmp_path, "task", "list")
    assert result.exit_code == 1
    match = re.search(r"the local server \(pid (\d+)\) was not ready after 1 s", result.stderr)
    assert match, result.stderr
    pid = int(match.group(1))
    assert f"{pid}\n" in result.stderr  # the log's last lines
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_running_server_is_used_without_a_health_check(tmp_path: Path) -> None:
    seen: list[str] = []
    app = FastAPI()

    @app.get("/api/dockyard/v1/health")
    def health() -> dict[str, object]:
        seen.append("health")
        return {"ok": True}

    @app.get("/api/dockyard/v1/tasks")
    def tasks() -> dict[str, object]:
        seen.append("tasks")
        return {"tasks": [{"id": "quick", "name": "t"}]}

    config = uvicorn.Config(app, port=0, log_level="warning", ws="none", http="h11", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        # this process runs, and started before it "wrote" server.json: trusted as is
        write_server_json(tmp_path, url, pid=os.getpid())
        assert local_server.running_server_url(tmp_path) == url
        result = invoke(tmp_path, "task", "list", "-q")
        assert result.exit_code == 0, result.output
        assert (result.stdout, seen) == ("quick\n", ["tasks"])
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_server_json_whose_process_is_gone_or_newer_gets_the_careful_look(
    tmp_path: Path,
) -> None:
    write_server_json(tmp_path, "http://127.0.0.1:9", pid=os.getpid())
    assert local_server.running_server_url(tmp_path) == "http://127.0.0.1:9"
    # a pid taken by a process that started after server.json was written: not the server
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_server_json(tmp_path, "http://127.0.0.1:9", pid=later.pid)
        old = time.time() - 30
        os.utime(tmp_path / "server.json", (old, old))
        assert local_server.running_server_url(tmp_path) is None
    finally:
        later.kill()
        later.wait()
    write_server_json(tmp_path, "http://127.0.0.1:9", pid=later.pid)  # gone now
    assert local_server.running_server_url(tmp_path) is None
    (tmp_path / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9"}))
    assert local_server.running_server_url(tmp_path) is None  # no pid: cannot tell


def test_nothing_listening_where_a_running_pid_says_starts_the_server(
    tmp_path: Path, spawner: StubSpawner
) -> None:
    # the pid runs (this process) but nothing listens at its URL: the first request is
    # refused, so the CLI looks properly, starts the server and sends the request there
    spawner.use(STUB_SERVER)
    write_server_json(tmp_path, dead_url(), pid=os.getpid())
    result = invoke(tmp_path, "task", "list", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == "from-stub\n"
    assert len(spawner.started) == 1
    assert "started a local server" in result.stderr


def test_only_a_plain_loopback_url_is_taken_without_a_health_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.credentials import connect_quickly

    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path))
    monkeypatch.delenv("DOCKYARD_TOKEN", raising=False)
    monkeypatch.delenv("CODER_SESSION_TOKEN", raising=False)
    write_server_json(tmp_path, "http://127.0.0.1:9", pid=os.getpid())
    found = connect_quickly(None)
    assert found is not None and found[0] == "http://127.0.0.1:9"
    assert connect_quickly("http://127.0.0.1:9") is None  # a URL given: used as given
    # TLS: server.json names the bind address, which the certificate does not name
    write_server_json(tmp_path, "https://0.0.0.0:8443", pid=os.getpid())
    assert connect_quickly(None) is None
