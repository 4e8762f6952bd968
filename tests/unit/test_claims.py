"""Claims of queue-only tasks: a `workers: true` target's tasks are never provisioned;
of N concurrent claimers exactly one wins (on SQLite and PostgreSQL, each claimer on its
own Store); leases expire back to pending with the attempt counted; dependencies gate
claims; workers route by codebase."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from provisioner.engine.engine import Engine
from provisioner.errors import IllegalTransition, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import QueueFields, Task
from provisioner.queueing import parse_completion
from provisioner.routing import parse_targets
from provisioner.store.store import Store
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.postgres import postgres_cluster, store_url

__all__ = ["bridge_cache", "postgres_cluster", "store_url"]

TARGETS = parse_targets(
    {
        "reviewers": {"workers": True, "codebases": ["api-server", "global", "__pending__"]},
        "web": {"workers": True, "codebases": ["web-app"]},
    }
)


def queued(h: Harness, prompt: str, owner: str = "alice", **queue: object) -> Task:
    """A queue-only task (its target's workers claim it)."""
    queue.setdefault("target", "reviewers")
    return h.engine.create_task(
        template=None,
        preset=None,
        prompt=prompt,
        parameters={},
        name=None,
        owner=owner,
        queue=QueueFields(**queue),  # type: ignore[arg-type]
    )


def expire_now(h: Harness, task: Task) -> None:
    """Backdate a claim's lease (as if its worker stopped renewing long ago)."""
    h.store.record(task.id, "test", actor="test", claim_until="2000-01-01T00:00:00.000Z")


@pytest.fixture
def h(tmp_path: Path, bridge_cache: Path) -> object:
    with harness_at(tmp_path / "home", bridge_cache, targets=TARGETS) as harness:
        yield harness


def test_a_queue_only_task_is_never_provisioned_and_is_claimed_then_completed(
    h: Harness,
) -> None:
    task = queued(h, "review the diff")
    assert task.queue_only and task.template == ""
    assert task.message == "waiting for a worker to claim it"
    # a workspace task created after it starts and goes idle: passes ran meanwhile, and
    # the queue-only task is still pending, with no workspace
    other = h.create("a workspace task", owner="alice")
    h.wait_idle(other.id)
    assert h.task(task.id).status == Status.PENDING
    assert h.backend.task_ids() == {other.id}
    assert task.id not in {s.id for s in h.engine.capacity().queue}
    h.engine.complete(other.id, parse_completion({"outcome": "SUCCESS"}))

    claimed = h.engine.claim(task.id, user="bob", session_id="builder-1", lease_s=60)
    assert claimed.status == Status.CLAIMED
    assert (claimed.claimed_by, claimed.session_id) == ("bob", "builder-1")
    assert claimed.claim_until is not None
    with pytest.raises(TaskConflict, match=f"task {task.name} is already claimed by builder-1"):
        h.engine.claim(task.id, user="carol", session_id="other", lease_s=60)
    started = h.engine.start_claimed(task.id, user="bob", session_id="builder-1")
    assert (started.status, started.state) == (Status.ACTIVE, "working")
    done = h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS", "output": "ok"}))
    assert done.status == Status.COMPLETED
    moves = [
        (e["from_value"], e["to_value"]) for e in h.store.events(task.id) if e["kind"] == "status"
    ]
    assert moves == [
        (None, "pending"),
        ("pending", "claimed"),
        ("claimed", "active"),
        ("active", "completed"),
    ]
    claim_event = next(e for e in h.store.events(task.id) if e["to_value"] == "claimed")
    assert claim_event["actor"] == "user:bob" and "builder-1" in claim_event["reason"]


def test_pending_cannot_jump_to_completed_but_a_claim_can_end_at_once(h: Harness) -> None:
    task = queued(h, "nobody took this")
    with pytest.raises(IllegalTransition, match="did no work"):
        h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    h.engine.claim(task.id, user="bob", session_id="s1")
    assert h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"})).status == (
        Status.COMPLETED
    )


