"""The webhook dispatcher: a thread of the server that turns new events into deliveries and
sends them, started and stopped with the engine.

It never touches the engine: it reads the events table after its cursor, so a task's
transitions never wait for a receiver. Requests go out on a small pool of threads, at most
one per subscription at a time (so its events arrive in order) and at most
`settings.workers` in all; a dead receiver holds one thread for at most its timeouts,
and receivers being retried may hold at most half of the threads.
Every decision (names, body, signature, retries, addresses) is in provisioner.webhooks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from provisioner import __version__
from provisioner.errors import ParameterError
from provisioner.model import POOL_OWNER, utcnow
from provisioner.server.a2a import push
from provisioner.store.store import Store
from provisioner.store.webhooks import XACT_CURSOR
from provisioner.webhooks import (
    Settings,
    Target,
    address_refusal,
    advance_cursor,
    after_attempt,
    build_body,
    check_url,
    event_name,
    private_hint,
    signature,
)

log = logging.getLogger("dockyard.webhooks")

Resolver = Callable[[str, int], list[str]]
PAGE = 500  # events read per pass
MAX_PENDING = 1000  # undelivered deliveries a subscription may have; more are not sent
MAX_RESPONSE = 1024  # bytes of a receiver's answer kept
GAP_GRACE_S = 5.0
STOP_GRACE_S = 2.0
KEEP_FINISHED = timedelta(days=7)


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name (or address) stands for, now."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(
    target: Target, allow_private: bool, is_admin: bool, resolver: Resolver = resolve
) -> list[str]:
    """The host's addresses if every one may be called; ParameterError saying which may
    not, and what to do. Every address counts: a name that also resolves to a private
    one could be pointed there at any moment."""
    try:
        addresses = resolver(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise ParameterError(
            f"Cannot resolve the webhook host {target.host[:80]!r}: {exc}",
            hint="check the name; the server must be able to resolve and reach it",
        ) from exc
    if not addresses:
        raise ParameterError(f"The webhook host {target.host[:80]!r} has no address")
    for address in addresses:
        refusal = address_refusal(address, allow_private and is_admin)
        if refusal:
            raise ParameterError(
                f"Webhooks may not call {target.host[:80]}: {refusal}",
                hint=private_hint(is_admin),
            )
    return addresses


class _Deadline:
    """Ends a request that runs past `seconds` in all. httpx's timeouts are per connect,
    write and read, so a receiver that trickles a byte now and then would hold a worker
    for ever: at the deadline the connection's socket is shut down, which wakes the read
    blocked on it. The socket comes from httpcore's trace of the TCP connect."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.passed = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name.endswith("connect_tcp.complete") and info.get("return_value") is not None:
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.passed:
                    self._shut()

    def _cut(self) -> None:
        with self._lock:
            self.passed = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


@dataclass
class Attempt:
    """What one request got."""

    status: int | None
    error: str | None
    response: str | None


def send(
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    allow_private: bool,
    is_admin: bool,
    timeout_s: float,
    resolver: Resolver = resolve,
) -> Attempt:
    """POST once, to an address checked just now (DNS may have changed since the
    subscription was made), connecting to that very address so a second lookup cannot
    redirect it; no redirects, no proxies from the environment, a bounded answer."""
    try:
        target = check_url(url)
        address = checked_addresses(target, allow_private, is_admin, resolver)[0]
    except ParameterError as exc:
        return Attempt(None, f"refused: {exc.message}", None)
    deadline = _Deadline(3 * timeout_s)
    extensions: dict[str, Any] = {"trace": deadline.trace}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    sent = {
        **headers,
        "Host": target.host_header,
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",  # the answer is read raw: no decompression bomb
        "User-Agent": f"Dockyard-Webhooks/{__version__}",
    }
    try:
        with (
            deadline,
            httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout_s) as client,
            client.stream(
                "POST",
                target.url_for(address),
                content=body.encode(),
                headers=sent,
                extensions=extensions,
            ) as response,
        ):
            got = b""
            for chunk in response.iter_raw():
                got += chunk
                if len(got) >= MAX_RESPONSE:
                    break
            text = got[:MAX_RESPONSE].decode("utf-8", "replace")
            return Attempt(response.status_code, None, text)
    except httpx.HTTPError as exc:
        if deadline.passed:
            return Attempt(None, f"no complete answer within {deadline.seconds:g} s", None)
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], None)


