"""Webhooks' pure rules: event names, which event a subscription gets, the signature, the
retry schedule, and which URLs and addresses may be called.

No I/O here: the store keeps subscriptions and deliveries, the server's dispatcher resolves
names and sends; both ask this module what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from provisioner.errors import ParameterError

# The event kinds the store records (events.kind), each a name one may subscribe to.
KINDS = (
    "status",
    "state",
    "phase",
    "outcome",
    "progress",
    "usage",
    "priority",
    "promote",
    "preempt",
    "retry",
    "dependency",
    "fork",
    # a way into the workspace (docs/workspace-access.md): sessions, copies, forwards
    "exec",
    "cp",
    "port-forward",
)
# Names users want that are one value of a kind: (kind, to_value).
DERIVED: dict[str, tuple[str, str]] = {
    "input_required": ("state", "input_required"),
    "idle": ("state", "idle"),
    "active": ("status", "active"),
    "paused": ("status", "paused"),
    "error": ("status", "error"),
    "completed": ("status", "completed"),
    "failed": ("status", "failed"),
    "cancelled": ("status", "cancelled"),
}
# `created` is the first status event of a task (it has no from_value), or the one of a
# warm workspace becoming a user's task (from `pool`): the first its owner sees.
CREATED = "created"
EVENT_NAMES = (*KINDS, CREATED, *DERIVED)

MAX_URL = 2048
MAX_EVENTS = len(EVENT_NAMES)
SECRET_RE = re.compile(r"[\x21-\x7e]{16,256}")  # printable ASCII, no spaces


def parse_events(names: Iterable[str]) -> list[str]:
    """The subscribed names, deduplicated in order; 400 naming any unknown one."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        raise ParameterError("Say which events to send", hint=_known())
    unknown = [n for n in wanted if n not in EVENT_NAMES]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        raise ParameterError(f"Unknown webhook event {shown}", hint=_known())
    return wanted


def _known() -> str:
    return "known events: " + ", ".join(EVENT_NAMES)


def event_name(
    kind: str, from_value: str | None, to_value: str | None, subscribed: Iterable[str]
) -> str | None:
    """The name an event is delivered under for a subscription, or None when it is not
    subscribed: the derived name (`completed`, `input_required`, `created`) when
    subscribed, as it says more, else the kind itself."""
    names = set(subscribed)
    if kind == "status" and from_value in (None, "pool") and CREATED in names:
        return CREATED
    for name, (of_kind, value) in DERIVED.items():
        if name in names and kind == of_kind and to_value == value:
            return name
    return kind if kind in names else None


# --- the request ------------------------------------------------------------------------

# the task as a receiver sees it: public, bounded fields (no prompt or output: they can be
# hundreds of KiB, and `dockyard task status` has them)
TASK_FIELDS = (
    "id",
    "name",
    "title",
    "owner",
    "status",
    "state",
    "phase",
    "message",
    "outcome",
    "error_code",
    "error_class",
    "progress",
    "question",
    "priority",
    "tags",
    "template",
    "preset",
    "target",
    "attempt",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "created_at",
    "updated_at",
    "finished_at",
)
MAX_TEXT = 4096  # characters of any one text value in a body
MAX_BODY = 64 * 1024


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    return value


def build_body(
    delivery_id: str, name: str, event: Mapping[str, Any], task: Mapping[str, Any]
) -> str:
    """The JSON a receiver gets: the delivery id, the event's name, the event's fields and
    the task as it was when the event was dispatched."""
    data = {
        "id": delivery_id,
        "event": name,
        "kind": event["kind"],
        "event_id": event["id"],
        "from": event.get("from_value"),
        "to": event.get("to_value"),
        "actor": event.get("actor"),
        "reason": _cut(event.get("reason") or ""),
        "time": event["time"],
        "task": {k: _cut(task.get(k)) for k in TASK_FIELDS if k in task},
    }
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_BODY:  # only if many fields are at their limit
        data["task"] = {k: data["task"].get(k) for k in ("id", "name", "owner", "status")}
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text


def new_secret() -> str:
    """A signing secret: 256 random bits."""
    return "whsec_" + secrets.token_urlsafe(32)


def check_secret(secret: str) -> str:
    if not SECRET_RE.fullmatch(secret):
        raise ParameterError(
            "A webhook secret must be 16 to 256 printable ASCII characters without spaces",
            hint="leave it out and the server makes one",
        )
    return secret


