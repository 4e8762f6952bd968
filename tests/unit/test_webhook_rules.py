"""Webhooks' pure rules: event names, the body, the signature, retries, URLs and addresses,
the cursor over events, and the server's settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioner.errors import ParameterError
from provisioner.webhooks import (
    EVENT_NAMES,
    MAX_BODY,
    RetryPolicy,
    address_refusal,
    advance_cursor,
    after_attempt,
    build_body,
    check_secret,
    check_url,
    event_name,
    new_secret,
    parse_events,
    parse_settings,
    signature,
    verify,
)


def test_events_are_validated_naming_the_unknown_ones() -> None:
    assert parse_events(["status", " completed", "status", ""]) == ["status", "completed"]
    with pytest.raises(ParameterError, match="'finished', 'STATUS'") as caught:
        parse_events(["status", "finished", "STATUS"])
    assert "input_required" in (caught.value.hint or "")
    with pytest.raises(ParameterError, match="Say which events"):
        parse_events([" "])


@pytest.mark.parametrize(
    ("kind", "old", "new", "subscribed", "expected"),
    [
        ("status", None, "pending", ["created", "status"], "created"),
        ("status", None, "pending", ["status"], "status"),
        ("status", "pool", "active", ["created", "active"], "created"),  # a warm claim
        ("status", "active", "completed", ["status", "completed"], "completed"),
        ("status", "active", "completed", ["status"], "status"),
        ("status", "active", "failed", ["completed"], None),
        ("state", "working", "input_required", ["input_required"], "input_required"),
        ("state", "working", "idle", ["input_required"], None),
        ("state", "working", "idle", ["state", "idle"], "idle"),
        ("progress", None, None, ["progress"], "progress"),
        ("usage", None, "120", ["status", "state"], None),
    ],
)
def test_an_event_goes_under_its_most_telling_subscribed_name(
    kind: str, old: str | None, new: str | None, subscribed: list[str], expected: str | None
) -> None:
    assert event_name(kind, old, new, subscribed) == expected


def test_every_name_is_known_once() -> None:
    assert len(EVENT_NAMES) == len(set(EVENT_NAMES))
    assert {"status", "state", "input_required", "completed", "failed", "cancelled"} <= set(
        EVENT_NAMES
    )


def test_the_body_carries_the_event_and_bounded_public_task_fields() -> None:
    event = {
        "id": 7,
        "kind": "status",
        "from_value": "active",
        "to_value": "completed",
        "actor": "user:alice",
        "reason": "done",
        "time": "2026-01-01T00:00:00.000Z",
    }
    task = {
        "id": "t1",
        "name": "fix",
        "owner": "alice",
        "status": "completed",
        "state": None,
        "prompt": "p" * 100_000,
        "bridge_token": "secret",
        "message": "m" * 10_000,
    }
    body = json.loads(build_body("abc-7", "completed", event, task))
    assert body["id"] == "abc-7" and body["event"] == "completed" and body["event_id"] == 7
    assert (body["from"], body["to"], body["actor"]) == ("active", "completed", "user:alice")
    assert body["task"]["owner"] == "alice" and body["task"]["status"] == "completed"
    assert "prompt" not in body["task"] and "bridge_token" not in body["task"]
    assert len(body["task"]["message"]) < 5000
    huge = {k: "x" * 10_000 for k in ("message", "progress", "question", "title", "name")}
    squeezed = build_body("abc-7", "completed", event, {**task, **huge, "tags": ["y" * 60] * 900})
    assert len(squeezed.encode()) <= MAX_BODY
    assert json.loads(squeezed)["task"]["id"] == "t1"


def test_a_receiver_verifies_the_signature_and_the_timestamp() -> None:
    secret = new_secret()
    body = '{"id":"x"}'
    header = signature(secret, 1_700_000_000, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify(secret, "1700000000", body, header, now=1_700_000_100)
    assert not verify(secret, "1700000000", body + " ", header, now=1_700_000_100)
    assert not verify("another-secret-of-16", "1700000000", body, header, now=1_700_000_100)
    assert not verify(secret, "1700000001", body, header, now=1_700_000_100)  # stamp signed
    assert not verify(secret, "1700000000", body, header, now=1_700_001_000)  # replayed late
    assert not verify(secret, "soon", body, header, now=1_700_000_100)


def test_secrets_given_are_checked() -> None:
    assert check_secret("s" * 16) == "s" * 16
    for bad in ("short", "has space in it ok?", "x" * 257, "tab\there-and-more!!"):
        with pytest.raises(ParameterError):
            check_secret(bad)
    assert new_secret() != new_secret()


def test_retries_back_off_then_give_up() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=5, factor=3, cap_s=60)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [5, 15, 45, 60]
    assert after_attempt(1, 204, 100.0, policy).state == "delivered"
    again = after_attempt(1, 500, 100.0, policy)
    assert (again.state, again.next_at) == ("pending", 105.0)
    assert after_attempt(2, None, 100.0, policy).next_at == 115.0  # no answer at all
    assert after_attempt(3, 302, 100.0, policy).state == "pending"  # redirects are not followed
    assert after_attempt(4, 500, 100.0, policy).state == "failed"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "must be http or https"),
        ("file:///etc/passwd", "must be http or https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https:///path", "no host"),
        ("https://example.com/" + "a" * 3000, "at most 2048"),
        ("https://exa mple.com/", "spaces or control"),
        ("https://example.com/\r\nX-Injected: 1", "spaces or control"),
        ("http://example.com:99999/", "not valid"),
    ],
)
def test_bad_urls_are_refused_saying_why(url: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        check_url(url)


def test_a_good_url_is_split_for_an_address_pinned_request() -> None:
    target = check_url("https://Hooks.Example.com./in?x=1")
    assert (target.host, target.port, target.path) == ("hooks.example.com", 443, "/in?x=1")
    assert target.url_for("203.0.113.9") == "https://203.0.113.9:443/in?x=1"
    assert target.host_header == "hooks.example.com"
    six = check_url("http://[2001:db8::1]:8080")
    assert six.url_for("2001:db8::1") == "http://[2001:db8::1]:8080/"
    assert six.host_header == "[2001:db8::1]:8080"


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254", "0.0.0.0", "::", "224.0.0.1"],
)
def test_metadata_and_non_receiver_addresses_are_always_refused(address: str) -> None:
    assert address_refusal(address, allow_private=True) is not None


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "172.16.0.1", "fd00:ec2::254",
     "100.100.100.200", "::ffff:127.0.0.1"],
)  # fmt: skip
def test_private_and_loopback_addresses_need_allow_private(address: str) -> None:
    refusal = address_refusal(address, allow_private=False)
    assert refusal is not None and address in refusal
    assert address_refusal(address, allow_private=True) is None


def test_public_addresses_are_fine() -> None:
    assert address_refusal("93.184.216.34", allow_private=False) is None
    assert address_refusal("2606:2800:220:1::1", allow_private=False) is None


def test_the_cursor_steps_over_a_gap_only_after_the_grace() -> None:
    gaps: dict[int, float] = {}
    assert advance_cursor(10, [11, 12, 14, 15], gaps, now=100.0, grace_s=5) == 12
    assert gaps == {13: 100.0}
    assert advance_cursor(12, [14, 15], gaps, now=103.0, grace_s=5) == 12
    assert advance_cursor(12, [13, 14, 15], gaps, now=103.0, grace_s=5) == 15  # it arrived
    assert gaps == {}
    assert advance_cursor(15, [17], gaps, now=200.0, grace_s=5) == 15
    assert advance_cursor(15, [17], gaps, now=205.0, grace_s=5) == 17  # never will
    assert advance_cursor(17, [], gaps, now=300.0, grace_s=5) == 17


def test_settings_are_read_and_checked() -> None:
    assert parse_settings(None, "w").allow_private is False
    made = parse_settings({"allow_private": True, "retry_base_s": 0.1, "max_attempts": 3}, "w")
    assert made.allow_private and made.retry.base_s == 0.1 and made.retry.max_attempts == 3
    for bad in ({"allow_private": "yes"}, {"workers": 0}, {"timeout_s": True}, {"nope": 1}, [1]):
        with pytest.raises(ParameterError, match="w"):
            parse_settings(bad, "w")


def test_the_verification_example_in_the_docs_works() -> None:
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)
    assert code is not None
    scope: dict[str, object] = {}
    exec(code.group(1), scope)
    check: Any = scope["verify"]
    secret, body = new_secret(), '{"id":"abc-1","event":"completed"}'
    stamp = int(time.time())
    headers = {
        "X-Dockyard-Timestamp": str(stamp),
        "X-Dockyard-Signature": signature(secret, stamp, body),
    }
    assert check(secret, headers, body.encode())
    assert not check(secret, headers, body.encode() + b" ")
    old = {**headers, "X-Dockyard-Timestamp": str(stamp - 3600)}
    assert not check(secret, old, body.encode())
