"""A throwaway PostgreSQL 15 cluster for the store's tests, and a fresh store per test on
each backend (SQLite and PostgreSQL).

The cluster lives in a temp dir, listens only on a unix socket there, runs with fsync off,
and is stopped and deleted when the session ends. initdb refuses to run as root, so as
root the server runs as the `postgres` user. Without the binaries the PostgreSQL cases
skip, saying so; `scripts/setup.sh` installs them on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.store.store import Store, sqlite_url

PG_BIN = Path(os.environ.get("DOCKYARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
BACKENDS = ["sqlite", "postgresql"]


OWNER_FILE = "owner.pid"  # the test process a cluster belongs to


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_abandoned(bin_dir: Path, keep: Path) -> list[Path]:
    """Stop and delete the clusters of test processes that died without cleaning up (a
    killed run, a timeout): each cluster records its owner's pid, and one whose owner is
    gone is stopped and removed, so crashed runs do not pile up servers on a machine. A
    cluster without an owner file is younger than its first lines of setup, or not ours:
    left alone."""
    removed = []
    for base in Path(tempfile.gettempdir()).glob("dockyard-pg-*"):
        owner = base / OWNER_FILE
        if base == keep or not owner.is_file():
            continue
        try:
            pid = int(owner.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        if pid > 0 and _alive(pid):
            continue
        data = base / "data"
        if (data / "postmaster.pid").exists():
            cmd = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "postgres", "--", *cmd]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(cmd, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


class PostgresCluster:
    """One initdb'd cluster; `database()` hands out a new empty database's URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.user: str | None = None
        self.running = False
        self._databases: list[str] = []
        self._admin: Any = None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                f"(log: {self.base / 'server.log'})"
            )

    def start(self) -> None:
        sweep_abandoned(self.bin, keep=self.base)
        (self.base / OWNER_FILE).write_text(str(os.getpid()))
        self.sockets.mkdir()
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.base, 0o755)  # mkdtemp's 0700 would keep the server out
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-k {self.sockets} -c listen_addresses='' -F "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip
        self.running = True
        import sqlalchemy

        self._admin = sqlalchemy.create_engine(
            self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.NullPool
        )

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database in this cluster (over the unix socket)."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.sockets}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        from sqlalchemy import text

        name = f"t_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        self._databases.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database handed out by `database()`, even with sessions still open."""
        from sqlalchemy import make_url, text

        name = make_url(url).database
        with self._admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def stop(self) -> None:
        """Stop the server and delete everything it had."""
        if self._admin is not None:
            self._admin.dispose()
        if self.running:
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)


def _binaries_missing() -> str | None:
    for name in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / name).exists():
            return (
                f"PostgreSQL 15 is not installed ({PG_BIN / name} is missing; "
                "scripts/setup.sh installs postgresql-15)"
            )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed: pip install -e '.[dev]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session (started on first use)."""
    reason = _binaries_missing()
    if reason:
        pytest.skip(reason)
    cluster = PostgresCluster(PG_BIN)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "db.sqlite")
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.database()
    try:
        yield url
    finally:
        cluster.drop(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store on a fresh database, for each backend."""
    opened = Store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def pg_store(postgres_cluster: PostgresCluster) -> Iterator[Store]:
    """A store on a fresh PostgreSQL database (for what only PostgreSQL can show)."""
    url = postgres_cluster.database()
    opened = Store(url)
    try:
        yield opened
    finally:
        opened.close()
        postgres_cluster.drop(url)


def drop_columns(url: str, table: str, columns: list[str]) -> None:
    """Make a database look like an older Dockyard's: without the given columns."""
    from sqlalchemy import create_engine, text

    db = create_engine(url)
    try:
        with db.begin() as conn:
            for column in columns:
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    finally:
        db.dispose()


def column_names(url: str, table: str) -> set[str]:
    """The columns a table has in the database right now."""
    from sqlalchemy import create_engine, inspect

    db = create_engine(url)
    try:
        return {c["name"] for c in inspect(db).get_columns(table)}
    finally:
        db.dispose()