def signature(secret: str, timestamp: int, body: str) -> str:
    """X-Dockyard-Signature: sha256=HMAC-SHA256(secret, "<timestamp>.<body>"), hex."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: str, header: str, now: float, tolerance: float = 300
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (so a
    recorded request cannot be replayed later)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), header)


# --- retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failing delivery is tried again."""

    max_attempts: int = 8
    base_s: float = 5.0
    factor: float = 3.0
    cap_s: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...)."""
        return float(min(self.cap_s, self.base_s * self.factor ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Next:
    """A delivery after an attempt: its state, and when to try again if pending."""

    state: str  # delivered | pending | failed
    next_at: float | None


def after_attempt(attempts: int, status: int | None, now: float, policy: RetryPolicy) -> Next:
    """Delivered on a 2xx; otherwise (any other status, a timeout, a refused target) tried
    again after the policy's delay until its attempts are used up. Redirects are not
    followed (a 3xx is a failure): following one would call a URL nobody checked."""
    if status is not None and 200 <= status < 300:
        return Next("delivered", None)
    if attempts >= policy.max_attempts:
        return Next("failed", None)
    return Next("pending", now + policy.delay(attempts))


# --- where requests may go ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A checked URL, split."""

    scheme: str
    host: str  # a name, or an address without brackets
    port: int
    path: str  # path and query

    def url_for(self, address: str) -> str:
        """The URL with the host replaced by an address it resolved to (connect there, so
        a second DNS answer cannot send the request elsewhere)."""
        shown = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{shown}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return shown if self.port == default else f"{shown}:{self.port}"


def check_url(url: str) -> Target:
    """An http(s) URL with a host, no credentials, at most MAX_URL characters."""
    if len(url) > MAX_URL:
        raise ParameterError(f"The webhook URL is {len(url)} characters long; at most {MAX_URL}")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ParameterError("The webhook URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ParameterError(f"The webhook URL is not valid: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ParameterError(
            f"The webhook URL must be http or https, not {scheme[:20]!r}",
            hint="for example https://hooks.example.com/dockyard",
        )
    if parts.username is not None or parts.password is not None:
        raise ParameterError(
            "The webhook URL must not carry credentials (user:password@)",
            hint="the receiver authenticates requests by their X-Dockyard-Signature",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ParameterError("The webhook URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why a request may not go to this address, or None.

    Link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata service), the
    unspecified address (0.0.0.0 reaches this machine), multicast and reserved ranges are
    always refused. Loopback, private and other non-global addresses (this server's own
    API, the internal network) only with `allow_private`.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return f"{address} is link-local (the cloud metadata service lives there)"
    if ip.is_unspecified or ip.is_multicast or (ip.is_reserved and not ip.is_loopback):
        return f"{address} is not a receiver's address"
    if ip.is_loopback or ip.is_private or not ip.is_global:
        if allow_private:
            return None
        kind = "loopback" if ip.is_loopback else "private"
        return f"{address} is a {kind} address"
    return None


def private_hint(is_admin: bool) -> str:
    if is_admin:
        return (
            "use a public address; to allow private and loopback receivers for admins' "
            "webhooks, set `webhooks: {allow_private: true}` in the server's config.yaml"
        )
    return "use a public address (only an admin's webhooks may call private ones)"


# --- the server's settings --------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """`webhooks:` in the server's config.yaml."""

    allow_private: bool = False  # admins' webhooks may call loopback/private addresses
    timeout_s: float = 10.0  # per connect/read/write of one request
    workers: int = 4  # requests in flight at once (one per subscription at most)
    retry: RetryPolicy = RetryPolicy()


def parse_settings(section: object, where: str) -> Settings:
    """Settings from the `webhooks` mapping of config.yaml; a bad value says which."""
    if section is None:
        return Settings()
    if not isinstance(section, dict):
        raise ParameterError(f"{where} must be a mapping, e.g. {{allow_private: true}}")
    known = {"allow_private", "timeout_s", "workers", "max_attempts", "retry_base_s"}
    unknown = sorted(set(map(str, section)) - known)
    if unknown:
        raise ParameterError(f"{where}: unknown setting {unknown[0]!r}; known: {sorted(known)}")

    def number(key: str, default: float, low: float, high: float) -> float:
        value = section.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise ParameterError(f"{where}.{key} must be a number from {low} to {high}")
        return float(value)

    allow = section.get("allow_private", False)
    if not isinstance(allow, bool):
        raise ParameterError(f"{where}.allow_private must be true or false")
    return Settings(
        allow_private=allow,
        timeout_s=number("timeout_s", 10.0, 0.1, 60.0),
        workers=int(number("workers", 4, 1, 32)),
        retry=RetryPolicy(
            max_attempts=int(number("max_attempts", 8, 1, 20)),
            base_s=number("retry_base_s", 5.0, 0.01, 3600.0),
        ),
    )


def advance_cursor(
    cursor: int, ids: Iterable[int], gaps: dict[int, float], now: float, grace_s: float
) -> int:
    """How far every event has been seen: the last id of the unbroken run after `cursor`.

    A missing id is an event not committed yet (on PostgreSQL ids are taken before a
    transaction commits, so a later id can be visible first), or one that never will be
    (a rolled back insert, a deleted task's history). The cursor waits `grace_s` at a gap
    (`gaps` remembers when each was first seen), then steps over it. Events beyond a gap
    are turned into deliveries at once all the same; reading them again is harmless.
    """
    expected = cursor + 1
    for event_id in sorted(ids):
        if event_id < expected:
            continue
        if event_id > expected:
            first = gaps.setdefault(expected, now)
            if now - first < grace_s:
                break
        cursor, expected = event_id, event_id + 1
    for stale in [g for g in gaps if g <= cursor]:
        del gaps[stale]
    return cursor
