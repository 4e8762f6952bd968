"""Driving Debian's Chromium through Playwright in tests: the browser, a signed-in page
that saves a screenshot when its test fails, and the axe-core accessibility check.

Playwright's own browser downloads need a network CI may not have, so the tests launch
the distribution's Chromium (scripts/setup.sh installs it) at CHROMIUM.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_until

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
ARTIFACTS = Path(
    os.environ.get(
        "DOCKYARD_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"
    )
)
# how long a step may take in the page before the test fails (a real server on a busy
# machine: provisioning alone can take this long)
STEP_MS = 60_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium for the module's tests (skipped where it is not installed)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("DOCKYARD_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (DOCKYARD_REQUIRE_BROWSER is set)")
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_of(browser: Any, url: str, test: str, **context: Any) -> Iterator[Any]:
    """A fresh browser context's page at `url`; on failure its screenshot and the page's
    errors go to ARTIFACTS/<test>.png. Any alert() or uncaught error fails the test."""
    ctx = browser.new_context(base_url=url, **context)
    ctx.set_default_timeout(STEP_MS)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def dialog(d: Any) -> None:
        problems.append(f"a dialog opened: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    try:
        yield page
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[:120]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.txt").write_text("\n".join(problems) + "\n" + page.url)
        except Exception as exc:  # the page may be gone: the test's own error matters more
            (ARTIFACTS / f"{name}.txt").write_text(f"no screenshot: {exc}\n" + "\n".join(problems))
        raise
    finally:
        ctx.close()


def sign_in(page: Any, token: str) -> None:
    """Sign in through the login form, as a user would; ends on the board."""
    page.goto("/")
    page.wait_for_url("**/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#board")
    page.wait_for_selector("#stream-state:text('live')")


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # evaluated by the test, so the page's CSP holds
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


def wait_js(page: Any, expression: str, what: str, timeout: float = STEP_MS / 1000) -> Any:
    """Poll a JavaScript expression until it is truthy (wait_for_function would need
    eval, which the dashboard's CSP forbids)."""
    return wait_until(lambda: page.evaluate(expression), timeout, what, interval=0.05)
