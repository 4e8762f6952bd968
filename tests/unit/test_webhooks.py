"""Webhooks for real: a local HTTP receiver gets signed events from the dispatcher, through
a real server on the fake engine (the real bridge and scripted agent), and from
dispatchers on one store directly (retries, restarts, two servers on SQLite and
PostgreSQL); the API refuses what it must."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.errors import ParameterError
from provisioner.lifecycle import Status
from provisioner.server.webhook_dispatch import Dispatcher, checked_addresses, send
from provisioner.store.store import Store, sqlite_url
from provisioner.webhooks import RetryPolicy, Settings, check_url, event_name, new_secret, verify
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.postgres import postgres_cluster, store_url
from tests.serving import admin_env, admin_headers, serve
from tests.stored import stored_task
from tests.webhook_receiver import Got, Receiver

__all__ = ["bridge_cache", "fake", "postgres_cluster", "store_url"]

QUICK = Settings(
    allow_private=True,
    timeout_s=5,
    workers=4,
    retry=RetryPolicy(max_attempts=5, base_s=0.05, factor=2, cap_s=0.5),
)


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def dispatching(store: Store, settings: Settings = QUICK) -> Iterator[Dispatcher]:
    """A server's dispatcher on `store`, running until the block ends."""
    dispatcher = Dispatcher(store, settings, tick_s=0.02)
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


def subscribe(store: Store, url: str, events: list[str], owner: str = "boss") -> tuple[str, str]:
    """A webhook of an admin's: its id and secret."""
    if store.user(owner) is None:
        store.create_user(owner, "admin")
    secret = new_secret()
    return store.create_webhook(owner, url, events, secret, all_tasks=True)["id"], secret


def note(store: Store, task_id: str, text: str) -> int:
    """Record a progress event; its id."""
    assert store.record(task_id, "progress", actor="user:boss", reason=text, progress=text)
    return int(store.events(task_id)[-1]["id"])


def signed(got: Got, secret: str) -> bool:
    return verify(
        secret,
        got.headers["x-dockyard-timestamp"],
        got.body,
        got.headers["x-dockyard-signature"],
        now=time.time(),
    )


def delivery_states(store: Store, hook: str) -> list[tuple[int, str]]:
    """(event id, state) of a webhook's deliveries, oldest first."""
    return sorted((d["event_id"], d["state"]) for d in store.deliveries([hook], limit=1000))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        yield opened
    finally:
        opened.close()


# --- through the server, on a task's real life ------------------------------------------


def _served(h: Harness, config: str) -> Any:
    (h.home / "config.yaml").write_text(config)
    return serve(h.engine, h.home)


def _create_task(url: str, h: Harness) -> dict[str, Any]:
    made = httpx.post(
        url + "/api/v2/tasks",
        json={"template": "scripted", "prompt": "say hello", "parameters": FAST},
        headers=admin_headers(h.home),
        timeout=HTTP_TIMEOUT,
    )
    assert made.status_code == 201, made.text
    task: dict[str, Any] = made.json()
    return task


def _complete(url: str, h: Harness, task_id: str) -> None:
    done = httpx.post(
        f"{url}/api/v2/tasks/{task_id}/complete",
        json={"outcome": "SUCCESS", "output": "hello said"},
        headers=admin_headers(h.home),
        timeout=HTTP_TIMEOUT,
    )
    assert done.status_code == 200, done.text


