"""Inbound webhooks (triggers) against a real server on the fake engine (the real bridge
and scripted agent): signed deliveries make tasks, everything else makes nothing and is
recorded, and the hostile inputs are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.trigger_limits import BAD_PER_TRIGGER, RECORD_EACH
from provisioner.triggers import MAX_BODY, github_signature
from provisioner.webhooks import signature
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve

__all__ = ["bridge_cache"]

SECRET = "s3cret-s3cret-s3cret"


@dataclass
class Served:
    h: Harness
    url: str
    headers: dict[str, str]

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method,
            self.url + "/api/dockyard/v1" + path,
            headers=self.headers,
            timeout=HTTP_TIMEOUT,
            **kw,
        )

    def deliver(
        self,
        name: str,
        payload: Any,
        *,
        event: str = "issues",
        delivery: str | None = "d-1",
        secret: str = SECRET,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A GitHub-style delivery, signed with `secret`, and no API token."""
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = {
            "content-type": "application/json",
            "x-github-event": event,
            "x-hub-signature-256": github_signature(secret, body),
            **({"x-github-delivery": delivery} if delivery else {}),
            **(headers or {}),
        }
        return httpx.post(
            f"{self.url}/api/dockyard/v1/triggers/{name}",
            content=body,
            headers=sent,
            timeout=HTTP_TIMEOUT,
        )

    def tasks(self) -> list[dict[str, Any]]:
        return [t.public() for t in self.h.store.list_tasks()]

    def deliveries(self, name: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/triggers/{name}/deliveries").json()["deliveries"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("triggers")
    with harness_at(root / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        yield Served(h, url, admin_headers(h.home))


def issue(action: str = "opened", title: str = "Crash on start", body: str = "It crashes") -> Any:
    return {
        "action": action,
        "issue": {
            "title": title,
            "body": body,
            "html_url": "https://github.com/o/r/issues/7",
            "labels": [{"name": "dockyard"}],
        },
    }


def make(served: Served, trigger: str, **fields: Any) -> httpx.Response:
    body = {"name": trigger, "secret": SECRET, "template": "scripted", "parameters": FAST}
    return served.api("POST", "/triggers", json={**body, **fields})


def test_a_signed_github_delivery_makes_one_task_with_the_rendered_prompt(
    served: Served,
) -> None:
    made = make(served, "gh-issues", form="github-issue")
    assert made.status_code == 201, made.text
    assert "secret" not in made.json() and SECRET not in made.text  # the caller's: never
    payload = issue(title="Crash on start", body="Steps: {{ ''.__class__.__mro__ }}\x1b[2J")
    reply = served.deliver("gh-issues", payload, delivery="gh-1")
    assert reply.status_code == 201, reply.text
    task_id = reply.json()["task"]["id"]
    task = served.h.task(task_id)
    # the payload's text is data, never a template: it arrives as written (the escape
    # that would clear the agent's screen shown as U+FFFD)
    assert task.prompt == (
        "Crash on start\n\nSteps: {{ ''.__class__.__mro__ }}\ufffd[2J\n\n"
        "(https://github.com/o/r/issues/7)"
    )
    assert task.source == "webhook" and task.created_by == "trigger:gh-issues"
    assert task.owner == served.api("GET", "/triggers/gh-issues").json()["owner"]
    events = [e for e in served.h.store.events(task_id) if e["kind"] == "trigger"]
    assert "gh-1" in events[0]["reason"]
    served.h.wait_idle(task_id)  # a real task: provisioned, the prompt taken
    [seen] = served.deliveries("gh-issues")
    assert seen["outcome"] == "accepted" and seen["task_id"] == task_id
    assert seen["delivery_id"] == "gh-1" and seen["event"] == "issues"

    # the same delivery again (a replay, or GitHub's redelivery of a success): nothing
    before = len(served.tasks())
    again = served.deliver("gh-issues", payload, delivery="gh-1")
    assert again.status_code == 200 and again.json()["outcome"] == "replayed"
    assert len(served.tasks()) == before
    assert served.deliveries("gh-issues")[0]["outcome"] == "replayed"


def test_a_wrong_or_missing_signature_is_401_and_makes_nothing(served: Served) -> None:
    make(served, "gh-sig", form="github-issue")
    before = len(served.tasks())
    wrong = served.deliver("gh-sig", issue(), secret="not-the-secret-at-all", delivery="x-1")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    assert SECRET not in wrong.text
    unsigned = httpx.post(
        f"{served.url}/api/v2/triggers/gh-sig",
        json=issue(),
        headers={"x-github-delivery": "x-2"},
        timeout=HTTP_TIMEOUT,
    )
    assert unsigned.status_code == 401 and "no signature" in unsigned.json()["detail"]
    # a body changed after signing
    body = json.dumps(issue()).encode()
    tampered = served.deliver(
        "gh-sig",
        None,
        raw=body + b" ",
        headers={"x-hub-signature-256": github_signature(SECRET, body)},
    )
    assert tampered.status_code == 401
    assert len(served.tasks()) == before
    seen = served.deliveries("gh-sig")
    assert [d["outcome"] for d in seen] == ["rejected"] * 3
    # a rejected delivery spends no delivery id: the genuine one still goes through
    assert all(d["delivery_id"] is None for d in seen)
    assert served.deliver("gh-sig", issue(), delivery="x-1").status_code == 201


def test_a_filtered_delivery_is_recorded_and_makes_nothing(served: Served) -> None:
    make(served, "gh-filter", form="github-issue")
    before = len(served.tasks())
    closed = served.deliver("gh-filter", issue(action="closed"), delivery="f-1")
    assert closed.status_code == 200 and closed.json()["outcome"] == "filtered"
    other = served.deliver("gh-filter", {"zen": "hi"}, event="ping", delivery="f-2")
    assert other.json()["outcome"] == "filtered"  # fields it lacks are false, not errors
    assert len(served.tasks()) == before
    assert [d["outcome"] for d in served.deliveries("gh-filter")] == ["filtered", "filtered"]


def test_the_github_comment_form_takes_mentions_only(served: Served) -> None:
    make(served, "gh-comments", form="github-comment")
    comment = {
        "action": "created",
        "issue": {"title": "Flaky test"},
        "comment": {"body": "@dockyard please fix", "html_url": "https://github.com/o/r#c2"},
    }
    plain = {**comment, "comment": {**comment["comment"], "body": "me too"}}
    assert (
        served.deliver("gh-comments", plain, event="issue_comment", delivery="c-1").json()[
            "outcome"
        ]
        == "filtered"
    )
    made = served.deliver("gh-comments", comment, event="issue_comment", delivery="c-2")
    assert made.status_code == 201, made.text
    prompt = served.h.task(made.json()["task"]["id"]).prompt
    assert prompt.startswith("Flaky test\n\n@dockyard please fix")


def test_a_generic_delivery_signed_like_dockyards_own_webhooks(served: Served) -> None:
    make(served, "generic", filter="payload.kind == 'nightly'")
    body = json.dumps({"kind": "nightly", "prompt": "Update the lock file"})
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "x-dockyard-signature": signature(SECRET, stamp, body),
        "x-dockyard-timestamp": str(stamp),
        "x-dockyard-delivery": "g-1",
        "x-dockyard-event": "nightly",
    }
    url = f"{served.url}/api/v2/triggers/generic"
    made = httpx.post(url, content=body, headers=headers, timeout=HTTP_TIMEOUT)
    assert made.status_code == 201, made.text
    assert served.h.task(made.json()["task"]["id"]).prompt == "Update the lock file"
    # an old timestamp (a recording sent again later) is refused
    old = stamp - 3600
    late = {**headers, "x-dockyard-signature": signature(SECRET, old, body)}
    late["x-dockyard-timestamp"] = str(old)
    late["x-dockyard-delivery"] = "g-2"
    assert httpx.post(url, content=body, headers=late, timeout=HTTP_TIMEOUT).status_code == 401


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"prompt_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, "_"),
        ({"prompt_template": "{{ payload | attr('__class__') }}"}, "_"),
        ({"prompt_template": "{{ cycler.__init__.__globals__ }}"}, "_"),
        ({"prompt_template": "{% for x in y %}"}, "parse"),
        ({"prompt_template": "x" * 20000}, "prompt_template"),
        ({"filter": "payload.__class__"}, "_"),
        ({"filter": "1 %}{% for i in range(9) %}{% endfor %}{% if 1"}, "one expression"),
        ({"filter": "payload.x\x00"}, "NUL"),
        ({"name": "../etc"}, "name"),
        ({"name": "UPPER"}, "name"),
        ({"name": "a" * 41}, "name"),
        ({"secret": "short"}, "secret"),
        ({"secret": "has spaces in it, sixteen+"}, "secret"),
        ({"template": "no-such-template"}, "no-such-template"),
        ({"template": None}, "template"),
        ({"form": "slack"}, "form"),
        ({"parameters": {"k": "v" * 20000}}, "parameters"),
    ],
)
def test_hostile_or_broken_triggers_are_refused(
    served: Served, fields: dict[str, Any], words: str
) -> None:
    reply = make(served, "bad", **fields)
    assert reply.status_code in (400, 404), reply.text
    assert words in reply.text
    assert served.api("GET", "/triggers/bad").status_code == 404


