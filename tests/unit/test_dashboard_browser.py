"""The dashboard in a real browser on the fast tier (fake backend, real bridge and agent):
markup in names, prompts and logs stays text, the board is live, notifications, errors
next to their field, and no serious accessibility findings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from provisioner.lifecycle import Status
from provisioner.model import QueueFields
from tests.browser import chromium, page_of, serious_violations, sign_in, wait_js
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.serving import admin_token, serve

__all__ = ["bridge_cache", "chromium", "fake"]

pytestmark = pytest.mark.browser

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
