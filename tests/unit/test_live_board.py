"""The dashboard's stream re-reads only the tasks that changed (issue 14): the pure diff
(live_board.board_events), then a real server: a change in this process is one row
event and one read of that task; another process's change (a second Store on the same
SQLite file) and deletions still reach the board through the periodic full read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.live_board import Shown, board_events
from provisioner.model import Task
from provisioner.server import dashboard_api
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.serving import serve
from tests.stored import new_task, stored_task

# -- the pure diff ------------------------------------------------------------------------


def _board(*tasks: Task) -> dict[str, Shown]:
    shown: dict[str, Shown] = {}
    board_events(shown, {t.id: t for t in tasks}, None)
    return shown


def test_a_full_read_sends_only_rows_that_changed_and_removes_the_gone() -> None:
    a, b, c = (new_task(Status.PAUSED, name=n) for n in ("a", "b", "c"))
    shown = _board(a, b, c)
    moved = replace(b, priority=90)
    events = board_events(shown, {a.id: a, moved.id: moved}, None)
    assert events == [("task", moved.public()), ("removed", {"id": c.id})]
    assert set(shown) == {a.id, b.id} and shown[b.id].task == moved
    assert board_events(shown, {a.id: a, moved.id: moved}, None) == []  # nothing new


def test_a_partial_read_removes_only_what_it_looked_for() -> None:
    a, b = new_task(name="a"), new_task(name="b")
    shown = _board(a, b)
    # b was not read: not gone; a was read and not found: deleted (or no longer visible)
    assert board_events(shown, {}, {a.id}) == [("removed", {"id": a.id})]
    assert set(shown) == {b.id}
    # an id read for that the board never showed and that is not found: nothing to say
    assert board_events(shown, {}, {"someone-elses"}) == []
    # a task read for the first time is a row of its own
    fresh = new_task(name="fresh")
    assert board_events(shown, {fresh.id: fresh}, {fresh.id}) == [("task", fresh.public())]


def test_a_change_of_private_fields_only_sends_nothing() -> None:
    """A lease's renewal changes the row, not what the API shows of it."""
    a = new_task(Status.INITIALIZING, name="a")
    shown = _board(a)
    renewed = replace(a, lease_owner="engine-1", lease_until=123.0, bridge_token="other")
    assert board_events(shown, {a.id: renewed}, {a.id}) == []
    assert shown[a.id].task == renewed  # the next compare is against the row as read


# -- over HTTP ----------------------------------------------------------------------------


@dataclass
class Board:
    url: str
    db: Path
    store: Store
    tokens: dict[str, str]
    alices: list[Task]
    bobs: Task


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    """One server for the module (its start is most of these tests' time): each test
    changes tasks of its own."""
    tmp_path = tmp_path_factory.mktemp("board")
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    db = tmp_path / "db.sqlite"
    store = Store(sqlite_url(db))
    engine = Engine(
        store,
        DockerBackend("test", dead),
        Catalog(versions=VersionStore(tmp_path / "templates")),
        BridgeBundler(tmp_path / "cache"),
    )
    try:
        with serve(engine, tmp_path) as url:
            tokens = {}
            for name in ("alice", "bob"):
                store.create_user(name, "member")
                tokens[name], _ = store.create_token(name, "laptop", None)
            alices = [
                stored_task(store, Status.PAUSED, owner="alice", name=f"a-{i}") for i in range(12)
            ]
            bobs = stored_task(store, Status.PAUSED, owner="bob", name="bobs")
            yield Board(url, db, store, tokens, alices, bobs)
    finally:
        store.close()