def test_a_template_that_fails_at_delivery_is_rejected_and_frees_the_id(served: Served) -> None:
    make(served, "strict", prompt_template="{{ payload.issue.title }}")
    failed = served.deliver("strict", {"other": 1}, delivery="s-1")
    assert failed.status_code == 422 and "issue" in failed.json()["detail"]
    [seen] = served.deliveries("strict")
    assert seen["outcome"] == "rejected" and seen["delivery_id"] is None
    assert served.deliver("strict", issue(), delivery="s-1").status_code == 201


def test_bodies_and_bad_signatures_are_bounded(served: Served) -> None:
    make(served, "bounded")
    big = b'{"prompt": "' + b"x" * MAX_BODY + b'"}'
    assert served.deliver("bounded", None, raw=big).status_code == 413
    not_json = served.deliver("bounded", None, raw=b"prompt=hello", delivery="b-1")
    assert not_json.status_code == 400
    assert served.deliver("nobody-here", {"prompt": "x"}).status_code == 404
    for _ in range(BAD_PER_TRIGGER):
        assert served.deliver("bounded", {"prompt": "x"}, secret="w" * 20).status_code == 401
    # a few recorded one by one, the rest summed up in one row
    outcomes = [d["outcome"] for d in served.deliveries("bounded")]
    assert outcomes.count("rejected") == RECORD_EACH + 1  # the one not JSON, too
    assert outcomes.count("limited") == 1
    # past the limit: refused without checking, and not recorded
    recorded = len(served.deliveries("bounded"))
    assert served.deliver("bounded", {"prompt": "x"}).status_code == 429
    assert len(served.deliveries("bounded")) == recorded


