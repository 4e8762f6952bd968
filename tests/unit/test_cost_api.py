"""`dockyard cost` over GET /api/v2/cost on a real server (no Docker): members see their
own tasks' cost only, admins everyone's; usage reported as tokens is priced from the
server's pricing table; hostile queries are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.pricing import parse_pricing
from provisioner.queueing import Cost
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.stored import stored_task

PRICING = {"claude-sonnet-4-5": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}


@dataclass
class Served:
    url: str
    engine: Engine
    tokens: dict[str, str]

    def get(self, who: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.get(
            f"{self.url}/api/v2/cost", params=params, headers=headers, timeout=HTTP_TIMEOUT
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(
        store,
        DockerBackend("test", dead),
        Catalog(versions=VersionStore(tmp_path / "templates")),
        BridgeBundler(tmp_path / "cache"),
        pricing=parse_pricing(PRICING),
    )
    try:
        with serve(engine, tmp_path) as url:
            tokens = {"admin": admin_token(tmp_path)}
            for name in ("alice", "bob"):
                store.create_user(name, "member")
                tokens[name], _ = store.create_token(name, "laptop", None)
            yield Served(url, engine, tokens)
    finally:
        store.close()


def _spend(s: Served, owner: str, template: str, cost: Cost, **fields: Any) -> str:
    task = stored_task(s.engine.store, Status.ACTIVE, owner=owner, template=template, **fields)
    s.engine.add_usage(task.id, cost, actor="agent")
    return task.id


def test_members_see_their_own_cost_and_admins_everyones(served: Served, tmp_path: Path) -> None:
    s = served
    first = _spend(s, "alice", "claude-code", Cost(1_000_000, 100_000, None, "claude-sonnet-4-5"))
    # a later turn in tokens only, the model said before: priced as that model
    s.engine.add_usage(first, Cost(1_000_000, 0, None, None), actor="agent")
    _spend(s, "alice", "aider", Cost(1000, 10, 0.02, "openai/gpt-4o"))  # its own dollars
    _spend(s, "bob", "aider", Cost(5000, 50, None, "unpriced-model"))  # no price: $0
    _spend(s, "bob", "aider", Cost(1, 1, 9.0, None), created_at="2020-01-01T00:00:00.000Z")
    assert s.engine.store.get(first).cost_usd == 7.5  # 4.5 + 3.0

    alice = s.get("alice", by="template").json()
    assert alice["scope"] == "alice"
    assert alice["total"] == {"tasks": 2, "tokens_in": 2_001_000, "tokens_out": 100_010,
                              "cost_usd": 7.52}  # fmt: skip
    assert [(g["key"], g["tasks"]) for g in alice["groups"]] == [("claude-code", 1), ("aider", 1)]
    # a member asking for someone else's cost has no way to: there is no such parameter,
    # and grouping by owner shows only their own
    assert [g["key"] for g in s.get("bob", by="owner").json()["groups"]] == ["bob"]
    assert s.get("bob", owner="alice").json()["total"]["tasks"] == 2  # bob's, ignoring it
    everyone = s.get("admin", by="owner").json()
    assert everyone["scope"] == "all"
    assert {g["key"]: g["tasks"] for g in everyone["groups"]} == {"alice": 2, "bob": 2}
    recent = s.get("admin", since="7d").json()
    assert recent["total"]["tasks"] == 3 and recent["since"].endswith("Z")
    assert s.get("admin", since="2019-12-31", by="day").json()["groups"][-1]["key"] == "2020-01-01"

    env = {"DOCKYARD_URL": s.url, "DOCKYARD_TOKEN": s.tokens["alice"],
           "DOCKYARD_HOME": str(tmp_path / "cli")}  # fmt: skip
    table = CliRunner().invoke(dockyard, ["cost", "--by", "model"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["MODEL", "TASKS", "TOKENS", "IN", "TOKENS", "OUT", "COST"]
    assert lines[1].split() == ["claude-sonnet-4-5", "1", "2,000,000", "100,000", "$7.50"]
    assert lines[3].split() == ["total", "2", "2,001,000", "100,010", "$7.52"]
    assert "tasks of alice" in table.output
    as_json = CliRunner().invoke(dockyard, ["cost", "--since", "1d", "-o", "json"], env=env)
    assert json.loads(as_json.output)["total"]["tasks"] == 2


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"since": "yesterday"}, "Invalid since"),
        ({"since": "-7d"}, "Invalid since"),
        ({"since": "99999d"}, "Invalid since"),
        ({"since": "2999-01-01"}, "in the future"),
        ({"since": "x" * 41}, "since"),
        ({"by": "prompt"}, "Invalid grouping"),
        ({"by": "owner; drop table tasks"}, "by"),
    ],
)
def test_hostile_queries_are_refused(served: Served, params: dict[str, str], says: str) -> None:
    reply = served.get("alice", **params)
    assert reply.status_code == 400 and says in reply.text, reply.text


def test_the_cli_refuses_an_unknown_grouping_before_asking(tmp_path: Path) -> None:
    result = CliRunner().invoke(dockyard, ["cost", "--by", "prompt"],
                                env={"DOCKYARD_URL": "http://127.0.0.1:9"})  # fmt: skip
    assert result.exit_code == 2 and "'prompt' is not one of" in result.output