def test_an_expired_lease_returns_the_task_to_pending_with_the_attempt_counted(
    h: Harness,
) -> None:
    for start in (False, True):
        task = queued(h, f"flaky worker {start}")
        h.engine.claim(task.id, user="bob", session_id="dies", lease_s=60)
        if start:
            h.engine.start_claimed(task.id, user="bob", session_id="dies")
        expire_now(h, h.task(task.id))
        back = h.wait_status(task.id, Status.PENDING)
        assert back.attempt == 2
        assert (back.claimed_by, back.session_id, back.claim_until) == (None, None, None)
        lease = [e for e in h.store.events(task.id) if e["kind"] == "lease"]
        assert lease[-1]["to_value"] == "expired" and lease[-1]["actor"] == "engine"
        # the old session can no longer renew; a new claimer may take it
        with pytest.raises(TaskConflict, match="nobody holds a claim"):
            h.engine.renew_claim(task.id, user="bob", session_id="dies", lease_s=60)
        assert h.engine.claim(task.id, user="carol", session_id="next").status == Status.CLAIMED


def test_renewing_keeps_the_claim_and_only_its_session_may(h: Harness) -> None:
    task = queued(h, "long job")
    first = h.engine.claim(task.id, user="bob", session_id="s1", lease_s=10)
    renewed = h.engine.renew_claim(task.id, user="bob", session_id="s1", lease_s=600)
    assert renewed.claim_until is not None and first.claim_until is not None
    assert renewed.claim_until > first.claim_until
    with pytest.raises(TaskConflict, match="already claimed by s1"):
        h.engine.renew_claim(task.id, user="carol", session_id="s2", lease_s=60)
    with pytest.raises(TaskConflict, match="already claimed by s1"):
        h.engine.start_claimed(task.id, user="carol", session_id="s2")


@pytest.mark.parametrize("lease", [0, -5, 1e9, float("nan"), "soon", True])
def test_bad_leases_are_refused(h: Harness, lease: object) -> None:
    task = queued(h, "x")
    with pytest.raises(ParameterError, match="lease_s"):
        h.engine.claim(task.id, user="bob", session_id="s", lease_s=lease)
    with pytest.raises(ParameterError, match="session_id"):
        h.engine.claim(task.id, user="bob", session_id="bad session\n")


def test_a_blocked_task_cannot_be_claimed_until_its_dependency_completes(h: Harness) -> None:
    first = queued(h, "first", owner="alice")
    second = queued(h, "second", owner="alice", depends_on=(first.id,))
    with pytest.raises(TaskConflict, match=f"waiting for dependencies: {first.name}"):
        h.engine.claim(second.id, user="bob", session_id="s")
    h.engine.claim(first.id, user="bob", session_id="s")
    h.engine.complete(first.id, parse_completion({"outcome": "SUCCESS"}))
    # claimable at once: the dependency is checked as it is, not the engine's last pass
    assert h.engine.claim(second.id, user="bob", session_id="s").status == Status.CLAIMED


def test_a_workspace_task_of_another_user_is_not_claimable_nor_visible(h: Harness) -> None:
    mine = h.create("a workspace task", owner="alice")
    with pytest.raises(TaskNotFound):
        h.engine.claim(mine.id, user="mallory", session_id="s")
    with pytest.raises(TaskConflict, match="not a queue-only task"):
        h.engine.claim(mine.id, user="alice", session_id="s")


def test_workspace_acts_on_a_queue_only_task_are_refused_and_retry_frees_it(h: Harness) -> None:
    task = queued(h, "not a workspace")
    h.engine.claim(task.id, user="bob", session_id="s1")
    h.engine.start_claimed(task.id, user="bob", session_id="s1")
    for act in (h.engine.pause, h.engine.resume):
        with pytest.raises(TaskConflict, match="queue-only"):
            act(task.id)
    with pytest.raises(TaskConflict, match=r"Cannot send to it: task \S+ is queue-only"):
        h.engine.send(task.id, "more")
    failed = h.engine.complete(
        task.id, parse_completion({"outcome": "FAILED", "error_class": "TRANSIENT"})
    )
    assert failed.status == Status.FAILED  # no automatic retry: no workspace to retry in
    again = h.engine.retries.retry(failed, actor="user:alice")
    assert (again.status, again.attempt, again.claimed_by, again.session_id) == (
        Status.PENDING,
        2,
        None,
        None,
    )