def test_members_see_only_their_own_triggers_and_never_a_secret(served: Served) -> None:
    store = served.h.store
    if store.user("bob") is None:
        store.create_user("bob", "member")
    token, _ = store.create_token("bob", "laptop", None)
    bob = {"Authorization": f"Bearer {token}"}
    made = served.api("POST", "/triggers", json={"name": "admins-own", "template": "scripted"})
    assert made.json()["secret"].startswith("whsec_")  # made by the server: shown once
    for path in ("/triggers/admins-own", "/triggers/admins-own/deliveries"):
        assert (
            httpx.get(served.url + "/api/v2" + path, headers=bob, timeout=HTTP_TIMEOUT).status_code
            == 404
        )
    gone = httpx.delete(
        served.url + "/api/v2/triggers/admins-own", headers=bob, timeout=HTTP_TIMEOUT
    )
    assert gone.status_code == 404
    assert (
        httpx.get(served.url + "/api/v2/triggers", headers=bob, timeout=HTTP_TIMEOUT).json()[
            "triggers"
        ]
        == []
    )
    everything = served.api("GET", "/triggers", params={"all": "true"}).text
    assert "whsec_" not in everything and SECRET not in everything
    assert "whsec_" not in served.api("GET", "/triggers/admins-own").text


def test_a_removed_owners_trigger_makes_nothing(served: Served) -> None:
    store = served.h.store
    store.create_user("erin", "member")
    token, _ = store.create_token("erin", "laptop", None)
    erin = {"Authorization": f"Bearer {token}"}
    body = {"name": "erins", "secret": SECRET, "template": "scripted"}
    assert (
        httpx.post(
            f"{served.url}/api/v2/triggers", json=body, headers=erin, timeout=HTTP_TIMEOUT
        ).status_code
        == 201
    )
    store.remove_user("erin")
    before = len(served.tasks())
    reply = served.deliver("erins", {"prompt": "x"}, delivery="e-1")
    assert reply.status_code == 403 and "removed" in reply.json()["detail"]
    assert len(served.tasks()) == before
    assert served.deliveries("erins")[0]["outcome"] == "rejected"
