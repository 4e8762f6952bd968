"""The throwaway PostgreSQL harness cleans up after runs that could not: a test process
killed mid-run leaves its cluster running, and the next cluster's start removes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.polling import wait_until
from tests.postgres import OWNER_FILE, PG_BIN, PostgresCluster, _binaries_missing

CHILD = """
import sys, time
from tests.postgres import PostgresCluster, PG_BIN
cluster = PostgresCluster(PG_BIN)
cluster.start()
print(cluster.base, flush=True)
time.sleep(600)
"""


def _postmaster(base: Path) -> int | None:
    pidfile = base / "data" / "postmaster.pid"
    try:
        return int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_a_killed_runs_cluster_is_stopped_and_removed_by_the_next_start() -> None:
    if _binaries_missing():
        pytest.skip(str(_binaries_missing()))
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    base = Path(child.stdout.readline().strip())
    server = _postmaster(base)
    assert (base / OWNER_FILE).read_text() == str(child.pid) and server
    child.send_signal(signal.SIGKILL)  # no teardown runs: its server stays up
    child.wait(timeout=30)
    os.kill(server, 0)  # still running, abandoned

    survivor = PostgresCluster(PG_BIN)
    try:
        survivor.start()  # sweeps what dead runs left
        assert not base.exists()
        wait_until(lambda: not _alive(server), timeout=30, what="the abandoned server to stop")
        assert (survivor.base / OWNER_FILE).read_text() == str(os.getpid())
    finally:
        survivor.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a stopped server may linger as a zombie of no one we can reap: check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