def test_a_workers_target_takes_no_template() -> None:
    with pytest.raises(ValueError, match=r"reviewers\.template: a workers target has no"):
        parse_targets({"reviewers": {"workers": True, "template": "aider"}})
    with pytest.raises(ValueError, match="or is workers: true"):
        parse_targets({"builder": {"codebases": ["x"]}})
    with pytest.raises(ValueError, match="workers: expected true or false"):
        parse_targets({"r": {"workers": "yes"}})


def test_creating_for_a_workers_target_refuses_a_template(h: Harness) -> None:
    with pytest.raises(ParameterError, match="workers target"):
        h.create("x", queue=QueueFields(target="reviewers"))


def test_workers_claim_by_codebase(h: Harness) -> None:
    api = queued(h, "api work", codebase="api-server", priority=60)
    web = queued(h, "web work", target="web", codebase="web-app", priority=90)
    glob = queued(h, "global work", codebase="global", priority=40)
    reg = queued(h, "registration", codebase="__pending__", priority=10)
    h.engine.register_worker("api-worker", ["api-server"], [], owner="bob")
    h.engine.register_worker("global-worker", ["global"], ["reviewers"], owner="carol")
    # api-worker: api first (60), then the registration task (any worker); never web/global
    got = [h.engine.claim_next("api-worker", user="bob", session_id=f"a{i}") for i in range(3)]
    assert [t.id if t else None for t in got] == [api.id, reg.id, None]
    nxt = h.engine.claim_next("global-worker", user="carol", session_id="g")
    assert nxt is not None and nxt.id == glob.id and nxt.worker == "global-worker"
    assert h.engine.claim_next("global-worker", user="carol", session_id="g2") is None
    assert h.task(web.id).status == Status.PENDING
    with pytest.raises(TaskNotFound):
        h.engine.claim_next("api-worker", user="carol", session_id="x")  # not hers
    with pytest.raises(TaskConflict, match="registered by another user"):
        h.engine.register_worker("api-worker", [], [], owner="carol")
    with pytest.raises(ParameterError, match="Unknown workers target"):
        h.engine.register_worker("w", [], ["nope"], owner="bob")
    listed = {w["name"]: w for w in h.engine.workers_view(None)}
    assert listed["api-worker"]["alive"] and listed["api-worker"]["codebases"] == ["api-server"]
    h.engine.worker_ttl_s = 0.0  # everyone is dead at once
    assert not any(w["alive"] for w in h.engine.workers_view(None))


def _claimers(h: Harness, url: str, n: int) -> list[Engine]:
    """n engines (not started), each on its own Store of the same database."""
    return [
        Engine(Store(url), h.backend, h.catalog(), h.bundler, targets=TARGETS) for _ in range(n)
    ]


