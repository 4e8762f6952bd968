"""A flood of badly signed deliveries costs a counter, not HMACs and database rows: per
trigger and per source, a 429 past the limit (checked before the signature or the
trigger's lookup), a few rows recorded one by one and one bounded summary per flood."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner import trigger_limits
from provisioner.server import triggers_api
from provisioner.trigger_limits import FLUSH_S, SOURCES_SHOWN, WINDOW_S, BadDeliveries
from provisioner.triggers import github_signature
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve

__all__ = ["bridge_cache"]

SECRET = "s3cret-s3cret-s3cret"


# -- the pure rules -----------------------------------------------------------------------


def test_a_flood_is_a_few_rows_and_one_summary_then_429() -> None:
    bad = BadDeliveries(per_trigger=6, per_source=100, record_each=2)
    kinds = [bad.failed("t", f"10.0.0.{i}", "wrong", 100.0 + i) for i in range(6)]
    assert kinds == [True, True, False, False, False, False]
    flood = bad.due("t", 106.0)
    assert flood is not None and flood.rejected == 4
    assert bad.due("t", 106.0) is None  # one writer at a time
    bad.written(flood, 42)
    assert bad.trigger_blocked("t", "10.0.0.9", 107.0) > 0
    assert bad.due("t", 107.0) is None  # rewritten at most every FLUSH_S
    assert bad.due("t", 106.0 + FLUSH_S) is flood and flood.refused == 1
    bad.written(flood, None)
    assert flood.row_id == 42
    # a minute without bad deliveries: the next is recorded on its own again
    assert bad.trigger_blocked("t", "x", 107.0 + WINDOW_S) == 0
    assert bad.failed("t", "x", "wrong", 108.0 + WINDOW_S) is True


def test_the_summary_and_the_counters_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trigger_limits, "MAX_KEYS", 50)
    monkeypatch.setattr(trigger_limits, "FLOOD_SOURCES", 200)
    bad = BadDeliveries(per_trigger=10**6, per_source=10**6, record_each=0)
    for i in range(500):
        bad.failed("t", f"10.1.{i // 250}.{i % 250}", "x" * 5000, float(i) / 100)
    flood = bad.due("t", 10.0)
    assert flood is not None and flood.rejected == 500
    text = flood.summary()
    assert len(text) <= 2000 and f"and {len(flood.sources) - SOURCES_SHOWN} more" in text
    assert len(flood.sources) <= 200
    # a flood of trigger names and sources: forgotten, rather than grown
    for i in range(500):
        bad.failed(f"name-{i}", f"s-{i}", "wrong", 20.0)
    assert len(bad._floods) <= 50 and len(bad._triggers._seen) <= 50
    assert len(bad._sources._seen) <= 50


def test_a_source_is_limited_across_triggers() -> None:
    bad = BadDeliveries(per_trigger=100, per_source=3, record_each=100)
    bad.unknown("1.2.3.4", 0.0)
    bad.failed("a", "1.2.3.4", "wrong", 1.0)
    assert bad.source_blocked("1.2.3.4", 2.0) == 0
    bad.failed("b", "1.2.3.4", "wrong", 2.0)
    assert bad.source_blocked("1.2.3.4", 3.0) == pytest.approx(WINDOW_S - 3.0)
    assert bad.source_blocked("5.6.7.8", 3.0) == 0
    assert bad.source_blocked("1.2.3.4", WINDOW_S + 0.5) == 0


# -- on a real server -----------------------------------------------------------------------


@pytest.fixture
def site(
    tmp_path: Path, bridge_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Harness, str]]:
    monkeypatch.setattr(trigger_limits, "BAD_PER_TRIGGER", 8)
    monkeypatch.setattr(trigger_limits, "BAD_PER_SOURCE", 12)
    monkeypatch.setattr(trigger_limits, "RECORD_EACH", 3)
    monkeypatch.setattr(trigger_limits, "FLUSH_S", 0.0)  # its summary rewritten each time
    with harness_at(tmp_path / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        yield h, url


def deliver(url: str, name: str, secret: str, source: str = "127.0.0.1") -> httpx.Response:
    body = json.dumps({"prompt": "hello"}).encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": github_signature(secret, body),
    }
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT) as c:
        return c.post(f"{url}/api/dockyard/v1/triggers/{name}", content=body, headers=headers)


def test_a_flood_of_bad_signatures_is_refused_and_summed_up(
    site: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, url = site
    checks: list[Any] = []
    real = triggers_api.check_delivery
    monkeypatch.setattr(triggers_api, "check_delivery", lambda *a: checks.append(1) or real(*a))
    api = f"{url}/api/dockyard/v1"
    for name in ("flooded", "quiet"):
        body = {"name": name, "secret": SECRET, "template": "scripted"}
        made = httpx.post(
            f"{api}/triggers", json=body, headers=admin_headers(h.home), timeout=HTTP_TIMEOUT
        )
        assert made.status_code == 201, made.text
    flooded = h.store.trigger("flooded", None)

    codes = [deliver(url, "flooded", "w" * 20).status_code for _ in range(8)]
    assert codes == [401] * 8
    refused = deliver(url, "flooded", "w" * 20)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert len(checks) == 8  # the refused one was not checked
    # from another address, the flooded trigger refuses even a good signature
    assert deliver(url, "flooded", SECRET, source="127.0.0.2").status_code == 429
    rows = h.store.trigger_deliveries(flooded["id"])
    assert sorted(r["outcome"] for r in rows) == ["limited"] + ["rejected"] * 3
    [summary] = [r for r in rows if r["outcome"] == "limited"]
    assert "5 more rejected and 2 refused (429)" in summary["reason"]
    assert "127.0.0.1 (6), 127.0.0.2 (1)" in summary["reason"]

    # the same source guessing names: limited across triggers, before any lookup
    for i in range(4):
        assert deliver(url, f"guess-{i}", "w" * 20).status_code == 404
    limited = deliver(url, "quiet", SECRET)
    assert limited.status_code == 429 and "127.0.0.1" in limited.json()["detail"]
    # another source is heard: a well signed delivery makes its task
    assert deliver(url, "quiet", SECRET, source="127.0.0.2").status_code == 201
    assert h.store.trigger_deliveries(h.store.trigger("quiet", None)["id"])[0]["outcome"] == (
        "accepted"
    )