class Stream:
    """The events of one open task stream, in order."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def next(self) -> tuple[str, Any]:
        kind = ""
        for line in self._lines:  # a missing event: no line for the read timeout, an error
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                return kind, json.loads(line.split(":", 1)[1])
        raise AssertionError("the stream ended")

    def until(self, done: Any) -> list[tuple[str, Any]]:
        """Events up to and including the first that `done(kind, data)` accepts."""
        seen = [self.next()]
        while not done(*seen[-1]):
            seen.append(self.next())
        return seen


@pytest.fixture
def alice_stream(board: Board) -> Iterator[Stream]:
    c = httpx.Client(base_url=board.url, timeout=httpx.Timeout(30, read=20))
    assert c.post("/auth/login", json={"token": board.tokens["alice"]}).status_code == 200
    with c.stream("GET", "/api/dockyard/v1/stream") as reply:
        assert reply.status_code == 200
        stream = Stream(reply.iter_lines())
        kind, tasks = stream.next()
        assert kind == "snapshot" and {t["owner"] for t in tasks} == {"alice"}
        yield stream
    c.close()


def _row(task: Task, **fields: Any) -> Any:
    return lambda kind, data: (
        kind == "task" and data["id"] == task.id and all(data[k] == v for k, v in fields.items())
    )


def test_a_change_is_one_row_event_from_a_read_of_that_task_alone(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the full read out of reach, a change is read by id: one `task` event of that
    task, none of the other eleven, and another member's task neither sent nor read
    as a row of alice's board. Log lines change no row and wake nothing."""
    monkeypatch.setattr(dashboard_api, "STREAM_FULL_READ", 3600.0)
    monkeypatch.setattr(dashboard_api, "STREAM_PING", 3600)
    full, partial = [], []
    visible, visible_of = dashboard_api._visible, dashboard_api._visible_of
    monkeypatch.setattr(dashboard_api, "_visible", lambda s, w: full.append(1) or visible(s, w))
    monkeypatch.setattr(
        dashboard_api,
        "_visible_of",
        lambda s, w, ids: partial.append(set(ids)) or visible_of(s, w, ids),
    )
    c = httpx.Client(base_url=board.url, timeout=httpx.Timeout(30, read=20))
    assert c.post("/auth/login", json={"token": board.tokens["alice"]}).status_code == 200
    target, sentinel = board.alices[3], board.alices[7]
    with c.stream("GET", "/api/dockyard/v1/stream") as reply:
        stream = Stream(reply.iter_lines())
        assert stream.next()[0] == "snapshot"
        board.store.record(target.id, "priority", actor="test", priority=90)
        assert stream.until(_row(target)) == [("task", board.store.get(target.id).public())]
        # bob's change wakes alice's stream too (one process), and is read and dropped
        board.store.record(board.bobs.id, "priority", actor="test", priority=80)
        board.store.append_logs(target.id, [{"seq": 1, "type": "output", "content": "hi"}])
        board.store.record(sentinel.id, "priority", actor="test", priority=70)
        events = stream.until(_row(sentinel, priority=70))
    assert events == [("task", board.store.get(sentinel.id).public())]
    assert full == [1]  # the snapshot only
    assert {target.id} in partial and {sentinel.id} <= set().union(*partial)
    # every partial read was of the ids that changed, never of the whole board
    assert all(ids <= {target.id, sentinel.id, board.bobs.id} for ids in partial)


def test_another_process_change_reaches_the_board(
    board: Board, alice_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Store on the same SQLite file is another server: its writes wake nothing
    here, and the periodic full read finds them (a made task, a change, a deletion)."""
    monkeypatch.setattr(dashboard_api, "STREAM_FULL_READ", 0.2)
    other = Store(sqlite_url(board.db))
    try:
        target, doomed = board.alices[0], board.alices[1]
        other.record(target.id, "priority", actor="elsewhere", priority=66)
        assert alice_stream.until(_row(target, priority=66))[-1][1]["priority"] == 66
        made = stored_task(other, Status.PENDING, owner="alice", name="from-elsewhere")
        assert alice_stream.until(_row(made))
        other.delete(doomed.id)
        gone = alice_stream.until(lambda kind, data: kind == "removed")
        assert gone[-1] == ("removed", {"id": doomed.id})
    finally:
        other.close()


def test_a_deleted_task_leaves_the_board_at_once(
    board: Board, alice_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process a deletion wakes the stream with its id: `removed` without waiting
    for the full read (pushed out of reach)."""
    monkeypatch.setattr(dashboard_api, "STREAM_FULL_READ", 3600.0)
    doomed = board.alices[5]
    board.store.delete(doomed.id)
    assert alice_stream.next() == ("removed", {"id": doomed.id})
    # a deleted task of someone else's was never on alice's board: nothing is sent
    board.store.delete(board.bobs.id)
    board.store.record(board.alices[2].id, "priority", actor="test", priority=61)
    assert alice_stream.next()[1]["id"] == board.alices[2].id


def test_a_burst_of_changes_is_read_as_one_full_read(
    board: Board, alice_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More changed tasks than STREAM_READ_BY_ID_MAX in one round are read by a full
    read, never by a query of that many ids; every change still arrives."""
    monkeypatch.setattr(dashboard_api, "STREAM_FULL_READ", 3600.0)
    monkeypatch.setattr(dashboard_api, "STREAM_READ_BY_ID_MAX", 1)
    partial: list[set[str]] = []
    visible_of = dashboard_api._visible_of
    monkeypatch.setattr(
        dashboard_api,
        "_visible_of",
        lambda s, w, ids: partial.append(set(ids)) or visible_of(s, w, ids),
    )
    burst = board.alices[8:11]
    for task in burst:
        board.store.record(task.id, "priority", actor="test", priority=55)
    waiting = {t.id for t in burst}
    while waiting:
        kind, data = alice_stream.next()
        if kind == "task" and data["priority"] == 55:
            waiting.discard(data["id"])
    assert all(len(ids) <= 1 for ids in partial)
