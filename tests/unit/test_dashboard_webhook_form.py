"""The dashboard's form that adds an outbound webhook, in Chromium (fake backend): the
server's refusals (a non-http scheme, credentials in the URL, private, loopback and
metadata addresses, no events, a short secret, another user's task) shown next to their
field, the secret the server made shown once, markup in a URL shown as text, a member
without the admin's box, and no serious accessibility findings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.webhooks import EVENT_NAMES
from tests.browser import chromium, page_of, serious_violations, sign_in
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.serving import admin_token, serve

__all__ = ["bridge_cache", "chromium", "fake"]

FORM_JS = (
    Path(__file__).resolve().parents[2] / "provisioner/server/dashboard/static/webhook_form.js"
)
PUBLIC = "93.184.216.34"  # a global address: resolves without DNS, refused by nothing
HOSTILE_URL = f"https://{PUBLIC}/in?q=<img/src=x/onerror=alert(1)>"


def test_the_forms_events_are_the_servers() -> None:
    """The form lists every event the API takes, in its order (a new one shows up)."""
    block = re.search(r"export const EVENTS = \[(.*?)\];", FORM_JS.read_text(), re.S)
    assert block is not None
    assert tuple(re.findall(r'"([^"]+)"', block.group(1))) == EVENT_NAMES


@pytest.fixture
def site(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def refused(page: Any, url: str, field: str, *, events: tuple[str, ...] | None = None,
            secret: str = "", task: str = "") -> str:  # fmt: skip
    """Submit the form; the error shown under `field` (which is marked invalid)."""
    page.fill("#webhook-url", url)
    page.fill("#webhook-secret", secret)
    page.fill("#webhook-task", task)
    if events is not None:
        for box in page.locator("#webhook-events input[type=checkbox]").all():
            box.set_checked(box.get_attribute("value") in events)
    page.click("#webhook-submit")
    error = page.locator(f"#{field}-error")
    error.wait_for()
    invalid = page.get_attribute(f"#{field}", "aria-invalid")
    assert invalid == "true", (field, error.inner_text())
    assert page.locator("#webhook-form-error").inner_text() == ""
    return str(error.inner_text())


@pytest.mark.browser
def test_webhooks_are_added_and_hostile_ones_refused_with_the_servers_message(
    site: tuple[Harness, str], chromium: Any, request: pytest.FixtureRequest
) -> None:
    h, url = site
    h.store.create_user("bob", "member")
    bob, _ = h.store.create_token("bob", "laptop", None)
    bobs = h.create("bob's", parameters=FAST, owner="bob")
    with page_of(chromium, url, request.node.name) as page:
        sign_in(page, admin_token(h.home))
        page.click("nav >> text=Webhooks")
        page.locator("#webhooks", has_text="No webhooks").wait_for()
        checked = page.locator("#webhook-events input:checked")
        assert sorted(checked.evaluate_all("boxes => boxes.map(b => b.value)")) == [
            "completed", "failed", "input_required"]  # fmt: skip

        said = refused(page, "javascript:alert(document.cookie)", "webhook-url")
        assert said == (
            "The webhook URL must be http or https, not 'javascript' "
            "(for example https://hooks.example.com/dockyard)"
        )
        assert "not 'file'" in refused(page, "file:///etc/passwd", "webhook-url")
        assert "must not carry credentials" in refused(
            page, f"https://user:pw@{PUBLIC}/", "webhook-url"
        )
        said = refused(page, "http://10.1.2.3:8080/hook", "webhook-url")
        assert said.startswith("Webhooks may not call 10.1.2.3: 10.1.2.3 is a private address")
        assert "allow_private" in said  # an admin is told how the server would allow it
        said = refused(page, "http://169.254.169.254/latest/meta-data/", "webhook-url")
        assert "link-local (the cloud metadata service lives there)" in said
        assert "spaces or control" in refused(page, f"https://{PUBLIC}/a b", "webhook-url")
        assert refused(page, f"https://{PUBLIC}/", "webhook-events", events=()).startswith(
            "Say which events to send"
        )
        assert "16 to 256 printable" in refused(
            page,
            f"https://{PUBLIC}/",
            "webhook-secret",
            events=("input_required", "completed", "failed"),
            secret="short",
        )
        assert h.store.webhooks_of(None) == []
        found = {"refused": serious_violations(page)}

        # the server makes the secret: shown once, and it is the one it signs with
        page.fill("#webhook-task", "")
        page.fill("#webhook-secret", "")
        page.fill("#webhook-url", HOSTILE_URL)
        page.check("#event-created")
        page.click("#webhook-submit")
        shown = page.locator("#webhook-secret-shown")
        shown.wait_for()
        (hook,) = h.store.live_webhooks()
        me = h.store.authenticate(admin_token(h.home)).user  # the server's local admin
        assert shown.inner_text() == hook["secret"]
        assert (hook["url"], hook["owner"]) == (HOSTILE_URL, me)
        assert hook["events"] == ["created", "input_required", "completed", "failed"]
        row = page.locator(f"#webhook-table tr[data-webhook='{hook['id']}']")
        row.wait_for()  # the list was refreshed
        assert HOSTILE_URL in row.inner_text()
        assert page.locator("#main img").count() == 0
        assert page.input_value("#webhook-secret") == ""
        found["created"] = serious_violations(page)

        # a secret of one's own is never shown back; an admin may subscribe to any task
        page.fill("#webhook-url", f"https://{PUBLIC}/second")
        page.fill("#webhook-secret", "my-own-secret-0123456789")
        page.fill("#webhook-task", bobs.id)
        page.click("#webhook-submit")
        page.locator("#webhook-created", has_text="the secret you gave").wait_for()
        assert page.locator("#webhook-secret-shown").count() == 0
        second = next(w for w in h.store.live_webhooks() if w["url"].endswith("/second"))
        assert (second["secret"], second["task_id"]) == ("my-own-secret-0123456789", bobs.id)
        page.locator("#webhook-table tbody tr").nth(1).wait_for()
        page.emulate_media(color_scheme="dark")
        found["dark"] = serious_violations(page)
        assert found == {k: [] for k in found}, found

    # a member: no box for everyone's tasks, no loopback (this server's API), and another
    # user's task is not found (its name does not leak)
    with page_of(chromium, url, f"{request.node.name}-member") as page:
        sign_in(page, bob)
        page.click("nav >> text=Webhooks")
        page.locator("#webhook-form").wait_for()
        assert page.locator("#webhook-all").count() == 0
        said = refused(page, "http://127.0.0.1:8000/api/dockyard/v1/tasks", "webhook-url")
        assert said == (
            "Webhooks may not call 127.0.0.1: 127.0.0.1 is a loopback address "
            "(use a public address (only an admin's webhooks may call private ones))"
        )
        admins_task = h.create("the admin's", parameters=FAST)
        said = refused(page, f"https://{PUBLIC}/", "webhook-task", task=admins_task.id)
        assert said.startswith(f"No task '{admins_task.id}'")
        assert h.store.webhooks_of("bob") == []
        page.locator("#webhooks", has_text="No webhooks").wait_for()  # the admin's not listed
