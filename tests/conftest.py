"""Shared fixtures: a real Dockyard server in process, and cleanup of what tests create."""

from __future__ import annotations

import os

import pytest

# a throwaway PostgreSQL cluster, and a fresh store per test on SQLite and PostgreSQL
from tests.postgres import postgres_cluster, store, store_url

__all__ = ["postgres_cluster", "store", "store_url"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/docker/ needs the daemon: mark it so `-m "not docker"` is the
    # fast tier without anyone having to remember the marker.
    for item in items:
        if "/tests/docker/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.docker)
