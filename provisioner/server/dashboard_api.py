"""The web dashboard: its pages and assets, sign-in and sign-out, one-time login links,
and the live stream of task changes the board listens to.

The pages are static files (provisioner/server/dashboard/); every datum they show comes
from the /api/dockyard/v1 routes, called with the session cookie. Auth is the Authenticator's
(auth.py): only the sign-in page, its assets and POST /auth/login pass without a
credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from provisioner.auth.tokens import Principal
from provisioner.errors import Unauthenticated
from provisioner.live_board import Shown, board_events
from provisioner.model import Task
from provisioner.server import sessions
from provisioner.server.auth import caller, client_address
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.store.store import Store

ASSETS = Path(__file__).with_name("dashboard")
# Scripts only from this server: a task name, prompt or log line that holds markup is
# shown as text by the pages (textContent), and could not load a script if it slipped.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# how often the stream re-reads every task the caller may see: the only way it learns of
# another server's writes and deletions (they do not wake this process). This process's
# changes wake it at once with their task ids, and it re-reads only those. A stream lasts
# STREAM_LIFETIME s (the browser's EventSource reconnects by itself; a bounded stream
# never holds a server's shutdown for long).
STREAM_FULL_READ = 2.0
# more changed tasks than this in one round are read as a full read: as cheap by then, and
# a query's bound parameters stay few
STREAM_READ_BY_ID_MAX = 200
STREAM_LIFETIME = 300.0
STREAM_PING = 15  # s between keep-alive comments


class Login(BaseModel):
    """Body of POST /auth/login: an API token pasted, or a one-time link's code."""

    token: str | None = Field(None, max_length=200)
    link: str | None = Field(None, max_length=200)


def _page(name: str) -> FileResponse:
    return FileResponse(ASSETS / name, media_type="text/html", headers=PAGE_HEADERS)


def _visible(store: Store, who: Principal) -> list[Task]:
    """The tasks the board shows: a member's own; an admin's, everyone's."""
    return store.list_tasks(owner=None if who.is_admin else who.user)


def _visible_of(store: Store, who: Principal, ids: Collection[str]) -> dict[str, Task]:
    """Of the tasks of these ids, the ones the board shows (as _visible would find them):
    one deleted, a warm workspace, or another member's is absent."""
    return {
        task_id: task
        for task_id, task in store.tasks_by_ids(ids).items()
        if task.kind == "task" and (who.is_admin or task.owner == who.user)
    }


def _event(kind: str, data: Any) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data, separators=(",", ":"), default=str)}


