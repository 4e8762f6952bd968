"""Claims and workers through the real HTTP server: 20 concurrent claimers over HTTP get
one 200 and nineteen 409s naming the winner; bad leases and sessions are 400s; the
holder (not the owner) completes the task; workers route by codebase."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.mcp_client import ToolCaller, text_of
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.unit.test_claims import TARGETS, queued

__all__ = ["bridge_cache"]


@dataclass
class Api:
    url: str
    h: Harness
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)


@pytest.fixture
def api(tmp_path: Path, bridge_cache: Path) -> Iterator[Api]:
    with (
        harness_at(tmp_path / "home", bridge_cache, targets=TARGETS) as h,
        serve(h.engine, h.home) as url,
    ):
        tokens = {"admin": admin_token(h.home)}
        for i in range(20):
            name = f"user{i}"
            h.store.create_user(name, "member")
            tokens[name], _ = h.store.create_token(name, "laptop", None)
        yield Api(url, h, tokens)


def test_twenty_claimers_over_http_one_wins(api: Api) -> None:
    task = queued(api.h, "contended over http", owner="user0")
    barrier = threading.Barrier(20)
    replies: list[httpx.Response] = []

    def claim(i: int) -> None:
        barrier.wait()
        body = {"session_id": f"session-{i}", "lease_s": 60}
        replies.append(api.call(f"user{i}", "POST", f"/api/v2/tasks/{task.id}/claim", json=body))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] + [409] * 19, [r.text for r in replies]
    winner = next(r.json() for r in replies if r.status_code == 200)
    assert winner["status"] == "claimed" and winner["claim_until"]
    for r in replies:
        if r.status_code == 409:
            expected = f"task {task.name} is already claimed by {winner['session_id']}"
            assert r.json()["detail"] == expected


def test_the_holder_starts_renews_and_completes_what_it_claimed(api: Api) -> None:
    task = queued(api.h, "do it", owner="user0")
    path = f"/api/v2/tasks/{task.id}"
    assert api.call("user1", "POST", path + "/claim", json={"session_id": "s1"}).status_code == 200
    other = api.call("user2", "POST", path + "/start", json={"session_id": "s2"})
    assert other.status_code == 409 and "already claimed by s1" in other.json()["detail"]
    started = api.call("user1", "POST", path + "/start", json={"session_id": "s1"})
    assert started.json()["status"] == "active" and started.json()["state"] == "working"
    renewed = api.call("user1", "POST", path + "/claim/renew", json={"session_id": "s1"})
    assert renewed.status_code == 200
    # a stranger cannot end it; its holder can, and the owner sees the outcome
    stranger = api.call("user2", "POST", path + "/complete", json={"outcome": "SUCCESS"})
    assert stranger.status_code == 404
    done = api.call(
        "user1", "POST", path + "/complete", json={"outcome": "SUCCESS", "output": "ok"}
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    seen = api.call("user0", "GET", path).json()
    assert (seen["status"], seen["claimed_by"], seen["output"]) == ("completed", "user1", "ok")


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "s", "lease_s": 0},
        {"session_id": "s", "lease_s": 1e12},
        {"session_id": "s", "lease_s": "soon"},
        {"session_id": "s", "lease_s": None, "extra": 1},
        {"session_id": ""},
        {"session_id": "a" * 500},
        {"session_id": 5},
        {},
    ],
)
def test_bad_claims_are_400s(api: Api, body: dict[str, Any]) -> None:
    task = queued(api.h, "x", owner="user0")
    reply = api.call("user1", "POST", f"/api/v2/tasks/{task.id}/claim", json=body)
    assert reply.status_code == 400, reply.text
    assert api.h.task(task.id).status == Status.PENDING


def test_a_blocked_task_is_a_409_naming_what_it_waits_for(api: Api) -> None:
    first = queued(api.h, "first", owner="user0")
    second = queued(api.h, "second", owner="user0", depends_on=(first.id,))
    line = api.call("user0", "GET", "/api/v2/queue").json()["queue"]
    assert [(e["name"], e["waiting_for"]) for e in line] == [
        (first.name, "worker"),
        (second.name, "dependencies"),
    ]
    reply = api.call("user1", "POST", f"/api/v2/tasks/{second.id}/claim", json={"session_id": "s"})
    assert reply.status_code == 409
    assert f"waiting for dependencies: {first.name} (pending)" in reply.json()["detail"]


def test_workers_register_beat_and_claim_by_codebase(api: Api) -> None:
    web = queued(api.h, "web", owner="user0", target="web", codebase="web-app")
    body = {"name": "web-1", "codebases": ["web-app"], "targets": ["web"]}
    registered = api.call("user1", "POST", "/api/v2/workers", json=body)
    assert registered.status_code == 200 and registered.json()["alive"]
    taken = api.call("user2", "POST", "/api/v2/workers", json=body)
    assert taken.status_code == 409
    bad = api.call("user1", "POST", "/api/v2/workers", json={"name": "Bad Name"})
    assert bad.status_code == 400
    beat = api.call("user1", "POST", "/api/v2/workers/web-1/heartbeat")
    assert beat.status_code == 200
    assert api.call("user2", "POST", "/api/v2/workers/web-1/heartbeat").status_code == 404
    mine = api.call("user1", "GET", "/api/v2/workers").json()["workers"]
    assert [w["name"] for w in mine] == ["web-1"]
    assert api.call("user2", "GET", "/api/v2/workers").json()["workers"] == []
    nxt = api.call("user1", "POST", "/api/v2/workers/web-1/next", json={"session_id": "w"})
    assert nxt.json()["task"]["id"] == web.id and nxt.json()["task"]["worker"] == "web-1"
    empty = api.call("user1", "POST", "/api/v2/workers/web-1/next", json={"session_id": "w"})
    assert empty.status_code == 200 and empty.json()["task"] is None
    targets = api.call("user1", "GET", "/api/v2/targets").json()["targets"]
    assert {t["name"]: t["workers"] for t in targets} == {"reviewers": True, "web": True}


def test_mcp_claim_task_two_sessions_one_wins_the_other_reads_who(api: Api) -> None:
    task = queued(api.h, "claimed over mcp", owner="user0")
    callers = [ToolCaller(api.url, api.tokens[f"user{i}"]) for i in (1, 2)]
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def claim(i: int) -> None:
        barrier.wait()
        reply = callers[i].call("claim_task", taskId=task.id, sessionId=f"builder-session-{i}")
        results[f"builder-session-{i}"] = reply

    threads = [threading.Thread(target=claim, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [s for s, r in results.items() if not r.is_error]
    assert len(won) == 1, results
    (lost,) = [r for r in results.values() if r.is_error]
    assert f"task {task.name} is already claimed by {won[0]}" in text_of(lost)
    # the winner (not the task's owner) completes it with its cost
    holder = callers[int(won[0][-1])]
    done = holder.ok(
        "complete_task", taskId=task.id, completed_status="SUCCESS", tokens_in=10, cost_usd=0.5
    )
    assert done["status"] == "completed" and done["claimed_by"] in ("user1", "user2")
    assert api.h.task(task.id).cost_usd == 0.5


def test_mcp_workers_register_and_claim_next(api: Api) -> None:
    caller = ToolCaller(api.url, api.tokens["user3"])
    web = queued(api.h, "web over mcp", owner="user0", target="web", codebase="web-app")
    missing = caller.refused("claim_next", worker="mcp-web", sessionId="m1")
    assert "worker 'mcp-web' not found: register it first" in missing
    shown = caller.ok("register_worker", name="mcp-web", codebases=["web-app"])
    assert shown["alive"] and shown["owner"] == "user3"
    assert "Invalid worker name" in caller.refused("register_worker", name="Bad Name")
    got = caller.ok("claim_next", worker="mcp-web", sessionId="m1", lease_s=60)
    assert got["task"]["taskId"] == web.id and got["task"]["session_id"] == "m1"
    assert caller.ok("claim_next", worker="mcp-web", sessionId="m1")["task"] is None


def test_the_cli_claims_starts_completes_and_runs_workers(api: Api, tmp_path: Path) -> None:
    env = {
        "DOCKYARD_URL": api.url,
        "DOCKYARD_TOKEN": api.tokens["user1"],
        "DOCKYARD_HOME": str(tmp_path / "cli"),
    }

    def run(*args: str) -> str:
        result = CliRunner().invoke(dockyard, list(args), env=env)
        assert result.exit_code == 0, result.output
        return str(result.output)

    task = queued(api.h, "review it", owner="user0", codebase="api-server")
    shown = run("task", "claim", task.id, "--session", "cli-1", "--lease", "60")
    assert "claimed by user1 (session cli-1)" in shown
    again = CliRunner().invoke(dockyard, ["task", "claim", task.id, "--session", "x"], env=env)
    assert again.exit_code != 0 and f"task {task.name} is already claimed by cli-1" in again.output
    assert "active: working" in run("task", "start", task.id, "--session", "cli-1")
    run("task", "renew", task.id, "--session", "cli-1")
    run("task", "complete", task.id, "--outcome", "SUCCESS")
    assert api.h.task(task.id).status == Status.COMPLETED

    made = run("task", "create", "-q", "--target", "reviewers", "--codebase", "api-server", "more")
    other = api.h.task(made.strip())
    assert other.queue_only and other.status == Status.PENDING
    assert "alive" in run("worker", "register", "api-1", "--codebase", "api-server")
    assert "api-1" in run("worker", "list")
    assert "(workers)" in run("target", "list")
    assert "alive as of" in run("worker", "heartbeat", "api-1")
    assert other.name in run("worker", "next", "api-1", "--session", "w1")
    assert "nothing to claim" in run("worker", "next", "api-1", "--session", "w1")

    # offers: made to api-1 once created, accepted or rejected by its owner
    made = run("task", "create", "-q", "--target", "reviewers", "--offer-to", "api-1", "offer")
    offered = api.h.wait_status(made.strip(), Status.OFFERED)
    # a reason goes into the history: no escape sequence reaches a terminal from there
    path = f"/api/dockyard/v1/tasks/{offered.id}/offer/reject"
    hostile = api.call("user1", "POST", path, json={"reason": "busy\x1b]0;owned\x07"})
    assert hostile.status_code == 400 and "U+001B" in hostile.json()["detail"]
    assert "pending" in run("task", "reject", offered.id, "--reason", "busy")
    made = run("task", "create", "-q", "--target", "reviewers", "--offer-to", "api-1", "again")
    offered = api.h.wait_status(made.strip(), Status.OFFERED)
    path = f"/api/v2/tasks/{offered.id}/offer/accept"
    stranger = api.call("user2", "POST", path, json={"session_id": "s"})
    assert stranger.status_code == 409 and "not to one of yours" in stranger.json()["detail"]
    assert "claimed by user1 (session o1)" in run("task", "accept", offered.id, "--session", "o1")
