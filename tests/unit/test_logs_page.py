"""The logs path of a flood: the store's batched insert and the API's hand-written JSON."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server.logjson import entries_json, entry_json, page_json
from provisioner.store.records import LOG_KEYS
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve
from tests.stored import stored_task

AWKWARD = [
    "flood line 1",
    "",
    'quotes " and \\ backslash',
    "control \x00 \x1f \x7f \n\t\r",
    "unicode \u2713 \u00e9 \U0001f600",
    "lone surrogate \ud800",
    "</script> & <b>",
]


def _task(store: Store) -> Task:
    return stored_task(store, Status.ACTIVE)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(sqlite_url(tmp_path / "db.sqlite"))
    yield s
    s.close()


@pytest.mark.parametrize("content", AWKWARD)
@pytest.mark.parametrize(
    "row",
    [
        (7, 3, "output", None, "2026-01-01T00:00:00.000Z", None, None, None),
        (8, None, "system", None, "t", None, "setup", None),
        (9, 4, "input", None, "t", "p-1", "agent", "taken"),
        (10, True, "output", None, "t", 5, 1.5, ["odd"]),  # odd types: json.dumps decides
    ],
)
def test_an_entry_is_the_text_json_dumps_gives(row: tuple[Any, ...], content: str) -> None:
    row = (*row[:3], content, *row[4:])
    as_dict = dict(zip(LOG_KEYS, row, strict=True))
    assert entry_json(row) == json.dumps(as_dict, separators=(",", ":"))
    assert json.loads(entry_json(row)) == as_dict


def test_a_page_has_the_logs_first_then_the_rest() -> None:
    rows = [(i, i, "output", AWKWARD[i % len(AWKWARD)], "t", None, None, None) for i in range(9)]
    rest = {"last_id": 8, "status": "active", "state": "idle", "pending_prompts": []}
    page = page_json(entries_json(rows), rest)
    assert page.isascii()
    as_dicts = [dict(zip(LOG_KEYS, r, strict=True)) for r in rows]
    assert json.loads(page) == {"logs": as_dicts, **rest}
    assert json.loads(page_json(entries_json([]), {})) == {"logs": []}


def test_sqlite_writes_the_same_entries_as_python(store: Store) -> None:
    task = _task(store)
    store.add_prompt(task.id, "p-1", "do it")
    store.sync_prompts(task.id, [{"id": "p-1", "state": "delivered"}])
    awkward = [text for text in AWKWARD if "\ud800" not in text]  # not storable in SQLite
    entries = [{"seq": i + 1, "type": "output", "content": c} for i, c in enumerate(awkward)]
    entries.append({"seq": 99, "type": "input", "content": "do it", "prompt_id": "p-1"})
    entries.append({"seq": 100, "type": "output", "content": "nul \x00 in", "source": "agent"})
    store.append_logs(task.id, entries)
    store.system_log(task.id, "provisioned")
    rows = store.log_rows(task.id)
    written = store.log_rows_json(task.id)
    assert written is not None
    text, ids = written
    assert json.loads(text) == json.loads(entries_json(rows))
    assert ids == [r[0] for r in rows]
    assert json.loads(text)[-3]["delivery"] == "delivered"
    some = store.log_rows_json(task.id, after=ids[2], limit=2)
    assert some is not None and some[1] == ids[3:5]
    assert json.loads(some[0]) == json.loads(entries_json(rows[3:5]))
    assert store.log_rows_json(task.id, after=ids[-1]) == ("[]", [])


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250])
def test_batches_around_a_statements_rows_are_stored_whole_once(store: Store, n: int) -> None:
    task = _task(store)
    batch = [{"seq": i, "type": "output", "content": f"line {i}"} for i in range(1, n + 1)]
    assert store.append_logs(task.id, batch) == n
    assert store.append_logs(task.id, batch) == 0
    # overlapping the end: only the new ones, in order
    more = [
        {"seq": i, "type": "output", "content": f"more {i}"} for i in range(max(1, n - 5), n + 150)
    ]
    assert store.append_logs(task.id, more) == 149
    rows = store.logs(task.id, limit=1000)
    assert [r["seq"] for r in rows] == list(range(1, n + 150))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert rows[-1]["content"] == f"more {n + 149}"
    assert store.log_rows(task.id, after=rows[-3]["id"]) == [
        tuple(r[k] for k in LOG_KEYS) for r in rows[-2:]
    ]


@pytest.fixture
def served(tmp_path: Path, store: Store) -> Iterator[tuple[str, Store]]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    engine = Engine(
        store, DockerBackend("test", dead), Catalog(), BridgeBundler(tmp_path / "cache")
    )
    with serve(engine, tmp_path) as base:
        yield base, store


def test_the_logs_api_keeps_its_json_shape(served: tuple[str, Store], tmp_path: Path) -> None:
    base, store = served
    task = _task(store)
    store.add_prompt(task.id, "p-1", "do it")
    store.add_prompt(task.id, "p-2", "then this")
    store.sync_prompts(task.id, [{"id": "p-1", "state": "taken", "taken_at": "t"}])
    store.append_logs(
        task.id,
        [
            {"seq": 1, "type": "input", "content": "do it", "prompt_id": "p-1", "time": "t1"},
            {"seq": 2, "type": "output", "content": AWKWARD[4], "source": "agent"},
        ],
    )
    store.system_log(task.id, "provisioned")
    url = f"{base}/api/dockyard/v1/tasks/{task.id}/logs"
    page = httpx.get(url, headers=admin_headers(tmp_path), timeout=HTTP_TIMEOUT).json()
    first, second, third = page["logs"]
    assert first == {
        "id": first["id"],
        "type": "input",
        "content": "do it",
        "time": "t1",
        "seq": 1,
        "prompt_id": "p-1",
        "delivery": "taken",
        "source": None,
    }
    assert (second["content"], second["source"], second["delivery"]) == (AWKWARD[4], "agent", None)
    assert (third["type"], third["seq"], third["content"]) == ("system", None, "provisioned")
    assert page["last_id"] == third["id"]
    assert (page["status"], page["state"]) == ("active", task.state)
    assert [p["id"] for p in page["pending_prompts"]] == ["p-2"]
    assert set(page["pending_prompts"][0]) == {
        "id",
        "content",
        "state",
        "created_at",
        "delivered_at",
        "taken_at",
        "reason",  # why a prompt failed
    }
    later = httpx.get(
        url,
        headers=admin_headers(tmp_path),
        params={"after": first["id"], "limit": 1},
        timeout=HTTP_TIMEOUT,
    ).json()
    assert [e["id"] for e in later["logs"]] == [second["id"]]
    assert later["last_id"] == second["id"]
    empty = httpx.get(
        url, headers=admin_headers(tmp_path), params={"after": third["id"]}, timeout=HTTP_TIMEOUT
    ).json()
    assert empty["logs"] == [] and empty["last_id"] == third["id"]


def test_a_waiting_reader_gets_lines_as_they_are_stored(
    served: tuple[str, Store], tmp_path: Path
) -> None:
    base, store = served
    task = _task(store)
    url = f"{base}/api/dockyard/v1/tasks/{task.id}/logs"

    def later() -> None:
        time.sleep(0.3)
        store.append_logs(task.id, [{"seq": 1, "type": "output", "content": "late"}])

    threading.Thread(target=later, daemon=True).start()
    started = time.monotonic()
    page = httpx.get(
        url, headers=admin_headers(tmp_path), params={"wait": 20}, timeout=HTTP_TIMEOUT
    ).json()
    assert [e["content"] for e in page["logs"]] == ["late"]
    # woken: answered long before the 20 s it was allowed to hold (no speed test)
    assert time.monotonic() - started < 15


def test_without_sqlites_json_the_api_writes_the_same_page(
    served: tuple[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, store = served
    task = _task(store)
    store.append_logs(task.id, [{"seq": 1, "type": "output", "content": AWKWARD[4]}])
    url = f"{base}/api/dockyard/v1/tasks/{task.id}/logs"
    by_sqlite = httpx.get(url, headers=admin_headers(tmp_path), timeout=HTTP_TIMEOUT).json()
    monkeypatch.setattr(store, "log_rows_json", lambda *args: None)
    assert httpx.get(url, headers=admin_headers(tmp_path), timeout=HTTP_TIMEOUT).json() == by_sqlite
