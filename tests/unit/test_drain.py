"""Drain and undrain on a real engine (fake backend: the real bridge and scripted agent as
local processes), and through the real API and CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.draining import WAITING
from provisioner.engine import pools
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake, harness_at, wait_until
from tests.polling import HTTP_TIMEOUT
from tests.postgres import postgres_cluster, store_url
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache", "fake", "postgres_cluster", "store_url"]

POOLED = "default: true\nprebuilds: 1\nparameters:\n  work_seconds: 0.05\n"


def inputs(h: Harness, ref: str) -> list[str]:
    return [e["content"] for e in h.store.logs(h.task(ref).id) if e["type"] == "input"]


def test_drain_pauses_with_context_and_undrain_resumes_exactly_those(fake: Harness) -> None:
    idle = fake.create("first prompt", name="idle")
    busy = fake.create("/sleep 600", name="busy")
    fake.wait_idle(idle.id)
    fake.wait_task(busy.id, lambda t: t.state == "working", "busy working")

    fake.engine.draining.drain(actor="user:admin", grace_s=600)
    # the idle task is paused at once, the working one keeps its grace
    fake.wait_status(idle.id, Status.PAUSED)
    assert fake.task(busy.id).status == Status.ACTIVE
    # nothing is admitted: a new task is accepted and waits, and so does a resume
    waiting = fake.create("while drained", name="waiting")
    fake.engine.reconcile()
    fake.engine.reconcile()
    assert fake.task(waiting.id).status == Status.PENDING
    assert fake.task(waiting.id).message == WAITING
    # asked again with no grace: the working task is paused too, mid-turn
    fake.engine.draining.drain(actor="user:admin", grace_s=0)
    fake.wait_status(busy.id, Status.PAUSED)
    state = fake.engine.draining.state()
    assert set(state.paused) == {idle.id, busy.id}
    for task in (idle, busy):
        events = [(e["kind"], e["actor"], e["to_value"]) for e in fake.store.events(task.id)]
        assert ("drain", "drain", "paused") in events
        assert ("status", "drain", "paused") in events
    # shared through the database: another engine (a restarted server) drains too
    other = fake.new_engine()
    try:
        assert other.draining.state().draining
        other.reconcile()
        assert fake.task(waiting.id).status == Status.PENDING
    finally:
        other.stop()

    _, resumed = fake.engine.draining.undrain(actor="user:admin")
    assert {t.id for t in resumed} == {idle.id, busy.id}
    fake.wait_idle(idle.id)
    fake.wait_idle(waiting.id)  # admitted again
    # resumed where it was: the agent resumed its session, no prompt was typed again
    assert "Resumed (previous context: 1 inputs)" in fake.output(idle.id)
    assert inputs(fake, idle.id) == ["first prompt"]
    fake.wait_output(busy.id, "Resumed (previous context: 1 inputs)")
    assert inputs(fake, busy.id) == ["/sleep 600"]
    assert not fake.engine.draining.state().paused
    assert fake.engine.draining.state().to_value() is None


def test_a_resume_while_draining_waits_and_starts_after_undrain(fake: Harness) -> None:
    task = fake.create("hello", name="t")
    fake.wait_idle(task.id)
    fake.engine.pause(task.id)
    fake.engine.draining.drain(actor="user:admin", grace_s=0)
    waiting = fake.engine.resume(task.id)
    assert (waiting.status, waiting.message) == (Status.PENDING, WAITING)
    _, resumed = fake.engine.draining.undrain(actor="user:admin")
    assert resumed == []  # the user paused it, not the drain; it was queued by its resume
    fake.wait_idle(task.id)


def test_an_undrain_cut_short_is_finished_by_the_next_pass(fake: Harness) -> None:
    task = fake.create("hello", name="t")
    fake.wait_idle(task.id)
    fake.engine.draining.drain(actor="user:admin", grace_s=0)
    fake.wait_status(task.id, Status.PAUSED)
    # the undrain's server died after clearing the flag, before resuming anything, a
    # while ago: a pass of this engine takes over
    fake.store.change_setting(
        "drain",
        lambda v: {**(v or {}), "draining": False, "undrained_at": "2020-01-01T00:00:00.000Z"},
    )
    fake.wait_idle(task.id)
    assert [e["actor"] for e in fake.store.events(task.id) if e["kind"] == "drain"] == [
        "drain",
        "drain",
    ]


def test_servers_sharing_a_database_drain_alike(
    tmp_path: Path, bridge_cache: Path, store_url: str
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url) as h:
        second = h.new_engine()  # another server on the same database
        second.start()
        try:
            task = h.create("one", name="one")
            h.wait_idle(task.id)
            second.draining.drain(actor="user:admin", grace_s=0)  # asked of the other one
            h.wait_status(task.id, Status.PAUSED)
            waiting = h.create("waits", name="waits")
            h.engine.reconcile()
            second.reconcile()
            assert h.task(waiting.id).status == Status.PENDING
            h.engine.draining.undrain(actor="user:admin")  # and undone through the first
            h.wait_idle(task.id)
            h.wait_idle(waiting.id)
            kinds = [(e["kind"], e["to_value"]) for e in h.store.events(task.id)]
            assert kinds.count(("drain", "paused")) == 1
            assert kinds.count(("drain", "resumed")) == 1
            assert kinds.count(("status", "paused")) == 1
        finally:
            second.stop()


@pytest.fixture
def served(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def test_drain_api_and_cli(served: tuple[Harness, str], tmp_path: Path) -> None:
    h, url = served
    h.store.create_user("alice", "member")
    alice, _ = h.store.create_token("alice", "laptop", None)
    as_alice = {"Authorization": f"Bearer {alice}"}
    admin = admin_headers(h.home)

    def post(path: str, headers: dict[str, str], **kw: object) -> httpx.Response:
        return httpx.post(  # type: ignore[arg-type]
            f"{url}/api/dockyard/v1{path}", headers=headers, timeout=HTTP_TIMEOUT, **kw
        )

    assert post("/drain", as_alice, json={"grace": "0s"}).status_code == 403
    assert post("/undrain", as_alice).status_code == 403
    for bad in ("1y", "-1s", "30", "25h", "\x1b[2J", "s" * 40, 30):
        reply = post("/drain", admin, json={"grace": bad})
        assert reply.status_code == 400, (bad, reply.text)
    assert not h.engine.draining.state().draining

    task = h.create("hello", name="t")
    h.wait_idle(task.id)
    env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(tmp_path / "cli")}
    drained = CliRunner().invoke(dockyard, ["drain", "--grace", "0s"], env=env)
    assert drained.exit_code == 0, drained.output
    assert "drained" in drained.output and "dockyard undrain" in drained.output
    assert h.task(task.id).status == Status.PAUSED
    health = httpx.get(f"{url}/api/v2/health", headers=as_alice, timeout=HTTP_TIMEOUT).json()
    assert health["drain"]["draining"] and health["drain"]["done"]
    assert health["drain"]["paused_by_drain"] == 1
    assert health["drain"]["by"] is None  # which admin drained is for admins to see
    capacity = CliRunner().invoke(dockyard, ["capacity"], env=env)
    assert "draining" in capacity.output
    undrained = CliRunner().invoke(dockyard, ["undrain", "-o", "json"], env=env)
    assert undrained.exit_code == 0, undrained.output
    assert [t["name"] for t in json.loads(undrained.output)["resumed"]] == ["t"]
    h.wait_idle(task.id)
    audit = {e["action"] for e in h.store.audit_entries()}
    assert {"server.drain", "server.undrain"} <= audit


def test_a_warm_workspace_is_not_claimed_while_draining(
    fake: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pools, "FILL_EVERY_S", 0.1)
    name = fake.add_scripted_variant("warm", presets={"pooled": POOLED})
    wait_until(
        lambda: [m for m in fake.store.list_tasks(kind="pool") if m.state == "idle"],
        20,
        "a ready warm member",
    )
    fake.engine.draining.drain(actor="user:admin", grace_s=0)
    task = fake.create("no shortcut", template=name, parameters={}, name="cold")
    assert task.kind == "task" and task.status == Status.PENDING  # not a claimed member
    assert task.message == WAITING
    fake.engine.draining.undrain(actor="user:admin")
    # claimed now, or started cold: either way it runs only after the undrain
    fake.wait_idle("cold")
