"""The Docker backend's start of a container it just created: no Docker lookups first
(each is a list and an inspect on the way to a new workspace), and the careful path for
any other container. A recording stand-in for DockerClient; no Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.backends.base import BridgeBundle
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import ContainerInfo
from provisioner.errors import BackendError
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_workspace


class RecordingDocker:
    """Answers what create and start ask; records every call by name."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.listed: list[ContainerInfo] = []

    def __getattr__(self, name: str) -> Any:
        answers: dict[str, Any] = {
            "containers": lambda *a, **k: list(self.listed),
            "volume_exists": lambda *a, **k: True,
            "path_exists": lambda *a, **k: True,
            "create_container": lambda *a, **k: "c-new",
            "volumes": lambda *a, **k: [],
        }

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            return answers.get(name, lambda *a, **k: None)(*args, **kwargs)

        return call


def info(running: bool) -> ContainerInfo:
    return ContainerInfo("c-old", "w", "running" if running else "exited", running, None,
                         False, "", None, {})  # fmt: skip


def test_a_container_just_created_is_started_without_a_lookup(tmp_path: Path) -> None:
    docker = RecordingDocker()
    backend = DockerBackend("test", docker)  # type: ignore[arg-type]
    template = Catalog().get("scripted")
    spec = render_workspace(template, template.default_preset(), {})
    bundle = BridgeBundle(zipapp=b"zip", config_json=b"{}", token="t")
    backend.create("task-1", "t1", spec, "img", bundle)
    docker.calls.clear()
    backend.start("task-1", bundle)
    assert docker.calls == [("start", ("c-new",))]
    # any later start looks first: a stopped container gets the server's bridge files
    docker.calls.clear()
    docker.listed = [info(running=False)]
    backend.start("task-1", bundle)
    assert [name for name, _ in docker.calls] == ["containers", "put_files", "start"]
    # and one that runs already is left alone
    docker.calls.clear()
    docker.listed = [info(running=True)]
    backend.start("task-1", bundle)
    assert [name for name, _ in docker.calls] == ["containers"]


def test_a_removed_workspace_is_no_longer_fresh(tmp_path: Path) -> None:
    docker = RecordingDocker()
    backend = DockerBackend("test", docker)  # type: ignore[arg-type]
    template = Catalog().get("scripted")
    spec = render_workspace(template, template.default_preset(), {})
    bundle = BridgeBundle(zipapp=b"zip", config_json=b"{}", token="t")
    backend.create("task-1", "t1", spec, "img", bundle)
    backend.remove("task-1")
    docker.calls.clear()
    docker.listed = []
    with pytest.raises(BackendError, match="no workspace container to start"):
        backend.start("task-1", bundle)  # not a start of the removed container's id
    assert ("start", ("c-new",)) not in docker.calls
