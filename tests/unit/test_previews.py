"""Preview URLs in a browser (fast tier: a real server, engine and bridge on the fake
backend, the workspace's app a host process): the dashboard's session opens a preview
through a grant of that task's port; the previewed page runs sandboxed in an opaque
origin, so it loads (relative assets, WebSocket) but cannot call the API with the
session, read cookies or set the dashboard's; forged, expired and others' grants are
refused. One Playwright test proves it in Chromium."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from provisioner import previews
from provisioner.server.proxy_api import PREVIEW_KEY
from tests.browser import chromium, page_of, sign_in, wait_js
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import free_port, serve

__all__ = ["bridge_cache", "chromium"]

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "workspace_app.py"
API = "/api/dockyard/v1"
KEY = b"k" * 32


# --- the pure rules ---------------------------------------------------------------------


def test_grants_are_signed_scoped_and_short_lived() -> None:
    grant = previews.make_grant(KEY, "task-1", 3000, "alice", now=1000)
    found = previews.read_grant(KEY, grant, now=1001)
    assert found == previews.Grant("task-1", 3000, "alice", 1000 + previews.GRANT_LIFETIME_S)
    assert previews.read_grant(KEY, grant, now=1000 + previews.GRANT_LIFETIME_S) is None
    assert previews.read_grant(b"x" * 32, grant, now=1001) is None  # another server's key
    # another port or task in the same signature: refused
    mac = grant.split(".")[2]
    other = previews.make_grant(KEY, "task-1", 3001, "alice", now=1000).split(".")[1]
    assert previews.read_grant(KEY, f"v1.{other}.{mac}", now=1001) is None
    for hostile in (
        "",
        "v1..",
        "v1.a.b",
        "../../tasks",
        grant + "x",
        "v1." + "a" * 600 + "." + mac,
    ):
        assert previews.read_grant(KEY, hostile, now=1001) is None
    assert set(grant) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_cookies_of_ours_never_cross_to_or_from_an_app() -> None:
    sent = "dockyard_session=dy_x; a=1; dockyard_csrf=c; coder_session_token=t; b=2"
    assert previews.request_cookies(sent) == "a=1; b=2"
    assert previews.request_cookies("dockyard_session=dy_x") is None
    path = "/api/dockyard/v1/previews/g/"
    assert previews.confined_cookie("a=1; Path=/; Domain=example.com; HttpOnly", path) == (
        f"a=1; HttpOnly; Path={path}"
    )
    for refused in ("dockyard_session=x; Path=/", "__Host-a=1; Path=/; Secure", "=x", ""):
        assert previews.confined_cookie(refused, path) is None
    assert previews.is_preview_path("/api/dockyard/v1/previews/g/x")
    assert previews.is_preview_path("/api/v2/previews/g")
    assert not previews.is_preview_path("/api/dockyard/v1/tasks/previews/g")
    assert "allow-same-origin" not in previews.SANDBOX and "allow-scripts" in previews.SANDBOX
    assert "allow-top-navigation" not in previews.SANDBOX


# --- against a real server --------------------------------------------------------------


class Site:
    def __init__(self, h: Harness, url: str, tokens: dict[str, str], port: int) -> None:
        self.h, self.url, self.tokens, self.port = h, url, tokens, port

    def session(self, who: str = "alice") -> dict[str, str]:
        """What a browser signed in to the dashboard sends: the session cookie (a token
        the sign-in made; any valid token authenticates the same way)."""
        return {"cookie": f"dockyard_session={self.tokens[who]}; other=1"}

    def open_preview(self, path: str = "", who: str = "alice") -> str:
        """The grant URL the dashboard's session is sent on to."""
        reply = httpx.get(
            f"{self.url}{API}/tasks/alices/apps/web/{path}",
            headers=self.session(who),
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 303, reply.text
        assert reply.headers["referrer-policy"] == "no-referrer"
        return str(reply.headers["location"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("previews") / "home"
    with harness_at(home, bridge_cache) as h:
        port = free_port()
        h.add_scripted_variant("with-app", apps=[{"name": "web", "port": port, "health": "/"}])
        with serve(h.engine, h.home) as url:
            tokens = {}
            for name in ("alice", "bob", "carol"):
                h.store.create_user(name, "member")
                tokens[name], _ = h.store.create_token(name, "laptop", None)
            task = h.create(
                "hello", template="with-app", owner="alice", name="alices", parameters=FAST
            )
            h.wait_idle(task.id)
            workspace = h.backend.host_path(task.id, "/workspace")
            shutil.copy(APP, workspace / "workspace_app.py")
            session = h.backend.open_session(
                task.id,
                ["sh", "-c", f"exec python3 workspace_app.py {port} 127.0.0.1 >app.log 2>&1"],
                tty=False,
            )
            try:
                headers = {"Authorization": f"Bearer {tokens['alice']}"}
                wait_until(
                    lambda: (
                        httpx.get(
                            f"{url}{API}/tasks/alices/apps/web/",
                            headers=headers,
                            timeout=HTTP_TIMEOUT,
                        ).status_code
                        == 200
                    ),
                    20,
                    "the workspace's app",
                )
                yield Site(h, url, tokens, port)
            finally:
                session.close()


def test_the_session_opens_a_preview_through_a_grant(site: Site) -> None:
    location = site.open_preview("some/page?x=1")
    assert location.startswith(f"{API}/previews/v1.") and location.endswith("/some/page?x=1")
    # the grant alone opens it (a sandboxed page's requests carry no cookie)
    reply = httpx.get(site.url + location, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    assert reply.text == "hello from the workspace: /some/page?x=1 auth=none"
    csp = reply.headers["content-security-policy"]
    assert csp == previews.SANDBOX and "allow-same-origin" not in csp
    assert reply.headers["referrer-policy"] == "no-referrer"
    grant_root = location.split("/some/")[0] + "/"
    # the root without its slash goes to it (relative links resolve under the grant)
    bare = httpx.get(site.url + grant_root[:-1], timeout=HTTP_TIMEOUT)
    assert bare.status_code == 308 and bare.headers["location"] == grant_root
    # our cookies never reach the app, its own do; a form post from the sandboxed page
    # (Origin: null, a form body) reaches it too
    seen = httpx.get(f"{site.url}{grant_root}cookies", headers=site.session(), timeout=HTTP_TIMEOUT)
    assert seen.text == "cookie=other=1"
    posted = httpx.post(
        f"{site.url}{grant_root}p",
        content=b"a=1",
        headers={"origin": "null", "content-type": "application/x-www-form-urlencoded"},
        timeout=HTTP_TIMEOUT,
    )
    assert posted.text == "posted: a=1"
    # what the app sets stays inside its preview: ours and __Host- refused, Path confined
    set_ = httpx.get(f"{site.url}{grant_root}set-cookies", timeout=HTTP_TIMEOUT)
    assert set_.headers.get_list("set-cookie") == [f"mine=1; HttpOnly; Path={grant_root}"]
    # the WebSocket under the grant, from the sandboxed page's null origin
    ws_url = site.url.replace("http://", "ws://") + grant_root + "echo"
    with connect(ws_url, origin="null", open_timeout=HTTP_TIMEOUT) as ws:  # type: ignore[arg-type]
        ws.send("hi")
        assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: hi"
    events = [e["reason"] for e in site.h.store.events(site.h.task("alices").id)]
    assert any("opened in a browser" in str(r) for r in events)


def test_grants_and_sessions_are_refused_where_they_must_be(site: Site) -> None:
    location = site.open_preview()
    grant = location.split("/")[5]
    _, body, mac = grant.split(".")
    forged = f"v1.{body[:-2]}xx.{mac}"
    for bad in (forged, "v1.e30." + "A" * 43, "nothing", "..", "%2e%2e"):
        reply = httpx.get(f"{site.url}{API}/previews/{bad}/", timeout=HTTP_TIMEOUT)
        assert reply.status_code in (401, 404), (bad, reply.text)
        assert "hello" not in reply.text
    assert httpx.get(f"{site.url}{API}/previews/{forged}/", timeout=HTTP_TIMEOUT).status_code == 401
    # a WebSocket under a forged grant: refused as the other routes refuse (4401)
    with connect(site.url.replace("http://", "ws://") + f"{API}/previews/{forged}/echo") as ws:
        assert json.loads(ws.recv(timeout=HTTP_TIMEOUT))["status"] == 401
    # a grant signed with the server's key but expired, or for another's task: refused
    key = bytes.fromhex(site.h.store.setting(PREVIEW_KEY)["key"])  # type: ignore[index]
    task_id = site.h.task("alices").id
    old = previews.make_grant(key, task_id, site.port, "alice", time.time() - 7200)
    assert httpx.get(f"{site.url}{API}/previews/{old}/", timeout=HTTP_TIMEOUT).status_code == 401
    bobs = previews.make_grant(key, task_id, site.port, "bob", time.time())
    assert httpx.get(f"{site.url}{API}/previews/{bobs}/", timeout=HTTP_TIMEOUT).status_code == 404
    # a removed user's grant stops at once
    carols = previews.make_grant(key, task_id, site.port, "carol", time.time())
    site.h.store.remove_user("carol")
    assert httpx.get(f"{site.url}{API}/previews/{carols}/", timeout=HTTP_TIMEOUT).status_code == 401
    # bob's session: alice's task is not found, no grant made
    reply = httpx.get(
        f"{site.url}{API}/tasks/alices/apps/web/", headers=site.session("bob"), timeout=HTTP_TIMEOUT
    )
    assert reply.status_code == 404
    # no credential at all: 401
    assert (
        httpx.get(f"{site.url}{API}/tasks/alices/apps/web/", timeout=HTTP_TIMEOUT).status_code
        == 401
    )
    # a state change with the session goes nowhere: without CSRF 403, with it still 403
    # (a preview is opened by GET, then used at its grant)
    csrf = previews_csrf(site.tokens["alice"])
    for extra in ({}, {"x-dockyard-csrf": csrf}):
        reply = httpx.post(
            f"{site.url}{API}/tasks/alices/apps/web/p",
            headers={**site.session(), **extra, "content-type": "application/json"},
            content=b"{}",
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 403, reply.text
    # a page elsewhere: its POST with the cookie is refused by Origin before anything
    reply = httpx.post(
        f"{site.url}{API}/tasks/alices/apps/web/p",
        headers={**site.session(), "origin": "http://evil.example"},
        json={},
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 403
    # scripts with a token still use the task's path directly, sandboxed too
    direct = httpx.get(
        f"{site.url}{API}/tasks/alices/apps/web/x",
        headers={"Authorization": f"Bearer {site.tokens['alice']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert direct.status_code == 200 and direct.headers["content-security-policy"]


def previews_csrf(session: str) -> str:
    from provisioner.server.sessions import csrf_token

    return csrf_token(session)


@pytest.mark.browser
def test_a_preview_in_chromium_loads_but_cannot_use_the_session(
    site: Site, chromium: Any, request: pytest.FixtureRequest
) -> None:
    with page_of(chromium, site.url, request.node.name) as page:
        sign_in(page, site.tokens["alice"])
        page.goto(f"{site.url}/#/task/alices")
        link = page.locator("#apps a.app-link")
        link.wait_for()
        href = link.get_attribute("href")
        assert href == f"{API}/tasks/alices/apps/web/"
        before = len(site.h.store.audit_entries(limit=100000))
        page.goto(site.url + href + "page/")
        assert urlsplit(page.url).path.startswith(f"{API}/previews/v1.")
        page.locator("#page").wait_for()
        results = wait_js(
            page,
            "window.results && window.results.api && window.results.ws && window.results",
            "the preview's script to finish",
        )
        assert results["asset"] == "loaded"  # a relative asset under the grant
        assert results["cookie"] == "denied"  # an opaque origin: no cookies to read
        assert results["api"] == "blocked", results  # cross-origin: its answer unreadable
        assert results["ws"] == "echo: from the page"
        # and the API call went out without the session: a 401, audited
        failed = [
            e
            for e in site.h.store.audit_entries(limit=100000)[before:]
            if e["action"] == "auth.failed" and e["target"] == f"GET {API}/tasks"
        ]
        assert failed, "the preview's API call should have arrived without a credential"
