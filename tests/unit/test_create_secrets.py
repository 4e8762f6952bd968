"""A task that cannot be stored leaves no secret file behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.engine.engine import Engine
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import TaskConflict
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog


class ReachableBackend:
    """Just enough of a backend for create_task: Docker answers, nothing runs."""

    instance = "test"

    def ping(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"create_task must not call backend.{name}")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    return Engine(
        store,
        ReachableBackend(),  # type: ignore[arg-type]
        Catalog(),
        BridgeBundler(tmp_path / "cache"),
        secrets=SecretStore(tmp_path),
    )


def secret_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "secrets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def create(engine: Engine, name: str) -> Any:
    params = {"api_key": "sk-secret-value"}
    return engine.create_task(
        template="claude-code",
        preset=None,
        prompt="hi",
        parameters=params,
        name=name,
        owner="tester",
    )


def test_a_task_that_cannot_be_stored_leaves_no_secret_file(engine: Engine, tmp_path: Path) -> None:
    first = create(engine, "dup")
    assert secret_files(tmp_path) == [f"{first.id}.json"]
    with pytest.raises(TaskConflict):
        create(engine, "dup")  # the name is taken: storing fails after the secrets
    assert secret_files(tmp_path) == [f"{first.id}.json"]
    engine.store.close()