def test_a_receiver_gets_a_tasks_life_signed_and_in_order(fake: Harness, tmp_path: Path) -> None:
    config = "webhooks: {allow_private: true, retry_base_s: 0.1}\n"
    with Receiver() as receiver, _served(fake, config) as url:
        env = {**admin_env(url, fake.home), "DOCKYARD_HOME": str(tmp_path / "cli")}
        run = CliRunner()
        events = "created,status,state,completed"
        added = run.invoke(
            dockyard, ["webhook", "add", receiver.url, "--events", events, "-o", "json"], env=env
        )
        assert added.exit_code == 0, added.output
        hook = json.loads(added.stdout)
        secret = hook["secret"]  # made by the server, shown this once

        task = _create_task(url, fake)
        fake.wait_idle(task["id"])
        _complete(url, fake, task["id"])

        # every event of the task the subscription names, as the store recorded them
        wanted = [
            (e["id"], name)
            for e in fake.store.events(task["id"])
            if (name := event_name(e["kind"], e["from_value"], e["to_value"], hook["events"]))
        ]
        got = receiver.wait_accepted(len(wanted))
        bodies = [g.json for g in got]
        assert [(b["event_id"], b["event"]) for b in bodies] == wanted  # all, once, in order
        assert bodies[0]["event"] == "created" and bodies[-1]["event"] == "completed"
        assert ("status", "active") in [(b["event"], b["to"]) for b in bodies]
        assert ("state", "idle") in [(b["event"], b["to"]) for b in bodies]
        assert bodies[-1]["task"]["status"] == "completed" and bodies[-1]["from"] == "active"
        assert {b["task"]["name"] for b in bodies} == {task["name"]}
        assert "prompt" not in bodies[0]["task"] and "bridge_token" not in bodies[0]["task"]
        for g, body in zip(got, bodies, strict=True):
            assert signed(g, secret), g.headers
            assert g.headers["x-dockyard-event"] == body["event"]
            assert g.headers["x-dockyard-delivery"] == body["id"]
            assert g.headers["content-type"] == "application/json"

        listed = run.invoke(dockyard, ["webhook", "list", "-o", "json"], env=env)
        assert json.loads(listed.stdout)[0]["id"] == hook["id"]
        assert secret not in listed.stdout
        wait_until(
            lambda: all(s == "delivered" for _, s in delivery_states(fake.store, hook["id"])),
            30,
            "every delivery recorded as delivered",
        )
        shown = run.invoke(dockyard, ["webhook", "deliveries", hook["id"]], env=env)
        assert shown.exit_code == 0 and shown.stdout.count("delivered") == len(wanted)
        assert run.invoke(dockyard, ["webhook", "deliveries", "--failed"], env=env).exit_code == 0
        removed = run.invoke(dockyard, ["webhook", "remove", hook["id"]], env=env)
        assert removed.exit_code == 0, removed.output
        after = run.invoke(dockyard, ["webhook", "list", "-o", "json"], env=env)
        assert json.loads(after.stdout) == []


def test_a_dead_receiver_never_holds_up_a_task_or_another_receiver(fake: Harness) -> None:
    # its requests wait a minute each: longer than this task's whole life
    config = "webhooks: {allow_private: true, timeout_s: 60}\n"
    with Receiver(hang=True) as dead, Receiver() as live, _served(fake, config) as url:
        hooks = {}
        for receiver in (dead, live):
            made = httpx.post(
                url + "/api/v2/webhooks",
                json={"url": receiver.url, "events": ["status", "completed"]},
                headers=admin_headers(fake.home),
                timeout=HTTP_TIMEOUT,
            )
            assert made.status_code == 201, made.text
            hooks[receiver.url] = made.json()["id"]

        task = _create_task(url, fake)
        fake.wait_idle(task["id"])
        _complete(url, fake, task["id"])
        assert fake.task(task["id"]).status == Status.COMPLETED

        wait_until(
            lambda: any(g.json["event"] == "completed" for g in live.accepted()),
            20,
            "the live receiver to get the completion",
        )
        # meanwhile the dead receiver still holds the task's first event, unanswered
        assert dead.requests() and {g.status for g in dead.requests()} == {None}
        assert {g.json["event"] for g in dead.requests()} == {"status"}
        states = delivery_states(fake.store, hooks[dead.url])
        assert states and all(state == "pending" for _, state in states)
        assert len(states) == len(live.accepted())


# --- the dispatcher on a store -------------------------------------------------------------


