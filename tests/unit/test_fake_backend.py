"""The fake backend keeps the Backend contract the engine relies on (what docker.py does):
idempotent create and start, stop keeps the disk, remove takes everything, observe tells
running from exited (signals as 128+N) and gives the real bridge's endpoint."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.backends.base import BridgeBundle
from provisioner.backends.fake import FakeBackend
from provisioner.bridge.client import BridgeClient
from provisioner.bridge.package import build_zipapp
from provisioner.engine.workspace import bridge_config
from provisioner.errors import BackendError, BackendUnavailable, ImageBuildError
from provisioner.model import Task
from provisioner.spec import WorkspaceSpec
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_workspace
from tests.fake_engine import bridge_cache, wait_until

__all__ = ["bridge_cache"]

TOKEN = "fake-backend-token"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FakeBackend]:
    fake = FakeBackend(tmp_path / "workspaces")
    yield fake
    fake.close()


@pytest.fixture
def spec() -> WorkspaceSpec:
    tpl = Catalog().get("scripted")
    return render_workspace(tpl, tpl.default_preset(), {"work_seconds": 0.05})


def bundle(bridge_cache: Path, spec: WorkspaceSpec, prompt: str = "hello") -> BridgeBundle:
    task = Task(
        id="t1", name="t1", display_name="t1", owner="me", template="scripted",
        template_version="1", preset=None, parameters={}, resolved={}, prompt=prompt,
        status="initializing", bridge_token=TOKEN, created_at="", updated_at="",
    )  # type: ignore[arg-type]  # fmt: skip
    config = json.dumps(bridge_config(task, spec)).encode()
    return BridgeBundle(build_zipapp(bridge_cache).read_bytes(), config, TOKEN)


def test_a_workspace_lives_and_dies_like_a_container(
    backend: FakeBackend, spec: WorkspaceSpec, bridge_cache: Path
) -> None:
    bridge = bundle(bridge_cache, spec)
    assert not backend.observe("t1").exists
    image = backend.ensure_image(spec, lambda line: None)
    assert image.startswith("fake/scripted:")
    backend.create("t1", "t1", spec, image, bridge)
    backend.create("t1", "t1", spec, image, bridge)  # idempotent
    assert backend.task_ids() == {"t1"} and backend.running_task_ids() == set()
    backend.start("t1", bridge)
    backend.start("t1", bridge)  # running: nothing to do
    assert backend.starts("t1") == 1 and backend.running_task_ids() == {"t1"}
    endpoint = wait_until(lambda: backend.observe("t1").endpoint, 30, "the bridge's endpoint")
    with BridgeClient(endpoint, TOKEN) as client:  # the real bridge, with the task's token
        wait_until(lambda: client.status()["status"] == "stable", 30, "the agent idle")
        assert "Done: hello" in [e["content"] for e in client.log(after=0)["entries"]]
    # exec runs in the workspace, container paths mapped
    assert backend.exec("t1", ["sh", "-c", "echo hi > /workspace/x; pwd"])[0] == 0
    assert backend.host_path("t1", "/workspace/x").read_text() == "hi\n"
    assert any("listening on" in line for line in backend.tail("t1", 20))
    # stop: as docker stop, disk kept
    backend.stop("t1")
    seen = backend.observe("t1")
    assert seen.exists and not seen.running and seen.endpoint is None
    assert backend.host_path("t1", "/workspace/x").exists()
    with pytest.raises(BackendError):
        backend.exec("t1", ["true"])
    # started again on the same disk, on a new port
    backend.start("t1", bridge)
    assert wait_until(lambda: backend.observe("t1").endpoint, 30, "the new endpoint")
    # a death reports its exit code; a kill by signal N says 128+N
    backend.die("t1", exit_code=3)
    assert backend.observe("t1").exit_code == 3
    assert "exited with code 3" in backend.observe("t1").death_cause()
    backend.start("t1", bridge)
    proc = backend._workspaces["t1"].proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert backend.observe("t1").exit_code == 137
    assert "killed by signal 9 (exit code 137)" in backend.observe("t1").death_cause()
    backend.remove("t1")
    assert not backend.observe("t1").exists and backend.task_ids() == set()
    assert not (backend.root / "t1").exists()
    backend.remove("t1")  # idempotent


def test_faults(backend: FakeBackend, spec: WorkspaceSpec, bridge_cache: Path) -> None:
    backend.image_error = "disk full"
    with pytest.raises(ImageBuildError, match="disk full"):
        backend.ensure_image(spec, lambda line: None)
    backend.create_error = BackendUnavailable("daemon down")
    with pytest.raises(BackendUnavailable):
        backend.create("t1", "t1", spec, "img", bundle(bridge_cache, spec))
    backend.down = True
    for call in (backend.ping, backend.running_task_ids, backend.task_ids):
        with pytest.raises(BackendUnavailable):
            call()
    with pytest.raises(BackendUnavailable):
        backend.observe("t1")


def test_a_closed_backend_starts_nothing(
    backend: FakeBackend, spec: WorkspaceSpec, bridge_cache: Path
) -> None:
    # An engine's start still under way as a test ends must not spawn a bridge that
    # outlives the test: nobody would be left to kill it (they piled up by the hundred).
    bridge = bundle(bridge_cache, spec)
    backend.create("t1", "t1", spec, backend.ensure_image(spec, lambda line: None), bridge)
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.start("t1", bridge)
    assert backend.running_task_ids() == set()
