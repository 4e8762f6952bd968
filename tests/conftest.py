"""Shared fixtures: a real Dockyard server in process, and cleanup of what tests create."""

from __future__ import annotations

import os

import pytest

# a throwaway PostgreSQL cluster, and a fresh store per test on SQLite and PostgreSQL
from tests.postgres import pg_store, postgres_cluster, store, store_url

__all__ = ["pg_store", "postgres_cluster", "store", "store_url"]

# pytest-xdist's workers export LINES=24 and COLUMNS=80, and shutil.get_terminal_size()
# prefers them to the real terminal's size: `task shell` under a pty would never see a
# resize. Tests run as they do in one process, where neither is set.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("LINES", "COLUMNS"):
        os.environ.pop(_name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/docker/ needs the daemon: mark it so `-m "not docker"` is the
    # fast tier without anyone having to remember the marker.
    for item in items:
        if "/tests/docker/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.docker)