def test_a_receiver_that_fails_twice_gets_the_third_try_and_order_holds(store: Store) -> None:
    with Receiver(answers=[500, 503]) as receiver, dispatching(store):
        hook, secret = subscribe(store, receiver.url, ["progress"])
        task = stored_task(store, Status.ACTIVE, owner="boss")
        first, second = note(store, task.id, "one"), note(store, task.id, "two")
        receiver.wait_accepted(2)
        got = receiver.requests()
        assert [(g.json["event_id"], g.status) for g in got] == [
            (first, 500),
            (first, 503),
            (first, 200),
            (second, 200),  # waited for the first, never overtook it
        ]
        assert len({g.headers["x-dockyard-delivery"] for g in got[:3]}) == 1
        assert all(signed(g, secret) for g in got)
        wait_until(
            lambda: delivery_states(store, hook) == [(first, "delivered"), (second, "delivered")],
            30,
            "both recorded delivered",
        )
        tried = store.deliveries([hook])
        assert [(d["attempts"], d["last_status"]) for d in tried] == [(1, 200), (3, 200)]


def test_a_delivery_gives_up_after_its_attempts_and_the_next_goes(store: Store) -> None:
    settings = Settings(allow_private=True, retry=RetryPolicy(max_attempts=2, base_s=0.05))
    with Receiver(answers=[500, 500]) as receiver, dispatching(store, settings):
        hook, _ = subscribe(store, receiver.url, ["progress"])
        task = stored_task(store, Status.ACTIVE, owner="boss")
        first, second = note(store, task.id, "one"), note(store, task.id, "two")
        wait_until(
            lambda: delivery_states(store, hook) == [(first, "failed"), (second, "delivered")],
            30,
            "the first given up, the second delivered",
        )
    failed = store.deliveries([hook], failed=True)
    assert [(d["event_id"], d["attempts"], d["last_error"]) for d in failed] == [
        (first, 2, "HTTP 500")
    ]
    assert failed[0]["last_response"] == "ok"


def test_a_restart_resumes_what_was_not_delivered_and_repeats_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite")
    store = Store(url)
    try:
        with Receiver() as receiver:
            hook, _ = subscribe(store, receiver.url, ["progress"])
            task = stored_task(store, Status.ACTIVE, owner="boss")
            with dispatching(store):
                one = note(store, task.id, "one")
                receiver.wait_accepted(1)
                receiver.default = 500  # the receiver goes down
                two = note(store, task.id, "two")
                wait_until(
                    lambda: [g.status for g in receiver.requests()][-1:] == [500],
                    30,
                    "a failed try of the second",
                )
            three = note(store, task.id, "three")  # while no server runs
            assert delivery_states(store, hook)[0] == (one, "delivered")
            receiver.default = 200
            again = Store(url)  # a new server process on the same database
            try:
                with dispatching(again):
                    receiver.wait_accepted(3)
                    wait_until(
                        lambda: [s for _, s in delivery_states(again, hook)] == ["delivered"] * 3,
                        30,
                        "all delivered",
                    )
            finally:
                again.close()
            accepted = [g.json["event_id"] for g in receiver.accepted()]
            assert accepted == [one, two, three]
    finally:
        store.close()


def test_two_servers_on_one_database_deliver_each_event_once(store_url: str) -> None:
    first, second = Store(store_url), Store(store_url)
    try:
        with Receiver() as receiver:
            hooks = [subscribe(first, receiver.url, ["progress"])[0] for _ in range(2)]
            task = stored_task(first, Status.ACTIVE, owner="boss")
            with dispatching(first), dispatching(second):
                made = [note(first if i % 2 else second, task.id, f"n{i}") for i in range(15)]
                receiver.wait_accepted(30)
                for hook in hooks:
                    wait_until(
                        lambda h=hook: (
                            [s for _, s in delivery_states(first, h)] == ["delivered"] * 15
                        ),
                        15,
                        "all delivered",
                    )
            got = receiver.requests()
            ids = [g.headers["x-dockyard-delivery"] for g in got]
            assert len(ids) == len(set(ids)) == 30
            for hook in hooks:
                order = [g.json["event_id"] for g in got if g.json["id"].startswith(hook)]
                assert order == made
    finally:
        first.close()
        second.close()


