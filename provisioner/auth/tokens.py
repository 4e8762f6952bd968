"""API tokens and user names: generating, hashing and parsing (pure, no I/O)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from provisioner.errors import ParameterError

# `dy_` marks a Dockyard token in logs and secret scanners; 32 random bytes behind it.
TOKEN_PREFIX = "dy_"
_TOKEN_RE = re.compile(r"dy_[A-Za-z0-9_-]{43}")
USER_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_DURATION_RE = re.compile(r"([0-9]{1,6})([mhdw])")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = timedelta(days=3660)


class Role(StrEnum):
    """What a user may do."""

    ADMIN = "admin"  # everything: every task, templates, users and tokens of others
    MEMBER = "member"  # their own tasks and tokens; reads the catalog
    METRICS = "metrics"  # GET /metrics and nothing else (a Prometheus scraper's token)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user: str
    role: Role
    token_id: str
    # a task's own token (the in-workspace MCP relay's): it acts as the task's owner, on
    # that task and the tasks it created only, never as an admin (task_scope.py)
    task_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN and self.task_id is None

    @property
    def actor(self) -> str:
        """How the caller appears in histories: `user:NAME`, or `task:ID` for a task's
        token (the tasks it creates say so in created_by, which is how its scope is
        found)."""
        return f"task:{self.task_id}" if self.task_id else f"user:{self.user}"


def new_token() -> str:
    """A fresh token: shown once to its owner, never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token. SHA-256 suffices: the token is 256 random bits."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def looks_like_token(value: str) -> bool:
    """True when `value` has a token's shape (checked before any database lookup)."""
    return _TOKEN_RE.fullmatch(value) is not None


def _checked(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ParameterError(f"Invalid {what} {_shown(value)}: use {rule}")
    return value


def check_user_name(name: str) -> str:
    """`name` if it is a valid user name, else a ParameterError saying what is allowed."""
    rule = "1-32 lowercase letters, digits, '-' or '_', starting with a letter"
    return _checked(USER_RE, name, "user name", rule)


def check_token_name(name: str) -> str:
    """`name` if it is a valid token name, else a ParameterError."""
    rule = "1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit"
    return _checked(TOKEN_NAME_RE, name, "token name", rule)


def parse_lifetime(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` as a timedelta; anything else is a ParameterError."""
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ParameterError(
            f"Invalid token lifetime {_shown(text)}: use a number and a unit, "
            "m (minutes), h (hours), d (days) or w (weeks), e.g. 30d"
        )
    lifetime = timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})
    if lifetime <= timedelta(0) or lifetime > MAX_LIFETIME:
        raise ParameterError(f"Token lifetime {text} is out of range (1m to 3660d)")
    return lifetime


def expiry(lifetime: timedelta | None, now: datetime | None = None) -> str | None:
    """The expiry timestamp of a token of that lifetime (None: it never expires)."""
    if lifetime is None:
        return None
    when = (now or datetime.now(UTC)) + lifetime
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
