"""GET /metrics on a real server (fake backend): what a task's life shows, who may read it,
the gauges two servers sharing a database agree on, and the tokenless separate bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from provisioner import metrics
from provisioner.errors import DockyardError
from provisioner.lifecycle import Status
from provisioner.server.metrics_api import (
    MetricsListener,
    StoreCollector,
    metrics_registry,
    parse_bind,
)
from provisioner.store.store import Store, sqlite_url
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_headers, free_port, serve
from tests.stored import stored_task

__all__ = ["bridge_cache"]

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, of every sample in a scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def count(of: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """The sum of all samples called `name` (a histogram's _count over its labels)."""
    return sum(v for (n, _), v in of.items() if n == name)


@pytest.fixture
def served(tmp_path: Path, bridge_cache: Path) -> Iterator[tuple[Harness, str]]:
    with harness_at(tmp_path / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        yield h, url


def scrape(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(url + "/metrics", headers=headers, timeout=HTTP_TIMEOUT)


def test_a_task_to_idle_and_a_prompt_taken_show_in_the_metrics(
    served: tuple[Harness, str],
) -> None:
    h, url = served
    before = samples(scrape(url, admin_headers(h.home)).text)
    task = h.create("first")
    h.wait_idle(task.id)
    sent = h.engine.send(task.id, "again")
    taken = lambda: (h.store.prompt(sent["prompt_id"]) or {}).get("state") == "taken"  # noqa: E731
    wait_until(taken, what="the prompt taken")
    wait_until(lambda: h.task(task.id).state == "idle", what="idle again")
    reply = scrape(url, admin_headers(h.home))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    after = samples(reply.text)
    active = ("dockyard_tasks", (("state", "idle"), ("status", "active"), ("template", "scripted")))
    assert after[active] == 1
    node = ("dockyard_workspaces", (("node", socket.gethostname()),))
    assert after[node] == 1
    for name in (
        "dockyard_create_to_idle_seconds_count",
        "dockyard_send_to_taken_seconds_count",
        "dockyard_follower_lag_seconds_count",
    ):
        assert count(after, name) > count(before, name), name
    phases = {
        dict(labels)["phase"]
        for (n, labels), v in after.items()
        if n == "dockyard_phase_duration_seconds_count" and v > before.get((n, labels), 0)
    }
    assert {"create", "start", "agent"} <= phases


def test_who_may_read_metrics(served: tuple[Harness, str]) -> None:
    h, url = served
    h.store.create_user("alice", "member")
    member, _ = h.store.create_token("alice", "laptop", None)
    h.store.create_user("prometheus", "metrics")
    scraper, _ = h.store.create_token("prometheus", "scraper", None)
    assert scrape(url, {}).status_code == 401
    assert scrape(url, {"Authorization": "Bearer dy_" + "x" * 43}).status_code == 401
    refused = scrape(url, {"Authorization": f"Bearer {member}"})
    assert refused.status_code == 403 and "metrics" in refused.json()["hint"]
    as_scraper = {"Authorization": f"Bearer {scraper}"}
    assert scrape(url, as_scraper).status_code == 200
    # a scraper's token reaches nothing else: not the tasks, not the users, not a write
    for method, path in (
        ("GET", "/api/v2/tasks"),
        ("GET", "/api/v2/users"),
        ("POST", "/api/v2/tasks"),
        ("GET", "/metrics/../api/v2/tasks"),
        ("POST", "/metrics"),
        ("GET", "/openapi.json"),
    ):
        reply = httpx.request(method, url + path, headers=as_scraper, json={}, timeout=HTTP_TIMEOUT)
        assert reply.status_code in (403, 404), (method, path, reply.status_code)
        assert "dockyard_tasks" not in reply.text


def test_servers_sharing_a_database_report_the_same_gauges(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    one, two = Store(url), Store(url)
    try:
        stored_task(one, Status.PENDING, template="scripted", target="gpu")
        stored_task(two, Status.PENDING, template="scripted")
        stored_task(one, Status.ACTIVE, template="other", state="working", workspace={})
        stored_task(two, Status.ACTIVE, template="other", workspace={"node": "worker-2"})

        def scraped(store: Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            registry = CollectorRegistry()
            registry.register(StoreCollector(store, node="host-1"))
            return samples(generate_latest(registry).decode())

        first, second = scraped(one), scraped(two)
        assert first == second
        assert first[("dockyard_queue_depth", (("target", "gpu"),))] == 1
        assert first[("dockyard_queue_depth", (("target", "default"),))] == 1
        assert first[("dockyard_workspaces", (("node", "host-1"),))] == 1
        assert first[("dockyard_workspaces", (("node", "worker-2"),))] == 1
        assert first[("dockyard_webhook_delivery_failures", ())] == 0
        working = (("state", "working"), ("status", "active"), ("template", "other"))
        assert first[("dockyard_tasks", working)] == 1
    finally:
        one.close()
        two.close()


def test_a_lost_compare_and_set_counts_as_a_claim_conflict(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        task = stored_task(store, Status.PENDING)
        store.transition(task.id, Status.PENDING, Status.INITIALIZING, actor="a", phase="image")
        before = metrics.CLAIM_CONFLICTS._value.get()
        with pytest.raises(Exception, match="changed meanwhile"):
            store.transition(task.id, Status.PENDING, Status.INITIALIZING, actor="b")
        assert metrics.CLAIM_CONFLICTS._value.get() == before + 1
    finally:
        store.close()


def test_the_separate_bind_serves_metrics_without_a_token(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    listener = MetricsListener(registry, "127.0.0.1", free_port())
    listener.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=HTTP_TIMEOUT)
        assert reply.status_code == 200 and "dockyard_queue_depth" in reply.text
    finally:
        listener.stop()
        store.close()


def test_the_server_starts_the_bind_its_config_names(tmp_path: Path, bridge_cache: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"metrics: {{bind: '127.0.0.1:{port}'}}\n")
    with harness_at(home, bridge_cache) as h, serve(h.engine, h.home):
        reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=HTTP_TIMEOUT)
        assert reply.status_code == 200 and "dockyard_tasks" in reply.text


@pytest.mark.parametrize(
    "value",
    ["", "9464", ":9464", "host:", "host:99999", "host:-1", "h;rm -rf /:80", "../x:80",
     "h\nx:80", "a b:80", None],
)  # fmt: skip
def test_a_bad_bind_is_refused(value: object) -> None:
    with pytest.raises(DockyardError):
        parse_bind(value, "config.yaml: metrics.bind")


def test_a_good_bind_parses() -> None:
    assert parse_bind("127.0.0.1:9464", "x") == ("127.0.0.1", 9464)
    assert parse_bind("[::1]:9464", "x") == ("::1", 9464)


def test_the_grafana_dashboard_queries_only_metrics_that_exist(tmp_path: Path) -> None:
    import json
    import re

    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        scraped = generate_latest(metrics_registry(store)).decode()
    finally:
        store.close()
    exposed = {s for s in re.findall(r"^# TYPE (\S+)", scraped, re.M)}
    exposed |= {f"{n}{suffix}" for n in exposed for suffix in ("_bucket", "_count", "_total")}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"dockyard_[a-z_]+", target["expr"])
    }
    assert used and used <= exposed, used - exposed


def test_an_admin_makes_a_metrics_user_with_the_cli(served: tuple[Harness, str]) -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from tests.serving import admin_env

    h, url = served
    env = admin_env(url, h.home)
    made = CliRunner().invoke(cli, ["user", "create", "prom", "--role", "metrics"], env=env)
    assert made.exit_code == 0 and "(metrics)" in made.output, made.output
    token = CliRunner().invoke(cli, ["token", "create", "--user", "prom", "-q"], env=env)
    assert scrape(url, {"Authorization": f"Bearer {token.output.strip()}"}).status_code == 200
    bad = CliRunner().invoke(cli, ["user", "create", "x", "--role", "root"], env=env)
    assert bad.exit_code == 2