class Dispatcher:
    """Fans events out to subscriptions and sends them; one per server."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        tick_s: float = 0.2,
        resolver: Resolver = resolve,
        name: str | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.settings = settings
        self.tick_s = tick_s
        self.resolver = resolver
        # who holds a lease: unique per dispatcher, readable in the table
        self.me = name or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = 3 * settings.timeout_s + 15  # a request's deadline, and some
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._inflight: set[str] = set()  # subscriptions with a request out
        # ... of which retrying a failed delivery: dead receivers may hold at most half of
        # the workers, so the rest keep serving receivers that answer
        self._failing: set[str] = set()
        self._failing_limit = max(1, settings.workers // 2)
        self._gaps: dict[int, float] = {}
        self._after = (0, 0)  # PostgreSQL: the (xact, id) of the last event read
        self._pruned = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending. A request under way is abandoned with its lease, which runs out,
        and the delivery is sent again (by this server after a restart, or another)."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        # a request to a live receiver ends in moments: let it record its result, so a
        # clean restart neither repeats it nor waits for its lease to run out
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return
            time.sleep(0.02)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.fan_out()
                self.dispatch()
                self._prune()
            except Exception:  # a database hiccup: log it and try again next pass
                log.exception("webhook dispatch pass failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    # events -> deliveries ------------------------------------------------------------------
    def fan_out(self) -> None:
        """Turn the events after the cursor into deliveries, then move the cursor."""
        if self.store.events_commit_ordered():
            self._fan_out_by_xact()
            return
        cursor = self.store.webhook_cursor()
        page = self.store.events_page(after=cursor, limit=PAGE)
        if not page:
            return
        self._deliver_page(page, None)
        ids = [int(e["id"]) for e in page]
        now = time.monotonic()
        moved = advance_cursor(cursor, ids, self._gaps, now, GAP_GRACE_S)
        if moved > cursor:
            self.store.advance_webhook_cursor(moved)

    def _fan_out_by_xact(self) -> None:
        """PostgreSQL: the events of transactions that have ended, in commit order, so
        none committing late is skipped (store/commit_order.py). The cursor is the
        horizon every event below which has been read; within a page of one horizon's
        events, this dispatcher remembers where it is (a restart reads a page again,
        which is harmless: a delivery is made once per event)."""
        cursor = self.store.webhook_xact_cursor()
        horizon = self.store.event_horizon()
        after = self._after if self._after[0] >= cursor else (cursor, 0)
        page = self.store.events_by_xact(after, horizon, limit=PAGE)
        if page:
            self._deliver_page(page, horizon)
            self._after = (int(page[-1]["xact"]), int(page[-1]["id"]))
        # a short page: everything below the horizon is read; a full one: everything
        # below its last transaction is
        done = horizon if len(page) < PAGE else int(page[-1]["xact"])
        if done > cursor:
            self.store.advance_webhook_cursor(done, XACT_CURSOR)

    def _deliver_page(self, page: list[dict[str, Any]], horizon: int | None) -> None:
        """Deliveries of a page of events: to webhooks, and to A2A push configs (which,
        with a `horizon`, read their tasks' events in commit order below it)."""
        hooks = self.store.live_webhooks()
        matched = [
            (hook, event, name)
            for event in page
            for hook in hooks
            if (name := self._name_for(hook, event)) is not None
        ]
        if matched:
            self._store_deliveries(matched)
        self._fan_out_push(page, horizon)

    @staticmethod
    def _name_for(hook: dict[str, Any], event: dict[str, Any]) -> str | None:
        if int(event["id"]) <= int(hook["after_event"]):
            return None
        owner = event["task_owner"]
        admin = hook["owner_role"] == "admin"
        if hook["task_id"] is not None:
            if event["task_id"] != hook["task_id"] or (owner != hook["owner"] and not admin):
                return None
        elif not (owner == hook["owner"] or (admin and hook["all"] and owner != POOL_OWNER)):
            return None  # a member's subscription: their own tasks only, checked each time
        return event_name(event["kind"], event["from_value"], event["to_value"], hook["events"])

    def _store_deliveries(self, matched: list[tuple[dict[str, Any], dict[str, Any], str]]) -> None:
        tasks = self.store.tasks_by_ids(e["task_id"] for _, e, _ in matched)
        pending = self.store.pending_counts()
        rows = []
        for hook, event, name in matched:
            task = tasks.get(event["task_id"])
            delivery_id = f"{hook['id']}-{event['id']}"
            snapshot = task.public() if task else {"id": event["task_id"]}
            row = {
                "id": delivery_id,
                "webhook_id": hook["id"],
                "event_id": int(event["id"]),
                "task_id": event["task_id"],
                "event": name,
                "body": build_body(delivery_id, name, event, snapshot),
                "state": "pending",
                "last_error": None,  # every row the same keys: one executemany takes them
            }
            waiting = pending.get(hook["id"], 0)
            if waiting >= self.max_pending:
                # a receiver far behind (or dead) must not grow the table without end
                row["state"] = "failed"
                row["last_error"] = (
                    f"not sent: {waiting} earlier deliveries were still waiting for this receiver"
                )
            else:
                pending[hook["id"]] = waiting + 1
            rows.append(row)
        self.store.add_deliveries(rows)

    def _fan_out_push(self, page: list[dict[str, Any]], horizon: int | None) -> None:
        """A2A push configs follow their tasks' status and state events: each change of
        the A2A state is one delivery (provisioner.server.a2a.push decides). On
        PostgreSQL (a `horizon`) a config reads its task's events in commit order, as the
        webhooks' page was read: by id, one that commits after a later id was read would
        be passed and never pushed (store/commit_order.py)."""
        followed = {e["task_id"] for e in page if e["kind"] in ("status", "state")}
        configs = self.store.push_followers(sorted(followed))
        if not configs:
            return
        task_ids = sorted({c["task_id"] for c in configs})
        tasks = self.store.tasks_by_ids(task_ids)
        contexts = self.store.a2a_contexts(task_ids)
        pending = self.store.pending_counts()
        rows: list[dict[str, Any]] = []
        moved: dict[str, dict[str, Any]] = {}
        for config in configs:
            hook, task_id = config["hook_id"], config["task_id"]
            task = tasks.get(task_id)
            retrying = task is not None and task.status.value == "error" and bool(task.retry_at)
            question = task.question if task is not None else None
            start = push.Seen.of(config["seen"] or {})
            seen = self._push_place(start, horizon)  # saved with what it follows
            protocol = str((config.get("config") or {}).get(push.PROTOCOL_KEY) or push.V10)
            # the task's events after the config's own place, not only this page's: a
            # config given with the message that made the task starts before the cursor
            for event in self._task_events(task_id, seen, horizon):
                seen, state = push.follow(seen, event, retrying)
                if state is None:
                    continue
                delivery_id = f"{hook}-{event['id']}"
                row = {
                    "id": delivery_id,
                    "webhook_id": hook,
                    "event_id": int(event["id"]),
                    "task_id": task_id,
                    "event": state,
                    "body": push.body(
                        delivery_id, task_id, contexts.get(task_id, task_id), state, event,
                        question, protocol,
                    ),
                    "state": "pending",
                    "last_error": None,
                }  # fmt: skip
                waiting = pending.get(hook, 0)
                if waiting >= self.max_pending:
                    row["state"] = "failed"
                    row["last_error"] = f"not sent: {waiting} earlier pushes were still waiting"
                else:
                    pending[hook] = waiting + 1
                rows.append(row)
            if seen != start:
                moved[hook] = seen.json()
        self.store.add_deliveries(rows)
        self.store.save_push_seen(moved)

    @staticmethod
    def _push_place(seen: push.Seen, horizon: int | None) -> push.Seen:
        """A config stored by id (before commit order), on PostgreSQL: it followed every
        event up to its id, and follows the rest in commit order from the start."""
        if horizon is None or seen.xact is not None:
            return seen
        return replace(seen, xact=0, floor=seen.event)

    def _task_events(
        self, task_id: str, seen: push.Seen, horizon: int | None
    ) -> list[dict[str, Any]]:
        """The task's events after the config's place: by id, or in commit order below
        the horizon (above its floor)."""
        if horizon is None or seen.xact is None:
            return self.store.events_page(after=seen.event, limit=PAGE, task_id=task_id)
        return self.store.events_by_xact(
            (seen.xact, seen.event), horizon, PAGE, task_id=task_id, above=seen.floor
        )

    # deliveries -> requests ----------------------------------------------------------------
    def dispatch(self) -> None:
        """Claim due deliveries (the oldest of each subscription or push config) and send
        them."""
        now = time.time()
        due = self.store.due_deliveries(now) + self.store.due_push_deliveries(now)
        for row in sorted(due, key=lambda r: float(r["next_attempt_at"])):
            failing = int(row["attempts"]) > 0
            with self._lock:
                if len(self._inflight) >= self.settings.workers:
                    return
                if row["webhook_id"] in self._inflight:
                    continue
                if failing and len(self._failing) >= self._failing_limit:
                    continue  # the other workers stay free for receivers that answer
                if not self.store.claim_delivery(row["id"], self.me, now, self.lease_s):
                    continue  # another server is sending it
                self._inflight.add(row["webhook_id"])
                if failing:
                    self._failing.add(row["webhook_id"])
            try:
                self._pool.submit(self._deliver, row)
            except RuntimeError:  # stopping: the lease runs out and it is sent later
                with self._lock:
                    self._inflight.discard(row["webhook_id"])
                    self._failing.discard(row["webhook_id"])
                return

    def _deliver(self, row: dict[str, Any]) -> None:
        try:
            self._attempt(row)
        except Exception:
            log.exception("webhook delivery %s failed", row["id"])
        finally:
            with self._lock:
                self._inflight.discard(row["webhook_id"])
                self._failing.discard(row["webhook_id"])
            self._wake.set()  # the subscription's next event may go now

    def _attempt(self, row: dict[str, Any]) -> None:
        if row["owner_removed_at"] is not None:
            self.store.finish_attempt(
                row["id"], self.me, state="failed", last_error="not sent: its owner was removed"
            )
            return
        attempts = int(row["attempts"]) + 1
        stamp = int(time.time())
        headers = {
            "X-Dockyard-Event": row["event"],
            "X-Dockyard-Delivery": row["id"],
            "X-Dockyard-Timestamp": str(stamp),
        }
        key = row.get("secret")
        if "push_config" in row:  # an A2A push: its own headers; signed with its token
            headers.update(push.headers(row["push_config"]))
            key = row["push_config"].get("token") or None
        if key:
            headers["X-Dockyard-Signature"] = signature(key, stamp, row["body"])
        got = send(
            row["url"],
            row["body"],
            headers,
            allow_private=self.settings.allow_private,
            is_admin=row["owner_role"] == "admin",
            timeout_s=self.settings.timeout_s,
            resolver=self.resolver,
        )
        after = after_attempt(attempts, got.status, time.time(), self.settings.retry)
        error: str | None = got.error
        if got.status is not None and after.state != "delivered":
            error = f"HTTP {got.status}"
        if after.state == "failed":
            log.warning("webhook delivery %s failed for good: %s", row["id"], error)
        self.store.finish_attempt(
            row["id"],
            self.me,
            state=after.state,
            attempts=attempts,
            next_attempt_at=after.next_at or 0.0,
            last_status=got.status,
            last_error=error,
            last_response=got.response,
            delivered_at=utcnow() if after.state == "delivered" else None,
        )

    def _prune(self) -> None:
        if time.monotonic() - self._pruned < 600:
            return
        self._pruned = time.monotonic()
        before = (datetime.now(UTC) - KEEP_FINISHED).isoformat(timespec="milliseconds")
        self.store.prune_deliveries(before.replace("+00:00", "Z"))
        self.store.prune_orphan_pushes()