async def task_changes(
    store: Store, who: Principal, request: Request
) -> AsyncIterator[dict[str, str]]:
    """`snapshot` (every visible task), then `task` per task that changed and `removed`
    per task gone. A committed change of a task in this process (the store's
    `_changed(task_id)`: created, moved, updated, recorded, claimed, deleted) wakes it at
    once, and only that task is read again; every STREAM_FULL_READ s it reads them all,
    for other servers sharing the database. Log lines alone change no row: they do not
    wake it."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    changed: set[str] = set()
    unknown = False  # a change whose tasks the store did not name: read them all

    def note(ids: frozenset[str]) -> None:  # on the loop: the set is only touched here
        nonlocal unknown
        if ids:
            changed.update(ids)
        else:
            unknown = True
        woken.set()

    def wake(ids: frozenset[str]) -> None:  # called from the engine's threads
        loop.call_soon_threadsafe(note, ids)

    store.task_listeners.add(wake)
    try:
        found = await run_in_threadpool(_visible, store, who)
        shown: dict[str, Shown] = {}
        board_events(shown, {t.id: t for t in found}, None)
        yield _event("snapshot", [shown[t.id].public for t in found])
        started = last_full = time.monotonic()
        while time.monotonic() - started < STREAM_LIFETIME:
            due = last_full + STREAM_FULL_READ - time.monotonic()
            if due > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), due)
            # taken before the read, never after it: a change committed while the store
            # is read (or while the events go out) wakes the next round at once
            woken.clear()
            ids, full = set(changed), unknown or time.monotonic() - last_full >= STREAM_FULL_READ
            full = full or len(ids) > STREAM_READ_BY_ID_MAX
            changed.clear()
            unknown = False
            if await request.is_disconnected():
                return
            if full:
                last_full = time.monotonic()
                found = await run_in_threadpool(_visible, store, who)
                events = board_events(shown, {t.id: t for t in found}, None)
            elif ids:
                now = await run_in_threadpool(_visible_of, store, who, ids)
                events = board_events(shown, now, ids)
            else:
                continue
            for kind, data in events:
                yield _event(kind, data)
    finally:
        store.task_listeners.discard(wake)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def build_dashboard_router(store: Store) -> APIRouter:
    """The dashboard's pages, sign-in, links and stream."""
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return _page("index.html")

    @r.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return _page("login.html")

    @r.post("/auth/login", include_in_schema=False)
    def login(body: Login, request: Request) -> Response:
        """A session for the holder of an API token or of a one-time link."""
        remote = client_address(request.scope)
        user: str | None = None
        if body.link:
            user = store.consume_token(body.link, sessions.LINK_TOKEN_NAME)
            why = "This login link is unknown, expired or was used already"
            hint = "run `dockyard dashboard` again for a fresh link"
        elif body.token:
            why, hint = "", "paste an API token (dockyard token create)"
            try:
                user = store.authenticate(body.token.strip()).user
            except Unauthenticated as exc:
                why = exc.message
        else:
            why, hint = "Paste an API token", "make one with: dockyard token create"
        if user is None:
            store.record_audit("anonymous", "auth.failed", "POST /auth/login", why, remote)
            return JSONResponse({"detail": why, "hint": hint}, status_code=401)
        expires = sessions.expiry(datetime.now(UTC), sessions.SESSION_LIFETIME)
        session, record = store.create_token(user, sessions.SESSION_TOKEN_NAME, expires)
        via = "link" if body.link else "token"
        store.record_audit(f"user:{user}", "dashboard.login", record["id"], f"by {via}", remote)
        reply = JSONResponse({"user": user, "expires_at": expires})
        max_age = int(sessions.SESSION_LIFETIME.total_seconds())
        for name, value in sessions.set_cookie_headers(session, _secure(request), max_age):
            reply.headers.append(name, value)
        return reply

    @r.post("/auth/logout", include_in_schema=False)
    def logout(request: Request, who: Principal = Depends(caller)) -> Response:
        """End this session: its token is revoked and its cookies cleared."""
        if sessions.cookie(request.headers.get("cookie"), sessions.SESSION_COOKIE):
            store.revoke_token(who.token_id, who)
        reply = JSONResponse({"ok": True})
        for name, value in sessions.set_cookie_headers("", _secure(request), 0):
            reply.headers.append(name, value)
        return reply

    @r.post("/api/v2/dashboard/links", responses=ERROR_RESPONSES)
    def new_link(who: Principal = Depends(caller)) -> dict[str, Any]:
        """A one-time login link for the caller's own dashboard session (used once, for
        a few minutes): `dockyard dashboard` prints and opens it."""
        expires = sessions.expiry(datetime.now(UTC), sessions.LINK_LIFETIME)
        code, _ = store.create_token(who.user, sessions.LINK_TOKEN_NAME, expires)
        # in the fragment: a browser never sends it to a server or in a Referer
        return {"path": f"/login#link={code}", "expires_at": expires}

    @r.get("/api/v2/stream", include_in_schema=False)
    async def stream(request: Request, who: Principal = Depends(caller)) -> EventSourceResponse:
        """Server-sent events of the caller's tasks (an admin's: everyone's)."""
        return EventSourceResponse(
            task_changes(store, who, request),
            ping=STREAM_PING,
            headers={"cache-control": "no-store"},
        )

    return r


def mount_dashboard(app: FastAPI, store: Store) -> None:
    """The dashboard's routes and its static assets, on the app."""
    app.include_router(build_dashboard_router(store))
    app.mount(
        "/dashboard/static", StaticFiles(directory=ASSETS / "static"), name="dashboard-static"
    )
