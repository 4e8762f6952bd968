"""The dashboard's sign-in: sessions in HttpOnly SameSite=Strict cookies through the same
Authenticator as tokens, CSRF on every state change, one-time links, and the task stream
(a real server, no Docker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server import dashboard_api, sessions
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, serve
from tests.stored import stored_task


@dataclass
class Site:
    url: str
    store: Store
    tokens: dict[str, str]
    task: Task  # alice's

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT, follow_redirects=False, **kw)

    def signed_in(self, who: str) -> httpx.Client:
        """A browser-like client holding `who`'s session cookies."""
        c = self.client()
        reply = c.post("/auth/login", json={"token": self.tokens[who]})
        assert reply.status_code == 200, reply.text
        return c


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(
        store,
        DockerBackend("test", dead),
        Catalog(versions=VersionStore(tmp_path / "templates")),
        BridgeBundler(tmp_path / "cache"),
    )
    try:
        with serve(engine, tmp_path) as url:
            tokens = {"admin": admin_token(tmp_path)}
            for name in ("alice", "bob"):
                store.create_user(name, "member")
                tokens[name], _ = store.create_token(name, "laptop", None)
            task = stored_task(store, Status.PAUSED, owner="alice", name="alices-task")
            yield Site(url, store, tokens, task)
    finally:
        store.close()


def csrf_of(c: httpx.Client) -> str:
    return str(c.cookies[sessions.CSRF_COOKIE])


# -- pure rules ---------------------------------------------------------------------------


def test_the_csrf_token_is_bound_to_its_session() -> None:
    a, b = sessions.csrf_token("dy_a"), sessions.csrf_token("dy_b")
    assert a != b and len(a) == 40
    assert sessions.csrf_ok("dy_a", a)
    assert not sessions.csrf_ok("dy_a", b)
    assert not sessions.csrf_ok("dy_a", None)
    assert not sessions.csrf_ok("dy_a", "")
    assert not sessions.csrf_ok("dy_a", "é" * 40)  # not ASCII: refused, never an error


def test_cookies_are_read_exactly() -> None:
    header = "x=1; dockyard_session=dy_abc; dockyard_session_old=dy_zzz"
    assert sessions.cookie(header, "dockyard_session") == "dy_abc"
    assert sessions.cookie("dockyard_sessionX=dy_1", "dockyard_session") is None
    assert sessions.cookie(None, "dockyard_session") is None
    assert sessions.cookie("dockyard_session=", "dockyard_session") is None


def test_session_cookies_are_httponly_and_strict() -> None:
    made = dict(sessions.set_cookie_headers("dy_s", secure=True, max_age=60))
    values = [v for k, v in sessions.set_cookie_headers("dy_s", True, 60)]
    session = next(v for v in values if v.startswith("dockyard_session="))
    csrf = next(v for v in values if v.startswith("dockyard_csrf="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Secure" in session
    assert "HttpOnly" not in csrf and "SameSite=Strict" in csrf  # the page's script reads it
    assert made  # two headers
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert sessions.expiry(now, timedelta(hours=1)) == "2026-01-02T04:04:05.678Z"


# -- over HTTP ----------------------------------------------------------------------------


def test_pages_without_a_session_go_to_sign_in_and_the_api_says_401(site: Site) -> None:
    c = site.client()
    home = c.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/login"
    login = c.get("/login")
    assert login.status_code == 200 and "API token" in login.text
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert c.get("/dashboard/static/app.js").status_code == 200  # assets hold no data
    assert c.get("/api/dockyard/v1/tasks").status_code == 401
    assert c.get("/api/dockyard/v1/stream").status_code == 401
    assert c.post("/auth/logout", json={}).status_code == 401
    # a session cookie that is no session
    c.cookies.set(sessions.SESSION_COOKIE, "dy_" + "A" * 43)
    assert c.get("/api/dockyard/v1/tasks").status_code == 401
    assert c.get("/").status_code == 303


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/static/../../auth.py",
        "/dashboard/static/%2e%2e/%2e%2e/auth.py",
        "/dashboard/static/..%2f..%2fauth.py",
        "/dashboard/static/../index.html",
    ],
)
def test_static_assets_do_not_reach_outside_their_folder(site: Site, path: str) -> None:
    reply = site.client().get(path)
    assert reply.status_code in (401, 404), (path, reply.status_code)
    assert "Authenticator" not in reply.text


