"""Long-polls of a task's status and of a prompt (a real server, no Docker): they answer as
soon as something changed, hold no longer than asked (30 s at most), refuse bad bounds and
show members only their own tasks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_token, serve
from tests.stored import stored_task


@dataclass
class Served:
    url: str
    store: Store
    tokens: dict[str, str]
    task: Task  # alice's, active and working, with prompt p1 queued

    def get(self, path: str, who: str = "alice", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(store, DockerBackend("test", dead), Catalog(), BridgeBundler(tmp_path / "c"))
    try:
        with serve(engine, tmp_path) as url:
            tokens = {"admin": admin_token(tmp_path)}
            for name in ("alice", "bob"):
                store.create_user(name, "member")
                tokens[name], _ = store.create_token(name, "laptop", None)
            task = stored_task(store, Status.ACTIVE, owner="alice", name="t", state="working")
            store.add_prompt(task.id, "p1", "hello")
            yield Served(url, store, tokens, task)
    finally:
        store.close()


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


# A woken long-poll answers long before the 20 s it was allowed to hold: this bound tells
# "woken" from "held to the end" however loaded the machine is (it is no speed test).
WOKEN = 15


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    reply = call()
    return reply, time.monotonic() - start


def take(store: Store, task_id: str) -> None:
    store.sync_prompts(task_id, [{"id": "p1", "state": "taken", "taken_at": "now"}])


def test_a_prompt_wait_answers_as_soon_as_it_is_taken(served: Served) -> None:
    path = "/api/v2/tasks/t/prompts/p1"
    thread = later(0.3, lambda: take(served.store, served.task.id))
    reply, took = timed(lambda: served.get(path, wait=20))
    thread.join()
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "taken"
    assert 0.25 < took < WOKEN


def test_a_prompt_wait_holds_no_longer_than_asked(served: Served) -> None:
    reply, took = timed(lambda: served.get("/api/v2/tasks/t/prompts/p1", wait=0.4))
    assert reply.json()["state"] == "queued"
    assert 0.35 < took < WOKEN
    reply, took = timed(lambda: served.get("/api/v2/tasks/t/prompts/p1"))  # no wait: at once
    assert reply.json()["state"] == "queued" and took < WOKEN


def test_a_prompt_wait_ends_when_the_task_stops(served: Served) -> None:
    stop = lambda: served.store.transition(  # noqa: E731
        served.task.id, Status.ACTIVE, Status.PAUSED, actor="test"
    )
    thread = later(0.3, stop)
    reply, took = timed(lambda: served.get("/api/v2/tasks/t/prompts/p1", wait=20))
    thread.join()
    assert reply.json()["state"] == "queued"
    assert took < WOKEN


def test_a_status_wait_answers_as_soon_as_the_task_changes(served: Served) -> None:
    first = served.get("/api/v2/tasks/t")
    etag = first.headers["etag"]
    assert served.get("/api/v2/tasks/t").headers["etag"] == etag  # unchanged, same tag
    change = lambda: served.store.update(  # noqa: E731
        served.task.id, Status.ACTIVE, actor="test", state="idle"
    )
    thread = later(0.3, change)
    reply, took = timed(lambda: served.get("/api/v2/tasks/t", wait=20, since=etag))
    thread.join()
    assert reply.json()["state"] == "idle"
    assert reply.headers["etag"] != etag
    assert 0.25 < took < WOKEN
    # a stale tag is answered at once; an unchanged task at the bound
    reply, took = timed(lambda: served.get("/api/v2/tasks/t", wait=20, since=etag))
    assert reply.json()["state"] == "idle" and took < WOKEN
    now = reply.headers["etag"]
    reply, took = timed(lambda: served.get("/api/v2/tasks/t", wait=0.4, since=now))
    assert reply.headers["etag"] == now and 0.35 < took < WOKEN


@pytest.mark.parametrize(
    "bad",
    [
        {"wait": "-1"},
        {"wait": "31"},
        {"wait": "1e9"},
        {"wait": "nan"},
        {"wait": "inf"},
        {"wait": "soon"},
        {"wait": "1" * 5000},
        {"wait": "1", "since": "x" * 65},
    ],
)
@pytest.mark.parametrize("path", ["/api/v2/tasks/t", "/api/v2/tasks/t/prompts/p1"])
def test_abusive_waits_are_a_400_at_once(served: Served, path: str, bad: dict[str, str]) -> None:
    if "since" in bad and "prompts" in path:
        pytest.skip("a prompt wait takes no `since`")
    # the 400 is the proof: a bad bound fails validation, before any handler could hold
    # the request (a stopwatch here failed when a loaded machine stalled the answer)
    reply = served.get(path, **bad)
    assert reply.status_code == 400, reply.text
    assert "x" * 65 not in reply.text and "1" * 5000 not in reply.text


def test_members_cannot_wait_on_anothers_task(served: Served) -> None:
    etag = served.get("/api/v2/tasks/t").headers["etag"]
    for path, params in [
        (f"/api/v2/tasks/{served.task.id}", {"wait": 20, "since": etag}),
        (f"/api/v2/tasks/{served.task.id}/prompts/p1", {"wait": 20}),
    ]:
        reply, took = timed(lambda: served.get(path, "bob", **params))  # noqa: B023
        assert reply.status_code == 404 and took < WOKEN
        assert "alice" not in reply.text
    unauthenticated = httpx.get(
        served.url + "/api/v2/tasks/t", params={"wait": 20}, timeout=HTTP_TIMEOUT
    )
    assert unauthenticated.status_code == 401


def test_a_prompt_of_another_task_is_not_found_without_waiting(served: Served) -> None:
    other = stored_task(served.store, Status.ACTIVE, owner="alice", name="u", state="working")
    reply, took = timed(lambda: served.get(f"/api/v2/tasks/{other.name}/prompts/p1", wait=20))
    assert reply.status_code == 404 and took < WOKEN


def test_the_cli_waits_on_the_server_instead_of_polling(served: Served) -> None:
    from cli.client import Client
    from cli.tasks import wait_until_idle

    client = Client(served.url, token=served.tokens["alice"])
    assert client._plain  # loopback http: the standard library's client, no httpx
    calls: list[dict[str, Any] | None] = []
    exchange = client.exchange

    change = lambda: served.store.update(  # noqa: E731
        served.task.id, Status.ACTIVE, actor="test", state="idle"
    )
    threads: list[Any] = []

    def counted(method: str, path: str, **kw: Any) -> Any:
        calls.append(kw.get("params"))
        if (kw.get("params") or {}).get("wait") and not threads:
            # the task changes while the first long-poll is held (on a loaded machine a
            # timer could fire before it was even sent)
            threads.append(later(0.5, change))
        return exchange(method, path, **kw)

    client.exchange = counted  # type: ignore[method-assign]
    lines: list[str] = []
    start = time.monotonic()
    task = wait_until_idle(client, client.get_task("t"), 20, lines.append)
    threads[0].join()
    assert task["state"] == "idle" and time.monotonic() - start < WOKEN
    # one plain read for the ETag, then long-polls: no 300 ms polling loop
    assert 2 <= len(calls) <= 4, calls
    assert all(c and float(c["wait"]) > 1 for c in calls[2:]), calls
    assert lines[-1].startswith("ready in")

    take(served.store, served.task.id)
    calls.clear()
    prompt = client.get_prompt("t", "p1", wait=10)
    assert prompt["state"] == "taken" and calls == [{"wait": 10}]
    client.close()


def test_the_cli_client_takes_httpx_only_where_the_standard_library_falls_short(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.client import ApiError, Client

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert Client(served.url)._plain  # our own loopback server never goes through a proxy
    assert not Client("http://dockyard.example.com")._plain  # the proxy applies there
    assert not Client("https://127.0.0.1:1")._plain  # TLS: certifi's CAs, as before
    monkeypatch.delenv("HTTP_PROXY")
    assert Client("http://dockyard.example.com")._plain

    # both ways give the same answers, the ETag included
    plain = Client(served.url, token=served.tokens["alice"])
    other = Client(served.url, token=served.tokens["alice"], transport=httpx.HTTPTransport())
    assert plain._plain and not other._plain
    for client in (plain, other):
        task, etag = client.watch_task("t", None, 0)
        assert task["name"] == "t" and etag == served.get("/api/v2/tasks/t").headers["etag"]
        with pytest.raises(ApiError) as caught:
            client.get_task("no-such-task")
        assert caught.value.status_code == 404
        client.close()


def test_a_closed_kept_alive_connection_is_replaced_and_only_a_get_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from cli.client import Client, ServerUnreachable

    seen: list[str] = []
    closed: list[str] = []  # a request's connection, once the server has closed it
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve_once_per_connection() -> None:
        # answers one request per connection as if keeping it alive, then drops it
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                seen.append(data.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            closed.append(seen[-1])

    def dropped() -> None:
        # the client must see the drop, not race it: on a loaded machine this thread may
        # close the connection well after the client has read the answer
        wait_until(lambda: len(closed) == len(seen), what="the server to drop the connection")

    threading.Thread(target=serve_once_per_connection, daemon=True).start()
    client = Client(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=HTTP_TIMEOUT)
    try:
        assert client.request("GET", "/a") == {}
        dropped()
        assert client.request("GET", "/b") == {}  # on a new connection
        assert seen == ["GET /api/dockyard/v1/a HTTP/1.1", "GET /api/dockyard/v1/b HTTP/1.1"]
        dropped()
        # seen closed before it is used: a new connection, so a POST goes through too
        assert client.request("POST", "/c", json={}) == {}
        assert seen[2:] == ["POST /api/dockyard/v1/c HTTP/1.1"]
        # closed unseen (after the check): a POST perhaps done already is never sent twice
        monkeypatch.setattr("cli.client._dropped", lambda sock: False)
        dropped()
        with pytest.raises(ServerUnreachable):
            client.request("POST", "/d", json={})
        assert client.request("GET", "/e") == {}
        dropped()
        assert client.request("GET", "/f") == {}  # the same, unseen: a GET is tried again
        assert seen[3:] == ["GET /api/dockyard/v1/e HTTP/1.1", "GET /api/dockyard/v1/f HTTP/1.1"]
    finally:
        client.close()
        listener.close()
