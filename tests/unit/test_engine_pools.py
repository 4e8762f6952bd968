"""Warm pools on the fake backend: members become ready, a create claims one (which becomes
the creator's task under its name), the pool refills, stale members are replaced, and with
a capacity limit members count but yield their slots to user tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.engine import pools
from provisioner.lifecycle import Status
from provisioner.model import Task
from tests.fake_engine import Harness, Sampler, bridge_cache, harness_at, wait_until

__all__ = ["bridge_cache"]

POOLED = "default: true\nprebuilds: 2\nparameters:\n  work_seconds: 0.05\n"


@pytest.fixture(autouse=True)
def fill_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pools, "FILL_EVERY_S", 0.1)  # not every 2 s: tests wait on refills


@pytest.fixture
def fake(tmp_path: Path, bridge_cache: Path) -> Iterator[Harness]:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        yield h


def ready_members(h: Harness, count: int, version: str | None = None) -> list[Task]:
    def ready() -> list[Task]:
        found = [
            m
            for m in h.store.list_tasks(kind="pool")
            if m.status == Status.ACTIVE
            and m.state == "idle"
            and (version is None or m.template_version == version)
        ]
        return found if len(found) >= count else []

    return wait_until(ready, 20, f"{count} ready warm members")


def test_a_create_claims_a_ready_member_and_the_pool_refills(fake: Harness) -> None:
    name = fake.add_scripted_variant(
        "warm",
        presets={"pooled": POOLED},
        claim_setup="echo 'claimed by {{ task.name }}' > /workspace/claimed.txt\n",
    )
    members = ready_members(fake, 2)
    warm_ids = {m.id for m in members}
    assert all(m.owner == fake.engine.owner and m.prompt == "" for m in members)
    for m in members:  # a member waits for its first prompt: it got none
        assert not [line for line in fake.output(m.id) if line.startswith("Working on")]

    # two creates at once get two different members
    results: list[Task] = []

    def create(prompt: str, owner: str) -> None:
        results.append(fake.create(prompt, template=name, parameters={}, name=prompt, owner=owner))

    threads = [
        threading.Thread(target=create, args=args)
        for args in (("job-one", "alice"), ("job-two", "bob"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.id for r in results} == warm_ids  # both claimed, neither twice
    for r in results:
        assert r.status == Status.ACTIVE and r.kind == "task"
        assert r.owner == {"job-one": "alice", "job-two": "bob"}[r.name]  # the creator's now
        out = fake.wait_output(r.id, f"Done: {r.name}")
        assert out.count(f"Working on: {r.name}") == 1
        claimed = fake.backend.host_path(r.id, "/workspace/claimed.txt")
        assert claimed.read_text() == f"claimed by {r.name}\n"
        assert fake.backend.starts(r.id) == 1  # no second start: the claim reused it
    # the pool refills with new members
    refilled = ready_members(fake, 2)
    assert not ({m.id for m in refilled} & warm_ids)
    # a create whose parameters differ from the preset's claims none: provisioned afresh
    cold = fake.create("cold", template=name, parameters={"work_seconds": 0.01})
    assert cold.id not in {m.id for m in refilled} and cold.status == Status.PENDING
    fake.wait_output(cold.id, "Done: cold")

    # a new template version replaces the members built from the old one
    old = refilled[0].template_version
    manifest = fake.home / "test-templates" / name / "template.yaml"
    manifest.write_text(manifest.read_text().replace("Offline", "Offline (v2)"))
    wait_until(
        lambda: all(
            m.template_version != old
            for m in fake.store.list_tasks(kind="pool")
            if m.status not in (Status.CANCELLED,)
        ),
        20,
        "stale members retired",
    )
    fresh = ready_members(fake, 2)
    assert all(m.template_version != old for m in fresh)
    # the retired members' workspaces are gone
    assert {m.id for m in refilled}.isdisjoint(fake.backend.task_ids())


def test_warm_members_count_and_yield_their_slots_to_user_tasks(
    tmp_path: Path, bridge_cache: Path
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, max_workspaces=2) as h:
        sampler = Sampler(h)
        sampler.start()
        name = h.add_scripted_variant("capped-warm", presets={"pooled": POOLED})
        ready_members(h, 2)
        usage = h.engine.capacity()
        assert (usage.in_use, usage.pool) == (2, 2)  # warm members count
        # a user task of another template: a warm member gives up its slot
        mine = h.create("user first")
        h.wait_idle(mine.id)
        assert len(h.backend.running_task_ids()) == 2
        ready = ready_members(h, 1)
        wait_until(
            lambda: any(
                m.status == Status.PENDING and m.message.startswith("waiting for capacity: 2 of 2")
                for m in h.store.list_tasks(kind="pool")
            ),
            30,
            "a refill waiting for capacity",
        )
        # a task of the pooled preset claims the ready member: no new slot is taken
        claimed = h.create("warm job", template=name, parameters={}, name="warm-job")
        assert claimed.id == ready[0].id and claimed.status == Status.ACTIVE
        h.wait_output(claimed.id, "Done: warm job")
        usage = h.engine.capacity()
        assert (usage.in_use, usage.tasks, usage.pool) == (2, 2, 0)
        assert all(m.status == Status.PENDING for m in h.store.list_tasks(kind="pool"))
        assert len(h.backend.running_task_ids()) == 2
        sampler.check(limit=2)