def test_a_token_signs_in_and_the_cookie_then_authenticates(site: Site) -> None:
    c = site.client()
    reply = c.post("/auth/login", json={"token": site.tokens["alice"]})
    assert reply.status_code == 200 and reply.json()["user"] == "alice"
    cookies = reply.headers.get_list("set-cookie")
    session = next(v for v in cookies if v.startswith("dockyard_session="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    assert site.tokens["alice"] not in session  # a new token of its own, not the pasted one
    assert c.get("/").status_code == 200
    assert c.get("/api/dockyard/v1/me").json()["user"] == "alice"
    # members see only their own tasks through the cookie too
    bob = site.signed_in("bob")
    assert bob.get(f"/api/dockyard/v1/tasks/{site.task.id}").status_code == 404
    assert bob.get("/api/dockyard/v1/tasks").json()["tasks"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": ""},
        {"token": "dy_" + "A" * 43},
        {"token": "not a token\x00<script>"},
        {"token": "x" * 201},
        {"link": "dy_" + "B" * 43},
        {"link": "../../etc/passwd"},
        {"token": ["dy_x"]},
    ],
)
def test_bad_sign_ins_are_refused_and_audited(site: Site, body: dict[str, Any]) -> None:
    reply = site.client().post("/auth/login", json=body)
    assert reply.status_code in (400, 401), reply.text
    assert "set-cookie" not in reply.headers
    if reply.status_code == 401:
        assert site.store.audit_entries()[-1]["action"] == "auth.failed"


def test_a_sign_in_from_another_site_or_as_a_form_is_refused(site: Site) -> None:
    c = site.client()
    foreign = c.post(
        "/auth/login",
        json={"token": site.tokens["alice"]},
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    form = c.post("/auth/login", data={"token": site.tokens["alice"]})
    assert form.status_code == 415 and "set-cookie" not in form.headers


def test_state_changes_with_the_cookie_need_the_csrf_token(site: Site) -> None:
    c = site.signed_in("alice")
    resume = f"/api/dockyard/v1/tasks/{site.task.id}/resume"
    assert c.post(resume, json={}).status_code == 403  # none
    forged = {sessions.CSRF_HEADER: sessions.csrf_token("dy_" + "C" * 43)}
    assert c.post(resume, json={}, headers=forged).status_code == 403
    bob = site.signed_in("bob")  # another session's token is no good either
    assert c.post(resume, json={}, headers={sessions.CSRF_HEADER: csrf_of(bob)}).status_code == 403
    assert site.store.get(site.task.id).status == Status.PAUSED
    assert site.store.audit_entries()[-1]["action"] == "auth.csrf"
    # reads need none; a bearer token needs none (it is not ambient)
    assert c.get(f"/api/dockyard/v1/tasks/{site.task.id}").status_code == 200
    ok = c.post(resume, json={}, headers={sessions.CSRF_HEADER: csrf_of(c)})
    assert ok.status_code != 403, ok.text
    # bob's session with its own CSRF token still cannot touch alice's task
    theirs = bob.post(resume, json={}, headers={sessions.CSRF_HEADER: csrf_of(bob)})
    assert theirs.status_code == 404


def test_a_one_time_link_signs_in_once(site: Site) -> None:
    bearer = {"Authorization": f"Bearer {site.tokens['alice']}"}
    link = site.client().post("/api/dockyard/v1/dashboard/links", json={}, headers=bearer).json()
    assert link["path"].startswith("/login#link=dy_")
    code = link["path"].split("link=", 1)[1]
    first = site.client()
    assert first.post("/auth/login", json={"link": code}).json()["user"] == "alice"
    assert first.get("/api/dockyard/v1/me").json()["user"] == "alice"
    again = site.client().post("/auth/login", json={"link": code})
    assert again.status_code == 401 and "used already" in again.json()["detail"]
    assert "set-cookie" not in again.headers
    # a link is no session cookie, and a pasted token is no link
    c = site.client()
    c.cookies.set(sessions.SESSION_COOKIE, code)
    assert c.get("/api/dockyard/v1/me").status_code == 401  # revoked once used
    assert site.client().post("/auth/login", json={"link": site.tokens["bob"]}).status_code == 401


def test_an_expired_link_is_refused(site: Site) -> None:
    code, _ = site.store.create_token("alice", sessions.LINK_TOKEN_NAME, "2020-01-01T00:00:00.000Z")
    assert site.client().post("/auth/login", json={"link": code}).status_code == 401


def test_sign_out_ends_the_session(site: Site) -> None:
    c = site.signed_in("alice")
    session = str(c.cookies[sessions.SESSION_COOKIE])
    assert c.post("/auth/logout", json={}).status_code == 403  # without CSRF
    out = c.post("/auth/logout", json={}, headers={sessions.CSRF_HEADER: csrf_of(c)})
    assert out.status_code == 200
    stale = site.client()
    stale.cookies.set(sessions.SESSION_COOKIE, session)
    assert stale.get("/api/dockyard/v1/me").status_code == 401


def test_dockyard_dashboard_prints_a_working_link(site: Site) -> None:
    env = {"DOCKYARD_URL": site.url, "DOCKYARD_TOKEN": site.tokens["bob"]}
    result = CliRunner().invoke(cli, ["dashboard", "--no-open"], env=env)
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith(site.url + "/login#link=dy_")
    code = url.split("link=", 1)[1]
    assert site.client().post("/auth/login", json={"link": code}).json()["user"] == "bob"


def _stream_events(c: httpx.Client, count: int) -> list[tuple[str, Any]]:
    """The first `count` events of the task stream."""
    found: list[tuple[str, Any]] = []
    kind = ""
    with c.stream("GET", "/api/dockyard/v1/stream") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                found.append((kind, json.loads(line.split(":", 1)[1])))
                if len(found) >= count:
                    return found
    return found


def test_the_stream_shows_members_their_own_tasks_and_changes_live(site: Site) -> None:
    stored_task(site.store, Status.PAUSED, owner="bob", name="bobs-task")
    ((kind, tasks),) = _stream_events(site.signed_in("bob"), 1)
    assert kind == "snapshot" and [t["name"] for t in tasks] == ["bobs-task"]
    assert all("bridge_token" not in t for t in tasks)
    ((kind, tasks),) = _stream_events(site.signed_in("admin"), 1)
    assert sorted(t["name"] for t in tasks) == ["alices-task", "bobs-task"]
    # a change after the snapshot comes as a `task` event
    c = site.signed_in("alice")
    with c.stream("GET", "/api/dockyard/v1/stream") as reply:
        lines = reply.iter_lines()
        assert next(lines).startswith("event: snapshot")
        site.store.record(site.task.id, "priority", actor="test", priority=90)
        for line in lines:
            if line.startswith("data:") and '"priority":90' in line:
                break


def test_a_change_during_the_streams_read_reaches_it_without_the_recheck(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event-driven, not polled: with the timer re-read pushed out of reach, a task made,
    a status change, and a change committed while the stream was reading the store (the
    wake the stream used to drop) each arrive."""
    monkeypatch.setattr(dashboard_api, "STREAM_FULL_READ", 3600.0)
    monkeypatch.setattr(dashboard_api, "STREAM_PING", 3600)
    real = dashboard_api._visible_of
    reads = {"n": 0}

    def visible_then_change(store: Store, who: Any, ids: Any) -> Any:
        found = real(store, who, ids)
        reads["n"] += 1
        if reads["n"] == 1:  # the first read after the snapshot, already done
            store.record(site.task.id, "priority", actor="test", priority=77)
        return found

    monkeypatch.setattr(dashboard_api, "_visible_of", visible_then_change)
    c = httpx.Client(base_url=site.url, timeout=httpx.Timeout(30, read=20))
    assert c.post("/auth/login", json={"token": site.tokens["alice"]}).status_code == 200
    with c.stream("GET", "/api/dockyard/v1/stream") as reply:
        lines = reply.iter_lines()
        assert next(lines).startswith("event: snapshot")
        made = stored_task(site.store, Status.PENDING, owner="alice", name="new-one")
        wanted = {f'"id":"{made.id}"', '"priority":77'}
        for line in lines:  # a missed wake: no line for 20 s, a ReadTimeout
            wanted -= {w for w in wanted if line.startswith("data:") and w in line}
            if not wanted:
                break
        site.store.transition(made.id, Status.PENDING, Status.CANCELLED, actor="test")
        for line in lines:
            if line.startswith("data:") and '"status":"cancelled"' in line:
                break
