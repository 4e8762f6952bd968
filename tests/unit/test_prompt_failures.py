"""A prompt that can never reach the agent fails, says why, and holds up nothing.

A real server, engine and follower drive a real bridge (the scripted agent under a pty,
on this host); a stand-in backend says where that bridge is, so no Docker is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from provisioner.backends.base import Observed
from provisioner.bridge.package import build_zipapp
from provisioner.bridge.runtime.http import MAX_BODY
from provisioner.engine import follower
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve
from tests.stored import stored_task
from tests.unit.test_bridge_local import TOKEN, BridgeRunner, wait_until


class HostBackend:
    """The one workspace is the bridge running on this host."""

    instance = "test"

    def __init__(self, task_id: str, endpoint: str) -> None:
        self.task_id = task_id
        self.endpoint = endpoint

    def ping(self) -> None:
        pass

    def running_task_ids(self) -> set[str]:
        return {self.task_id}

    def task_ids(self) -> set[str]:
        return {self.task_id}

    def observe(self, task_id: str) -> Observed:
        return Observed(exists=True, running=True, endpoint=self.endpoint)

    def tail(self, task_id: str, lines: int) -> list[str]:
        return []

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the test did not expect backend.{name}")


@dataclass
class Served:
    url: str
    engine: Engine
    task: str
    runner: BridgeRunner
    home: Path

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=admin_env(self.url, self.home))

    def get(self, path: str) -> Any:
        return httpx.get(
            f"{self.url}/api/dockyard/v1{path}",
            headers=admin_headers(self.home),
            timeout=HTTP_TIMEOUT,
        ).json()

    def prompts(self) -> dict[str, dict[str, Any]]:
        got = self.get(f"/tasks/{self.task}/prompts")["prompts"]
        return {p["id"]: p for p in got}

    def status(self) -> dict[str, Any]:
        return dict(self.get(f"/tasks/{self.task}"))


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def served(zipapp: Path, tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "bridge").mkdir()
    runner = BridgeRunner(zipapp, tmp_path / "bridge")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine: Engine | None = None
    try:
        # no end-of-file key: a line too long for the terminal cannot go in pieces
        agent = " ".join(runner.agent_command())
        client = runner.start(agent_command=["sh", "-c", f"stty eof undef; exec {agent}"])
        task = stored_task(store, Status.ACTIVE, bridge_token=TOKEN, state="working")
        backend = HostBackend(task.id, client.base_url)
        engine = Engine(
            store,
            backend,  # type: ignore[arg-type]
            Catalog(),
            BridgeBundler(tmp_path / "cache"),
            tick_s=0.2,
        )
        engine.start()
        with serve(engine, tmp_path) as url:
            yield Served(url, engine, task.name, runner, tmp_path)
    finally:
        if engine is not None:
            engine.stop()
        runner.cleanup()
        store.close()


def test_a_prompt_the_bridge_refuses_fails_and_the_next_one_goes(served: Served) -> None:
    store = served.engine.store
    task = store.get(served.task)
    wait_until(lambda: served.status()["state"] == "idle", 20, "the task to be idle")
    # past the API's check, straight into the store: the bridge refuses it (413)
    store.add_prompt(task.id, "huge", "x" * (MAX_BODY + 1))
    result = served.cli("task", "send", served.task, "/write next.txt ok")
    assert result.exit_code == 0, result.output
    assert "prompt taken by the agent" in result.stdout
    wait_until(lambda: (served.runner.workdir / "next.txt").exists(), 20, "the next prompt")
    huge = served.prompts()["huge"]
    reason = f"the workspace's bridge refused it (413): body larger than {MAX_BODY} bytes"
    assert (huge["state"], huge["reason"]) == ("failed", reason)
    logs = json.loads(served.cli("task", "logs", served.task, "-o", "json").stdout)
    assert f"prompt huge failed: {reason}" in [e["content"] for e in logs]
    events = json.loads(served.cli("task", "events", served.task, "-o", "json").stdout)
    assert any(e.get("to_value") == "failed" and e.get("reason") == reason for e in events)
    # it holds nothing up: the task goes idle, and a later prompt is taken too
    wait_until(lambda: served.status()["state"] == "idle", 30, "the task to be idle")
    again = served.cli("task", "send", served.task, "/write later.txt ok")
    assert again.exit_code == 0, again.output


def test_send_reports_a_prompt_that_failed_and_exits_non_zero(served: Served) -> None:
    wait_until(lambda: served.status()["state"] == "idle", 20, "the task to be idle")
    # a line longer than a canonical-mode terminal holds, and no way to hand it in pieces
    result = served.cli("task", "send", served.task, "/write big.txt " + "y" * 5000)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        "error: the prompt failed: the agent reads lines in canonical mode, which holds at "
        "most 4095 bytes; this prompt has a line of 5015 bytes"
    )
    assert not (served.runner.workdir / "big.txt").exists()
    wait_until(lambda: served.status()["state"] == "idle", 30, "the task to be idle")
    assert served.cli("task", "send", served.task, "/write small.txt ok").exit_code == 0
    assert (served.runner.workdir / "small.txt").read_text() == "ok\n"


@pytest.fixture
def long_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower's long polls hold for the bridge's most (30 s), so what a test sees
    well within that came at once, not after a poll, however loaded the machine is."""
    monkeypatch.setattr(follower, "POLL_WAIT_S", 30.0)


def test_a_task_whose_prompt_failed_is_idle_at_once(long_polls: None, served: Served) -> None:
    wait_until(lambda: served.status()["state"] == "idle", 30, "the task to be idle")
    # past the API's limit, straight to the engine: marked working, then refused (413)
    sent = served.engine.send(served.task, "x" * (MAX_BODY + 1))
    # the follower hands it over when nudged, not inside send() nor after its poll: wait
    # for its verdict
    wait_until(lambda: served.prompts()[sent["prompt_id"]]["state"] == "failed", 15, "the refusal")
    # not after the follower's next long poll: the bridge is idle, nothing is left
    wait_until(lambda: served.status()["state"] == "idle", 15, "the task to be idle at once")
