"""Find the Dockyard server to talk to, starting a local one in the background when needed."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click

from cli.client import Client, CliError, LocalServerError
from provisioner.paths import home_dir, read_admin_token

if TYPE_CHECKING:  # a command that finds its server running never needs these
    import subprocess

START_TIMEOUT = 20.0
# a second CLI may wait behind the first one's whole start-up before it gets the lock
LOCK_TIMEOUT = START_TIMEOUT + 10.0
HEALTH_TIMEOUT = 2.0
LOG_TAIL_LINES = 20


class ServerInfo(NamedTuple):
    """What a running local server writes to `server.json`."""

    url: str
    pid: int | None


def read_server_info(home: Path) -> ServerInfo | None:
    """The contents of `server.json`, or None when it is missing or unreadable."""
    try:
        data = json.loads((home / "server.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    pid = data.get("pid")
    return ServerInfo(url=data["url"], pid=pid if isinstance(pid, int) else None)


def _started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, to within a second), from
    /proc; None when it does not run or this system has no /proc to tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # the fields after the command name (in parentheses, which may hold anything)
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def running_server_url(home: Path) -> str | None:
    """The URL in `server.json` when the process it names still runs and started before
    the file was written (so its pid was not taken by another since): a command may use
    it without asking /health first. None: look for the server the careful way."""
    path = home / "server.json"
    info = read_server_info(home)
    if info is None or info.pid is None:
        return None
    started = _started_at(info.pid)
    try:
        written = path.stat().st_mtime
    except OSError:
        return None
    # /proc's boot time is whole seconds: a second of slack; a server takes longer than
    # that from its start to writing server.json, a pid reused later starts after it
    if started is None or started > written + 1.0:
        return None
    return info.url


def is_healthy(url: str, home: Path) -> bool:
    """True when the server at `url` answers the health check of `home`'s admin."""
    client = Client(url, token=read_admin_token(home), timeout=HEALTH_TIMEOUT)
    try:
        client.health()
    except CliError:
        return False
    finally:
        client.close()
    return True


def server_command(home: Path) -> list[str]:
    """The command line of a background server for `home`."""
    return [sys.executable, "-m", "provisioner.server", "--home", str(home)]


def spawn_server(home: Path) -> subprocess.Popen[bytes]:
    """Start a detached server process logging to `home/server.log`."""
    import subprocess

    with open(home / "server.log", "ab") as log:
        # its own session, so the server outlives this CLI and ignores its Ctrl-C
        return subprocess.Popen(
            server_command(home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it is empty."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server that never became ready, with anything it started."""
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_server(home: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait until `server.json` names a healthy URL; the URL."""
    log = home / "server.log"
    hint = "run the server in the foreground to see why: dockyard server"
    deadline = time.monotonic() + timeout
    while True:
        # a stale server.json from an earlier run fails the health check, so it is never taken
        info = read_server_info(home)
        if info is not None and is_healthy(info.url, home):
            return info.url
        if proc.poll() is not None:
            raise LocalServerError(
                f"the local server exited with status {proc.returncode} before it was ready; "
                f"last lines of {log}:\n{log_tail(log)}",
                hint,
            )
        if time.monotonic() >= deadline:
            _stop(proc)
            raise LocalServerError(
                f"the local server (pid {proc.pid}) was not ready after {timeout:g} s, so it "
                f"was stopped; last lines of {log}:\n{log_tail(log)}",
                hint,
            )
        time.sleep(0.1)


def ensure_local_server(home: Path) -> str:
    """The URL of the healthy local server of `home`, starting one if there is none."""
    info = read_server_info(home)
    if info is not None and is_healthy(info.url, home):
        return info.url
    home.mkdir(parents=True, exist_ok=True)
    import filelock  # only needed to start a server

    try:
        with filelock.FileLock(home / "server.lock", timeout=LOCK_TIMEOUT):
            # whoever held the lock before us may have started it already
            info = read_server_info(home)
            if info is not None and is_healthy(info.url, home):
                return info.url
            url = wait_for_server(home, spawn_server(home), START_TIMEOUT)
    except filelock.Timeout as exc:
        raise LocalServerError(
            f"timed out waiting for another dockyard to start the local server ({exc.lock_file})"
        ) from exc
    click.echo(f"dockyard: started a local server at {url} (log: {home / 'server.log'})", err=True)
    return url


def resolve_url(explicit: str | None) -> str:
    """The server URL: `--url`/DOCKYARD_URL if given, else the local server."""
    if explicit:
        return explicit.rstrip("/")
    return ensure_local_server(home_dir())
