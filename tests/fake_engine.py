"""An Engine on the fake backend for the fast tier: real store, catalog, bridge and agent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from provisioner import paths
from provisioner.backends.fake import FakeBackend
from provisioner.engine.engine import Engine
from provisioner.engine.kept import KeptBundles
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.polling import wait_until
from tests.variants import write_scripted_variant

T = TypeVar("T")

FAST = {"work_seconds": 0.05}  # the scripted agent answers a prompt in about this long
ADMIN = "admin"


@dataclass
class Harness:
    """One test's engine, store and fake backend, with helpers that poll the store."""

    home: Path
    store: Store
    backend: FakeBackend
    engine: Engine
    bundler: BridgeBundler
    sampler: Any = None  # set by fixtures that watch how many workspaces run at once

    def catalog(self) -> Catalog:
        return Catalog(
            [paths.builtin_templates_dir(), self.home / "test-templates"],
            [paths.builtin_presets_dir()],
            VersionStore(self.home / "templates"),
        )

    def add_scripted_variant(
        self, name: str, presets: dict[str, str] | None = None, **changes: Any
    ) -> str:
        """Copy the scripted template as `name` with `changes` merged into template.yaml
        and `presets` (file name -> YAML) in its folder; the engine's catalog sees it."""
        write_scripted_variant(self.home / "test-templates", name, presets, **changes)
        self.engine.catalog = self.catalog()
        return name

    def new_engine(self, **kwargs: Any) -> Engine:
        """Another engine on the same store and backend (a server restarted)."""
        kwargs.setdefault("kept", KeptBundles(self.home / "kept"))
        engine = Engine(
            self.store, self.backend, self.catalog(), self.bundler, tick_s=0.05, **kwargs
        )
        return engine

    def create(self, prompt: str, **kwargs: Any) -> Task:
        kwargs.setdefault("template", "scripted")
        kwargs.setdefault("preset", None)
        kwargs.setdefault("parameters", dict(FAST))
        kwargs.setdefault("name", None)
        kwargs.setdefault("owner", ADMIN)
        return self.engine.create_task(prompt=prompt, **kwargs)

    def task(self, ref: str) -> Task:
        return self.store.get(ref)

    def wait_task(
        self, ref: str, pred: Callable[[Task], bool], what: str, timeout: float = 30
    ) -> Task:
        last: list[Task] = []

        def check() -> Task | None:
            task = self.store.get(ref)
            last[:] = [task]
            return task if pred(task) else None

        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                t = last[0]
                pytest.fail(
                    f"timed out after {timeout}s waiting for {what}: {t.name} is "
                    f"{t.status.value}/{t.state} phase={t.phase} message={t.message!r}"
                )
            time.sleep(0.02)

    def wait_status(self, ref: str, status: Status, timeout: float = 30) -> Task:
        return self.wait_task(ref, lambda t: t.status == status, status.value, timeout)

    def wait_idle(self, ref: str, timeout: float = 30) -> Task:
        return self.wait_task(
            ref,
            lambda t: t.status == Status.ACTIVE and t.state == "idle",
            "active/idle",
            timeout,
        )

    def output(self, ref: str) -> list[str]:
        task = self.store.get(ref)
        return [e["content"] for e in self.store.logs(task.id) if e["type"] == "output"]

    def wait_output(self, ref: str, line: str, timeout: float = 30) -> list[str]:
        return wait_until(
            lambda: (out := self.output(ref)) and line in out and out,
            timeout,
            f"{line!r} in the logs of {ref}",
        )


class Sampler(threading.Thread):
    """Counts the fake's running workspaces all along: the most ever seen at once."""

    def __init__(self, h: Harness) -> None:
        super().__init__(daemon=True)
        self.h = h
        self.most = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.most = max(self.most, len(self.h.backend.running_task_ids()))

    def check(self, limit: int = 1) -> None:
        """Fail if more workspaces than `limit` ever ran at once."""
        self.done.set()
        self.join()
        assert self.most <= limit, f"{self.most} workspaces ran at once with a limit of {limit}"


@pytest.fixture(scope="session")
def bridge_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-cache")


_BUNDLERS: dict[Path, BridgeBundler] = {}


@contextmanager
def harness_at(
    home: Path, bridge_cache: Path, store_url: str | None = None, **engine_kwargs: Any
) -> Iterator[Harness]:
    """An engine (started, ticking fast) on a fresh store (SQLite unless `store_url`) and
    fake backend."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "test-templates").mkdir(exist_ok=True)
    store = Store(store_url or sqlite_url(home / "dockyard.db"))
    backend = FakeBackend(home / "workspaces")
    # one per cache for the whole session: it builds (hashes) the zipapp once, ~0.2 s
    bundler = _BUNDLERS.setdefault(bridge_cache, BridgeBundler(bridge_cache))
    h = Harness(home, store, backend, None, bundler)  # type: ignore[arg-type]
    h.engine = h.new_engine(**engine_kwargs)
    h.engine.start()
    try:
        yield h
    finally:
        h.engine.stop()
        backend.close()
        store.close()


@pytest.fixture
def fake(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        yield h
