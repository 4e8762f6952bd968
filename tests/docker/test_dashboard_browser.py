"""The dashboard end to end in a real browser, on a real server and Docker daemon with the
scripted agent: sign in with a token, create from a preset with a parameter, watch the
board go initializing -> working -> idle without a reload, read the live logs, send while
the agent works (queued, then taken), answer its question, pause and resume, and see the
error of an agent that exits 3. Screenshots land in test-artifacts/ on failure."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import chromium, page_of, serious_violations, sign_in, wait_js
from tests.docker.conftest import ServerHandle
from tests.polling import wait_until
from tests.serving import admin_token

__all__ = ["chromium"]

pytestmark = [pytest.mark.docker, pytest.mark.browser]

WAIT = 90  # s: a first start on a busy machine builds images


def _seen(page: Any, selector: str, attribute: str) -> Any:
    return page.evaluate(
        f"(() => {{ const n = document.querySelector({selector!r}); "
        f"return n ? n.getAttribute({attribute!r}) : null; }})()"
    )


def test_a_task_from_sign_in_to_error_in_the_browser(
    server: ServerHandle, chromium: Any, request: pytest.FixtureRequest
) -> None:
    with page_of(chromium, server.url, request.node.name) as page:
        sign_in(page, admin_token(server.home))
        page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

        # create from the default preset, with a parameter changed
        page.get_by_role("link", name="New task").click()
        page.select_option("#template", "scripted")
        page.locator("#param-work_seconds").wait_for()
        page.fill("#param-work_seconds", "3")
        page.fill("#prompt", "Build the <b>dashboard</b>")
        page.fill("#name", "dash-e2e")
        page.click("#create-submit")
        page.wait_for_url("**/#/task/*")
        task_id = page.url.rsplit("/", 1)[1]
        stored = server.engine.store.get(task_id)
        assert stored.parameters["work_seconds"] == 3 and stored.preset == "default"

        # the board follows it through its statuses, live
        page.get_by_role("link", name="Board").first.click()
        row = f"#board tr[data-id='{task_id}']"
        page.locator(row).wait_for()
        seen: list[str] = []

        def watch() -> bool:
            status = _seen(page, row, "data-status")
            if status and (not seen or seen[-1] != status):
                seen.append(status)
            return status == "idle" and "working" in seen

        wait_until(watch, WAIT, "the board to show the task working, then idle", 0.05)
        assert seen[0] in ("pending", "initializing"), seen
        assert "initializing" in seen or seen[0] == "pending", seen
        assert seen.index("working") < len(seen) - 1 and seen[-1] == "idle", seen
        assert page.evaluate("window.__sameDocument === true")  # never reloaded

        # live logs on the task's page; markup in the prompt shows as text
        page.locator(row).get_by_role("link").click()
        page.locator("#logs .log-row", has_text="Done: Build the <b>dashboard</b>").wait_for()

        # send while the agent works: the second prompt waits as queued, then is taken
        page.fill("#send-input", "first follow-up")
        page.click("#send")
        page.locator("#prompts li", has_text="first follow-up").wait_for()
        page.fill("#send-input", "second follow-up")
        page.click("#send")
        second = "#prompts li:first-child"
        page.locator(second, has_text="second follow-up").wait_for()
        states: list[str] = []

        def taken() -> bool:
            state = _seen(page, second, "data-state")
            if state and (not states or states[-1] != state):
                states.append(state)
            return state == "taken"

        wait_until(taken, WAIT, "the second prompt to be taken", 0.05)
        assert states[0] == "queued", states
        page.locator("#logs .log-row", has_text="Done: second follow-up").wait_for()
        page.locator("#task-status [data-status='idle']").wait_for()

        # the agent asks; the answer goes back through the page
        page.fill("#send-input", "/ask Which colour?")
        page.click("#send")
        page.locator("#question").wait_for()
        assert page.inner_text("#question-text") == "Which colour?"
        page.fill("#answer", "Blue")
        page.get_by_role("button", name="Answer").click()
        page.locator("#logs .log-row", has_text="Done: Blue").wait_for()
        page.locator("#question").wait_for(state="hidden")
        assert serious_violations(page) == []

        # pause and resume
        page.click("#pause")
        page.locator("#task-status [data-status='paused']").wait_for(timeout=WAIT * 1000)
        page.click("#resume")
        page.locator("#task-status [data-status='idle']").wait_for(timeout=WAIT * 1000)

        # an agent that exits 3: the task's error, on its page and on the board
        page.fill("#send-input", "/exit 3")
        page.click("#send")
        page.locator("#task-status [data-status='error']").wait_for(timeout=WAIT * 1000)
        assert "code 3" in page.inner_text("#task-detail")
        page.locator("#events tbody tr", has_text="error").first.wait_for()
        page.get_by_role("link", name="Board").first.click()
        page.locator(f"{row}[data-status='error']").wait_for()
        assert "code 3" in page.inner_text(row)
        wait_js(page, "window.__sameDocument === true", "the same page throughout")
