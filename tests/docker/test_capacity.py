"""Capacity limits on a real daemon: tasks wait for a slot, resumes too, prebuilds yield,
and two engines on one database never overcommit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from provisioner.backends.docker import LABEL_INSTANCE
from provisioner.server.main import build_engine
from tests.docker.conftest import ServerHandle
from tests.docker.templates import add_scripted_variant, cleanup_templates
from tests.serving import serve


@pytest.fixture
def capped(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """A server of its own whose home's config.yaml allows one workspace at a time."""
    home = tmp_path_factory.mktemp("dockyard-capped")
    (home / "config.yaml").write_text("capacity:\n  workspaces: 1\n")
    engine = build_engine(home)
    assert engine.max_workspaces == 1  # read from the config file
    engine.tick_s = 0.3
    instance = engine.backend.instance  # type: ignore[attr-defined]
    with serve(engine, home) as url:
        handle = ServerHandle(url, home, engine, instance, docker_client)
        try:
            yield handle
        finally:
            for task in json.loads(handle.cli("task", "list", "-o", "json").stdout):
                handle.cli("task", "delete", "-y", task["id"], check=False)
            cleanup_templates(handle)
            handle.remove_everything()
    engine.store.close()


class RunningSampler:
    """Counts the server's running containers in the background; remembers the most."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        label = f"{LABEL_INSTANCE}={self.server.instance}"
        while not self._stop.is_set():
            found = self.server.docker.containers.list(filters={"label": label})
            self.most = max(self.most, len(found))
            time.sleep(0.05)

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def capacity(server: ServerHandle) -> dict[str, Any]:
    return dict(json.loads(server.cli("capacity", "-o", "json").stdout))


def create(server: ServerHandle, prompt: str, *extra: str) -> str:
    return server.cli("task", "create", "-t", "scripted", "-q", *extra, prompt).stdout.strip()


def test_tasks_and_resumes_wait_for_a_slot(capped: ServerHandle) -> None:
    with RunningSampler(capped) as sampler:
        first = create(capped, "first job")
        capped.wait_idle(first)

        made = capped.cli("task", "create", "-t", "scripted", "second job")
        assert "It is waiting for capacity: 1 of 1 workspaces in use; 1st in line" in made.stdout
        second = capped.cli("task", "list", "-q", "--status", "pending").stdout.strip()
        time.sleep(1.0)  # a few reconcile passes: it must still wait
        waiting = capped.status(second)
        assert waiting["status"] == "pending"
        assert waiting["message"] == "waiting for capacity: 1 of 1 workspaces in use; 1st in line"
        assert "waiting for capacity" in capped.cli("task", "status", second).stdout
        capped.cli("task", "send", "--no-wait", second, "and a follow-up")  # kept meanwhile
        seen = capacity(capped)
        assert (seen["limit"], seen["in_use"], seen["waiting"]) == (1, 1, 1)
        assert [q["id"] for q in seen["queue"]] == [second]
        assert "1 of 1 workspaces in use; 1 task waiting" in capped.cli("capacity").stdout

        # Pausing the first frees its slot: the second starts and gets both prompts.
        capped.cli("task", "pause", first)
        capped.wait_output(second, "Done: second job")
        capped.wait_output(second, "Done: and a follow-up")
        capped.wait_idle(second)

        # A resume past capacity waits as pending, and says so.
        resumed = capped.cli("task", "resume", first).stdout
        assert "pending" in resumed
        status = capped.status(first)
        assert status["status"] == "pending"
        assert status["message"].startswith("waiting for capacity to resume: 1 of 1")
        shown = capped.cli("task", "status", first).stdout
        assert "message: waiting for capacity to resume" in shown
        time.sleep(1.0)
        assert capped.status(first)["status"] == "pending"

        # Deleting the second frees the slot: the first resumes (not re-run from scratch).
        capped.cli("task", "delete", "-y", second)
        capped.wait_idle(first)
        assert capped.output(first).count("Done: first job") == 1
        assert capacity(capped)["in_use"] == 1
    assert sampler.most <= 1, f"{sampler.most} workspaces ran at once with a limit of 1"


def test_two_engines_and_concurrent_creates_never_overcommit(capped: ServerHandle) -> None:
    # A second engine on the same database (like a second server) races the first.
    other = build_engine(capped.home)
    other.tick_s = 0.3
    other.start()
    try:
        with RunningSampler(capped) as sampler:
            replies: list[dict[str, Any]] = []

            def post(prompt: str) -> None:
                reply = httpx.post(
                    f"{capped.url}/api/v2/tasks",
                    headers=capped.headers,
                    json={"template": "scripted", "prompt": prompt, "name": prompt},
                    timeout=60,
                )
                reply.raise_for_status()
                replies.append(reply.json())

            threads = [threading.Thread(target=post, args=(p,)) for p in ("race-a", "race-b")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(replies) == 2
            deadline = time.monotonic() + 60
            while True:
                states = {name: capped.status(name) for name in ("race-a", "race-b")}
                started = [s for s in states.values() if s["status"] != "pending"]
                if started and started[0]["status"] == "active":
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.2)
            time.sleep(1.5)  # both engines reconcile several times meanwhile
            states = {name: capped.status(name) for name in ("race-a", "race-b")}
            assert sorted(s["status"] for s in states.values()) == ["active", "pending"]
            (waiter,) = [n for n, s in states.items() if s["status"] == "pending"]
            assert states[waiter]["message"].startswith("waiting for capacity: 1 of 1")

            # The waiter starts once the runner is deleted, whichever engine takes it.
            (runner,) = [n for n in states if n != waiter]
            capped.cli("task", "delete", "-y", runner)
            capped.wait_idle(waiter)
        assert sampler.most <= 1, f"{sampler.most} workspaces ran at once with a limit of 1"
    finally:
        other.stop()
        other.store.close()


def test_prebuilds_count_and_yield_to_user_tasks(capped: ServerHandle) -> None:
    capped.engine.max_workspaces = 2
    name = add_scripted_variant(capped, "capped-warm")
    presets = capped.home / "test-templates" / name / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "pooled.yaml").write_text(
        "default: true\nprebuilds: 2\nparameters:\n  work_seconds: 1\n"
    )

    def members() -> list[dict[str, Any]]:
        return list(json.loads(capped.cli("pool", "list", "-o", "json").stdout))

    def wait_ready(count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 120
        while True:
            ready = [m for m in members() if m["status"] == "active" and m["state"] == "idle"]
            if len(ready) >= count:
                return ready
            assert time.monotonic() < deadline, members()
            time.sleep(0.3)

    try:
        with RunningSampler(capped) as sampler:
            wait_ready(2)
            seen = capacity(capped)
            assert (seen["in_use"], seen["pool"]) == (2, 2)  # warm members count
            listed = capped.cli("pool", "list").stdout
            assert "capacity: 2 of 2 workspaces in use (2 warm)" in listed

            # A user task of another template: a warm member gives up its slot.
            mine = create(capped, "user first")
            capped.wait_idle(mine)
            ready = wait_ready(1)
            assert len(ready) == 1
            time.sleep(1.0)
            pool = members()
            refill = [m for m in pool if m["status"] == "pending"]
            assert refill and refill[0]["message"].startswith("waiting for capacity: 2 of 2")

            # A task of the pooled preset claims the ready member: no new slot taken.
            reply = httpx.post(
                f"{capped.url}/api/v2/tasks",
                headers=capped.headers,
                json={"template": name, "prompt": "warm job", "name": "warm-job"},
                timeout=60,
            )
            reply.raise_for_status()
            assert reply.json()["id"] == ready[0]["id"]
            assert reply.json()["status"] == "active"
            capped.wait_output("warm-job", "Done: warm job")
            seen = capacity(capped)
            assert (seen["in_use"], seen["tasks"], seen["pool"]) == (2, 2, 0)
            time.sleep(1.0)
            assert all(m["status"] == "pending" for m in members())  # refills wait

            capped.cli("task", "delete", "-y", mine, "warm-job")
            wait_ready(2)
        assert sampler.most <= 2, f"{sampler.most} workspaces ran at once with a limit of 2"
    finally:
        cleanup_templates(capped)
        for m in members():
            capped.cli("task", "delete", "-y", m["id"], check=False)


def test_a_failed_workspace_is_stopped_so_it_holds_no_slot(capped: ServerHandle) -> None:
    # unlimited, a workspace whose setup failed keeps running for inspection; with a limit
    # it is stopped (disk and logs kept), or failed tasks would run past the limit
    broken = add_scripted_variant(capped, "cap-broken-setup", setup="echo nope; exit 3")
    failed = capped.cli("task", "create", "-t", broken, "-q", "will fail").stdout.strip()
    status = capped.wait_for(failed, lambda s: s["status"] == "error", 60, "the setup failure")
    assert status["phase"] == "setup"
    capped.wait_for(failed, lambda s: capped.container(failed).status == "exited", 30, "stop")
    assert "nope" in "\n".join(capped.output(failed))  # its logs stay readable
    task = capped.cli("task", "create", "-t", "scripted", "-q", "--wait", "next").stdout.strip()
    assert capped.status(task)["status"] == "active"  # the slot was free