def test_delivery_checks_the_address_again_and_connects_to_it() -> None:
    with Receiver() as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        url = f"http://hooks.example.test:{port}/hook"

        def loopback(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        # the name now points at this machine (DNS rebinding): refused for a member
        got = send(
            url, "{}", {}, allow_private=True, is_admin=False, timeout_s=5, resolver=loopback
        )
        assert got.status is None and got.error and "loopback" in got.error
        # any address of the name counts, and the metadata one is never allowed
        got = send(
            url,
            "{}",
            {},
            allow_private=True,
            is_admin=True,
            timeout_s=5,
            resolver=lambda h, p: ["93.184.216.34", "169.254.169.254"],
        )
        assert got.error and "link-local" in got.error
        assert receiver.requests() == []
        # allowed: the request goes to the address checked, naming the host it was for
        got = send(url, '{"a":1}', {}, allow_private=True, is_admin=True, timeout_s=5,
                   resolver=loopback)  # fmt: skip
        assert (got.status, got.response) == (200, "ok")
        assert receiver.requests()[0].headers["host"] == f"hooks.example.test:{port}"


def test_an_admin_needs_the_setting_for_private_receivers() -> None:
    target = check_url("http://127.0.0.1:9/")
    with pytest.raises(ParameterError, match="loopback") as caught:
        checked_addresses(target, allow_private=False, is_admin=True)
    assert "allow_private: true" in (caught.value.hint or "")
    assert checked_addresses(target, allow_private=True, is_admin=True) == ["127.0.0.1"]


# --- the API refuses ------------------------------------------------------------------------


def test_hostile_subscriptions_are_refused_and_others_hooks_are_not_found(
    fake: Harness,
) -> None:
    store = fake.store
    with _served(fake, "webhooks: {allow_private: true}\n") as url:
        tokens = {"admin": admin_headers(fake.home)}
        for name in ("alice", "bob"):
            store.create_user(name, "member")
            token, _ = store.create_token(name, "t", None)
            tokens[name] = {"Authorization": f"Bearer {token}"}

        def call(who: str, method: str, path: str, **kw: Any) -> httpx.Response:
            return httpx.request(
                method, url + "/api/v2" + path, headers=tokens[who], timeout=HTTP_TIMEOUT, **kw
            )

        def add(who: str, **body: Any) -> httpx.Response:
            return call(who, "POST", "/webhooks", json={"events": ["status"], **body})

        refused = {
            ("alice", "http://127.0.0.1:9/x"): "loopback",
            ("alice", "http://localhost:9/x"): "loopback",
            ("alice", "http://10.0.0.5/x"): "private",
            ("alice", "http://169.254.169.254/latest/meta-data/"): "link-local",
            ("admin", "http://169.254.169.254/latest/meta-data/"): "link-local",
            ("admin", "http://[::ffff:169.254.169.254]/"): "link-local",
            ("admin", "http://0.0.0.0:9/"): "not a receiver",
            ("admin", "https://user:pw@example.com/"): "credentials",
            ("admin", "gopher://example.com/"): "http or https",
            ("admin", "https://example.com/" + "x" * 5000): "at most 2048",
        }
        for (who, target), why in refused.items():
            reply = add(who, url=target)
            assert reply.status_code == 400, (who, target, reply.text)
            assert why in reply.json()["detail"], (who, target, reply.text)
        member = add("alice", url="http://127.0.0.1:9/x").json()
        assert "only an admin" in member["hint"]

        unknown = add("admin", url="http://127.0.0.1:9/", events=["status", "bogus", "Done"])
        assert unknown.status_code == 400 and "'bogus', 'Done'" in unknown.json()["detail"]
        assert "input_required" in unknown.json()["hint"]
        assert add("admin", url="http://127.0.0.1:9/", secret="short").status_code == 400
        assert add("alice", url="https://example.com/", all=True).status_code == 403
        bobs = stored_task(store, Status.PAUSED, owner="bob", name="bobs-task")
        for ref in (bobs.name, bobs.id):  # another's task is not found, as everywhere
            theirs = add("alice", url="http://10.0.0.5/", task=ref)
            assert theirs.status_code == 404 and "bobs-task" not in theirs.text.replace(ref, "")

        mine = add("admin", url="http://127.0.0.1:9/", secret="s" * 20, task=bobs.id)
        assert mine.status_code == 201, mine.text
        assert "secret" not in mine.json()  # the caller's own secret is never echoed

        # a member's webhook, as made through the API with a public receiver
        hook = store.create_webhook("alice", "https://hooks.example.com/x", ["status"], "s" * 20)
        for method, path in [
            ("GET", f"/webhooks/{hook['id']}"),
            ("GET", f"/webhooks/{hook['id']}/deliveries"),
            ("DELETE", f"/webhooks/{hook['id']}"),
        ]:
            reply = call("bob", method, path)
            assert reply.status_code == 404, (method, path, reply.text)
            assert "hooks.example.com" not in reply.text
        assert call("bob", "GET", "/webhooks").json() == {"webhooks": []}
        assert call("bob", "GET", "/webhooks", params={"all": "true"}).status_code == 403
        own = call("alice", "GET", "/webhooks").json()["webhooks"]
        assert [h["id"] for h in own] == [hook["id"]] and "secret" not in own[0]
        everyone = call("admin", "GET", "/webhooks", params={"all": "true"}).json()["webhooks"]
        assert {h["owner"] for h in everyone} == {"alice", mine.json()["owner"]}
        assert call("alice", "DELETE", f"/webhooks/{hook['id']}").status_code == 200
        assert call("alice", "GET", f"/webhooks/{hook['id']}").status_code == 404


def test_each_webhook_gets_only_the_tasks_its_owner_may_see(store: Store) -> None:
    with Receiver() as receiver, dispatching(store):
        store.create_user("alice", "member")
        store.create_user("boss", "admin")
        secret = new_secret()
        alices = store.create_webhook("alice", receiver.url, ["progress"], secret)["id"]
        # an admin's, without --all: the admin's own tasks; with it: everyone's
        own = store.create_webhook("boss", receiver.url, ["progress"], secret)["id"]
        every = store.create_webhook("boss", receiver.url, ["progress"], secret, all_tasks=True)
        hers = stored_task(store, Status.ACTIVE, owner="alice")
        his = stored_task(store, Status.ACTIVE, owner="boss")
        on_hers, on_his = note(store, hers.id, "a"), note(store, his.id, "b")

        def made(hook: str) -> list[int]:
            return sorted(d["event_id"] for d in store.deliveries([hook]))

        wait_until(lambda: made(every["id"]) == [on_hers, on_his], 30, "the --all webhook's")
        assert made(alices) == [on_hers] and made(own) == [on_his]
        # a member's webhook pointed at this machine (made behind the API's back, or a
        # name that resolves here now) is refused at delivery time
        wait_until(lambda: store.deliveries([alices])[0]["attempts"] >= 1, 30, "alice's first try")
        tried = store.deliveries([alices])[0]
        assert tried["last_status"] is None and "loopback" in tried["last_error"]
        receiver.wait_accepted(3)  # the admin's two webhooks' deliveries went out
        sent = {g.headers["x-dockyard-delivery"].split("-")[0] for g in receiver.requests()}
        assert sent == {own, every["id"]}


def test_a_webhook_far_behind_stops_growing(store: Store) -> None:
    with Receiver(hang=True) as dead:
        hook, _ = subscribe(store, dead.url, ["progress"])
        task = stored_task(store, Status.ACTIVE, owner="boss")
        dispatcher = Dispatcher(store, QUICK, tick_s=0.02, max_pending=2)
        dispatcher.start()
        try:
            for i in range(5):
                note(store, task.id, f"n{i}")
            wait_until(lambda: len(delivery_states(store, hook)) == 5, 30, "five deliveries")
        finally:
            dispatcher.stop()
    states = [s for _, s in delivery_states(store, hook)]
    assert states == ["pending", "pending", "failed", "failed", "failed"]
    dropped = [d for d in store.deliveries([hook], failed=True) if d["state"] == "failed"]
    assert len(dropped) == 3 and all(
        "not sent: 2 earlier deliveries" in d["last_error"] for d in dropped
    )


def test_a_receiver_that_trickles_its_answer_is_cut_off() -> None:
    # each byte comes well within the read timeout, so only a deadline on the whole
    # request ends it; without one the worker would be held for as long as the trickle
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(300):  # 30 s at most: then the test fails, it does not hang
                if stop.wait(0.1):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(b"X")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        got = send(
            f"http://127.0.0.1:{port}/hook",
            "{}",
            {},
            allow_private=True,
            is_admin=True,
            timeout_s=0.5,
        )
        assert got.status is None and got.error == "no complete answer within 1.5 s"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
