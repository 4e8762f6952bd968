"""Resource limits are checked when a task is rendered: a bad one is a 400 at creation,
not a failure in the create phase (a real server whose Docker daemon is missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisioner import paths
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import TemplateError
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.resources import check_resources, memory_bytes
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve

FORM = "a number with an optional unit b, k, m or g (512m, 2g), from 6m to 1024g"


@pytest.mark.parametrize(
    ("text", "size"), [("512m", 512 << 20), ("2G", 2 << 30), ("1048576", 1 << 20), ("7k", 7168)]
)
def test_memory_sizes(text: str, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize(
    ("memory", "cpus", "pids", "field"),
    [
        ("512m $(id)", 1.0, 10, "memory"),
        ("lots", 1.0, 10, "memory"),
        ("1m", 1.0, 10, "memory"),  # below Docker's least
        ("2t", 1.0, 10, "memory"),
        ("9" * 100, 1.0, 10, "memory"),
        ("", 1.0, 10, "memory"),
        ("1g", 0.0, 10, "cpus"),
        ("1g", -2.0, 10, "cpus"),
        ("1g", float("inf"), 10, "cpus"),
        ("1g", float("nan"), 10, "cpus"),
        ("1g", 5000.0, 10, "cpus"),
        ("1g", 1.0, 0, "pids"),
        ("1g", 1.0, 10**9, "pids"),
    ],
)
def test_bad_limits_name_the_field_and_the_form(
    memory: str, cpus: float, pids: int, field: str
) -> None:
    with pytest.raises(TemplateError, match=f"^t.yaml: field workspace.resources.{field}: "):
        check_resources(memory, cpus, pids, "t.yaml: field ")


def test_good_and_unset_limits_pass() -> None:
    check_resources("512m", 0.5, 256, "")
    check_resources(None, None, None, "")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "templates" / "loose"
    folder.mkdir(parents=True)
    # a template whose memory parameter no rule checks: the resources check still does
    (folder / "template.yaml").write_text(
        "name: loose\nparameters:\n  - {name: memory, default: 1g}\n"
        "workspace:\n  resources: {memory: '{{ memory }}'}\nagent:\n  command: [run]\n"
    )
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    catalog = Catalog([paths.builtin_templates_dir(), tmp_path / "templates"])
    engine = Engine(store, DockerBackend("test", dead), catalog, BridgeBundler(tmp_path / "c"))
    with serve(engine, tmp_path) as base:
        yield base
    store.close()


def test_task_create_answers_400_naming_the_field(url: str, tmp_path: Path) -> None:
    body = {"template": "loose", "prompt": "hi", "parameters": {"memory": "512m $(id)"}}
    auth = admin_headers(tmp_path)
    answer = httpx.post(f"{url}/api/v2/tasks", json=body, headers=auth, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert "workspace.resources.memory: '512m $(id)' is not a memory limit" in answer.text
    assert FORM in answer.text
    assert (
        httpx.get(f"{url}/api/v2/tasks", headers=auth, timeout=HTTP_TIMEOUT).json()["tasks"] == []
    )
