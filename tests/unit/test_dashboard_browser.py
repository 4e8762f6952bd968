"""The dashboard in a real browser on the fast tier (fake backend, real bridge and agent):
markup in names, prompts and logs stays text, the board is live, notifications, errors
next to their field, and no serious accessibility findings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.lifecycle import Status
from provisioner.model import QueueFields
from provisioner.templating.push import pack_folder
from provisioner.triggers import github_signature
from tests.browser import chromium, page_of, serious_violations, sign_in, wait_js
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, admin_token, serve
from tests.variants import write_scripted_variant

__all__ = ["bridge_cache", "chromium", "fake"]

pytestmark = pytest.mark.browser

SECRET = "s3cret-s3cret-s3cret"
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
# a stand-in for the browser's Notification that records what was shown
RECORD_NOTIFICATIONS = """
window.__shown = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__shown.push(options.body); }
};
"""


@pytest.fixture
def site(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def test_markup_in_names_prompts_and_logs_is_shown_as_text(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    task = h.create(f"Fix {HOSTILE}", parameters=FAST, queue=QueueFields(title=f"T {HOSTILE}"))
    h.wait_idle(task.id)
    with page_of(chromium, url, request.node.name) as page:
        sign_in(page, admin_token(h.home))
        row = page.locator(f"#board tr[data-id='{task.id}']")
        row.wait_for()
        assert HOSTILE in row.inner_text()  # the title, as written
        row.get_by_role("link").click()
        page.locator("#logs .log-row", has_text="Done: Fix").wait_for()
        page.fill("#send-input", f"again {HOSTILE}")
        page.click("#send")
        page.locator("#prompts li[data-state='taken']", has_text="again").wait_for()
        page.locator("#logs .log-row", has_text="Done: again").wait_for()
        assert HOSTILE in page.locator("#logs").inner_text()
        assert page.locator("#main img, #main script").count() == 0
        assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0


def test_the_board_is_live_and_notifies(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    with page_of(chromium, url, request.node.name) as page:
        page.add_init_script(RECORD_NOTIFICATIONS)
        sign_in(page, admin_token(h.home))
        task = h.create("/ask Which database?", parameters=FAST, queue=QueueFields(tags=("db",)))
        row = page.locator(f"#board tr[data-id='{task.id}']")
        row.wait_for()  # appeared without a reload
        page.locator(f"#board tr[data-id='{task.id}'][data-status='input_required']").wait_for()
        assert "Which database?" in row.inner_text()
        wait_js(page, "window.__shown.some(s => s.includes('needs your input'))", "notified")
        # filters: by status and tag, in place
        page.select_option("#f-status", "idle")
        assert row.is_hidden()
        page.select_option("#f-status", "input_required")
        assert row.is_visible()
        page.fill("#f-tag", "nope")
        assert row.is_hidden()
        page.fill("#f-tag", "db")
        assert row.is_visible()
        h.engine.send(task.id, "/complete SUCCESS done")
        h.wait_status(task.id, Status.COMPLETED)
        wait_js(page, "window.__shown.some(s => s.includes('completed'))", "notified")


def test_create_shows_the_servers_error_next_to_its_field(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    with page_of(chromium, url, request.node.name) as page:
        sign_in(page, admin_token(h.home))
        page.goto("/#/new?template=scripted")
        page.locator("#param-work_seconds").wait_for()
        assert page.input_value("#template") == "scripted"
        assert page.input_value("#preset") == "default"
        page.fill("#param-work_seconds", "99999")
        page.fill("#prompt", "hello")
        page.click("#create-submit")
        error = page.locator("#param-work_seconds-error")
        error.wait_for()
        assert "maximum" in error.inner_text()
        assert page.get_attribute("#param-work_seconds", "aria-invalid") == "true"
        assert h.store.list_tasks() == []
        page.fill("#param-work_seconds", "0.05")
        page.fill("#name", "bad name!")
        page.click("#create-submit")
        page.locator("#name-error").wait_for()
        page.fill("#name", "")
        page.click("#create-submit")
        page.wait_for_url("**/#/task/*")
        (task,) = h.store.list_tasks()
        assert task.parameters["work_seconds"] == 0.05


def test_no_serious_accessibility_findings(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    task = h.create("hello", parameters=FAST)
    h.wait_idle(task.id)
    for scheme in ("light", "dark"):
        with page_of(chromium, url, f"{request.node.name}-{scheme}", color_scheme=scheme) as page:
            page.goto("/login")
            assert serious_violations(page) == []
            sign_in(page, admin_token(h.home))
            page.locator(f"#board tr[data-id='{task.id}']").wait_for()
            found = {"board": serious_violations(page)}
            page.goto(f"/#/task/{task.id}")
            page.locator("#logs .log-row").first.wait_for()
            page.locator("#events tbody tr").first.wait_for()
            found["task"] = serious_violations(page)
            page.goto("/#/new")
            page.locator("#param-work_seconds, #parameters .field").first.wait_for()
            found["create"] = serious_violations(page)
            page.goto("/#/templates")
            page.locator("#templates article").first.wait_for()
            found["templates"] = serious_violations(page)
            page.goto("/#/capacity")
            page.locator("#capacity-summary").wait_for()
            found["capacity"] = serious_violations(page)
            assert found == {k: [] for k in found}, found


def _api(url: str, home: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", admin_headers(home))
    return httpx.request(
        method, f"{url}/api/dockyard/v1{path}", headers=headers, timeout=HTTP_TIMEOUT, **kw
    )


def test_schedules_triggers_and_webhooks_pages(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    body = {"name": "nightly", "cron": "0 3 * * *", "template": "scripted",
            "parameters": FAST, "prompt": f"Tidy {HOSTILE}"}  # fmt: skip
    assert _api(url, h.home, "POST", "/schedules", json=body).status_code == 201
    trigger = {"name": "hook", "secret": SECRET, "template": "scripted", "filter": "false"}
    assert _api(url, h.home, "POST", "/triggers", json=trigger).status_code == 201
    for secret in (SECRET, "w" * 20):  # one filtered, one with a bad signature
        raw = b'{"prompt": "x"}'
        signed = {"content-type": "application/json",
                  "x-hub-signature-256": github_signature(secret, raw)}  # fmt: skip
        httpx.post(
            f"{url}/api/dockyard/v1/triggers/hook",
            content=raw,
            headers=signed,
            timeout=HTTP_TIMEOUT,
        )
    h.store.create_webhook("admin", "https://example.com/in", ["completed"], SECRET)
    with page_of(chromium, url, request.node.name) as page:
        sign_in(page, admin_token(h.home))
        page.click("nav >> text=Schedules")
        row = page.locator("#schedule-table tr[data-schedule='nightly']")
        row.wait_for()
        assert row.locator("li").count() == 3  # the next runs
        found = {"schedules": serious_violations(page)}
        row.get_by_role("button", name="Pause nightly").click()
        page.locator("tr[data-schedule='nightly'][data-paused='true']").wait_for()
        assert _api(url, h.home, "GET", "/schedules/nightly").json()["paused"] is True
        loads = page.get_attribute("#schedules", "data-loads")
        page.get_by_role("button", name="Run now nightly").click()
        wait_js(page, f"document.querySelector('#schedules').dataset.loads !== '{loads}'", "reload")
        page.get_by_role("button", name="Runs of nightly").click()
        page.locator("#schedule-runs td", has_text="started").wait_for()
        (task,) = h.store.list_tasks()
        assert task.source == "cron"
        page.get_by_role("button", name="Delete nightly").click()
        page.get_by_role("button", name="Delete nightly").click()  # "Really delete?"
        page.locator("#schedules", has_text="No schedules").wait_for()

        page.click("nav >> text=Triggers")
        page.get_by_role("button", name="Deliveries of hook").click()
        page.locator("#delivery-table tr[data-outcome='filtered']").wait_for()
        rejected = page.locator("#delivery-table tr[data-outcome='rejected']")
        assert "signature" in rejected.inner_text()
        found["triggers"] = serious_violations(page)
        page.click("nav >> text=Webhooks")
        page.locator("#webhook-table", has_text="https://example.com/in").wait_for()
        found["webhooks"] = serious_violations(page)
        page.emulate_media(color_scheme="dark")
        found["webhooks-dark"] = serious_violations(page)
        assert found == {k: [] for k in found}, found
        assert page.locator("#main img, #main script").count() == 0


HOSTILE_DIFF = (
    f"diff --git a/x.html b/x.html\n--- a/x.html\n+++ b/x.html\n@@ -1 +1 @@\n-old\n+{HOSTILE}\n"
)


def test_the_diff_is_text_and_templates_are_pushed_and_activated_by_admins_only(
    site: tuple[Harness, str],
    chromium: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, url = site
    task = h.create("hello", parameters=FAST)
    h.wait_idle(task.id)
    diff = {"base_commit": "a" * 40, "from_commit": "a" * 40, "head_commit": "b" * 40,
            "branch": "dockyard/hello", "commits": [{"commit": "b" * 40, "author": "agent",
            "subject": f"Add {HOSTILE}"}], "files": [{"path": "x.html", "added": 1, "deleted": 1}],
            "added": 1, "deleted": 1, "diff": HOSTILE_DIFF}  # fmt: skip
    monkeypatch.setattr(h.engine.gitwork, "diff", lambda task, **kw: diff)
    folders = {}
    for n in ("one", "two"):
        folders[n] = write_scripted_variant(tmp_path / n, "demo", description=f"version {n}")
    archive = pack_folder(folders["one"])
    gzip = {**admin_headers(h.home), "content-type": "application/gzip"}
    pushed = _api(url, h.home, "POST", "/templates", content=archive, headers=gzip)
    assert pushed.status_code == 201, pushed.text
    first = pushed.json()["version"]
    (tmp_path / "two.tar.gz").write_bytes(pack_folder(folders["two"]))
    h.store.create_user("bob", "member")
    bob, _ = h.store.create_token("bob", "laptop", None)

    with page_of(chromium, url, request.node.name) as page:
        sign_in(page, admin_token(h.home))
        page.goto(f"/#/task/{task.id}")
        page.click("#show-diff")
        page.locator("#diff .diff-add").wait_for()
        assert HOSTILE in page.locator("#diff .diff-add").inner_text()
        assert HOSTILE in page.locator("#diff-commits").inner_text()
        assert page.locator("#main img, #main script").count() == 0
        assert serious_violations(page) == []

        page.click("nav >> text=Templates")
        page.set_input_files("#push-file", str(tmp_path / "two.tar.gz"))
        page.fill("#push-label", "second")
        page.click("#push-submit")
        page.locator("#push-result", has_text="Pushed demo").wait_for()
        second = h.engine.catalog.get("demo")
        assert second.config.description == "version two"
        page.get_by_role("button", name="Show versions of demo").click()
        page.get_by_role("button", name=f"Activate demo version {first}").click()
        page.get_by_role("button", name=f"Activate demo version {second.version}").wait_for()
        assert h.engine.catalog.get("demo").version == first
        assert serious_violations(page) == []

    with page_of(chromium, url, f"{request.node.name}-member") as page:
        sign_in(page, bob)
        page.click("nav >> text=Templates")
        page.get_by_role("button", name="Show versions of demo").click()
        page.locator("article[data-template=demo] .versions tbody tr").first.wait_for()
        assert page.locator("#push-form, button.activate").count() == 0
    # and the API refuses a member all the same
    refused = httpx.post(
        f"{url}/api/dockyard/v1/templates/demo/versions/{first}/activate",
        headers={"Authorization": f"Bearer {bob}"},
        timeout=HTTP_TIMEOUT,
    )
    assert refused.status_code == 403
    for bad in ("..", "%2e%2e%2f..", "nope"):
        missing = _api(url, h.home, "POST", f"/templates/demo/versions/{bad}/activate")
        assert missing.status_code == 404, (bad, missing.text)