def _race(task: Task, claimers: list[Engine]) -> tuple[list[str], list[str]]:
    """Every claimer claims `task` at once: the winning sessions, the losers' errors."""
    barrier = threading.Barrier(len(claimers))
    won: list[str] = []
    lost: list[str] = []

    def race(i: int, engine: Engine) -> None:
        barrier.wait()
        try:
            engine.claim(task.id, user=f"u{i}", session_id=f"session-{i}")
            won.append(f"session-{i}")
        except TaskConflict as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=race, args=(i, e)) for i, e in enumerate(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, lost


def test_twenty_concurrent_claimers_exactly_one_wins(
    tmp_path: Path, bridge_cache: Path, store_url: str
) -> None:
    with harness_at(tmp_path / "home", bridge_cache, store_url, targets=TARGETS) as h:
        claimers = _claimers(h, store_url, 20)
        try:
            for round_ in range(3):
                task = queued(h, f"contended {round_}")
                won, lost = _race(task, claimers)
                assert len(won) == 1, (won, lost)
                assert len(lost) == 19
                assert all(m == f"task {task.name} is already claimed by {won[0]}" for m in lost)
                stored = h.task(task.id)
                assert (stored.status, stored.session_id) == (Status.CLAIMED, won[0])
                claims = [e for e in h.store.events(task.id) if e["to_value"] == "claimed"]
                assert len(claims) == 1
        finally:
            for e in claimers:
                e.store.close()


def test_an_offer_is_accepted_rejected_or_runs_out(h: Harness) -> None:
    h.engine.register_worker("swarm-1", ["api-server"], [], owner="bob")
    with pytest.raises(ParameterError, match="No worker 'ghost'"):
        queued(h, "x", offer_to="ghost")
    with pytest.raises(ParameterError, match="Only a queue-only task"):
        h.create("x", queue=QueueFields(offer_to="swarm-1"))

    task = queued(h, "offered work", offer_to="swarm-1")
    offered = h.wait_status(task.id, Status.OFFERED)
    assert offered.offer_to == "swarm-1" and offered.offer_until
    with pytest.raises(TaskConflict, match="offered to worker swarm-1"):
        h.engine.claim(task.id, user="carol", session_id="c")
    with pytest.raises(TaskConflict, match="not to one of yours"):
        h.engine.accept_offer(task.id, user="carol", session_id="c")
    with pytest.raises(IllegalTransition, match="must accept it first"):
        h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    accepted = h.engine.accept_offer(task.id, user="bob", session_id="b1")
    assert (accepted.status, accepted.worker, accepted.offer_to) == (
        Status.CLAIMED,
        "swarm-1",
        None,
    )

    declined = queued(h, "declined work", offer_to="swarm-1")
    h.wait_status(declined.id, Status.OFFERED)
    back = h.engine.reject_offer(declined.id, user="bob", reason="busy")
    assert (back.status, back.offer_to) == (Status.PENDING, None)
    reasons = [e["reason"] for e in h.store.events(declined.id) if e["kind"] == "status"]
    assert reasons[-1] == "worker swarm-1 rejected the offer: busy"
    # back in the pool: it is not offered again, and anyone may claim it
    assert h.engine.claim(declined.id, user="carol", session_id="c").status == Status.CLAIMED

    lapsed = queued(h, "lapsed offer", offer_to="swarm-1")
    h.wait_status(lapsed.id, Status.OFFERED)
    h.store.record(lapsed.id, "test", actor="test", offer_until="2000-01-01T00:00:00.000Z")
    again = h.wait_status(lapsed.id, Status.PENDING)
    assert again.offer_to is None
    last = [e for e in h.store.events(lapsed.id) if e["kind"] == "status"][-1]
    assert last["actor"] == "engine" and "the offer to worker swarm-1 ran out" in last["reason"]


def test_an_offer_waits_for_dependencies_and_a_workers_next_takes_its_offers_first(
    h: Harness,
) -> None:
    h.engine.register_worker("swarm-2", [], [], owner="bob")
    first = queued(h, "first", priority=90)
    offered = queued(h, "offered later", depends_on=(first.id,), offer_to="swarm-2", priority=10)
    h.wait_task(offered.id, lambda t: t.blocked, "blocked")
    assert h.task(offered.id).status == Status.PENDING  # not offered while it waits
    h.engine.claim(first.id, user="carol", session_id="c")
    h.engine.complete(first.id, parse_completion({"outcome": "SUCCESS"}))
    h.wait_status(offered.id, Status.OFFERED)
    higher = queued(h, "higher, not offered", priority=99)
    got = h.engine.claim_next("swarm-2", user="bob", session_id="n")
    assert got is not None and got.id == offered.id  # its offer before the pool
    nxt = h.engine.claim_next("swarm-2", user="bob", session_id="n")
    assert nxt is not None and nxt.id == higher.id
