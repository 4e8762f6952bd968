"""Dashboard sessions: cookie names, lifetimes and the CSRF token (pure, no I/O).

A browser holds its session as an API token in an HttpOnly, SameSite=Strict cookie, so
every cookie request is authenticated by the same store lookup as a bearer token, and
revoking the session (logout, `dockyard token revoke`) ends it. A cookie is ambient (the
browser attaches it by itself), so a state change made with one must also carry the CSRF
token: derived from the session, readable by the dashboard's own script (a second,
non-HttpOnly cookie) and sent back in a header, which no page of another site can read
or set.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

SESSION_COOKIE = "dockyard_session"
CSRF_COOKIE = "dockyard_csrf"
CSRF_HEADER = "x-dockyard-csrf"
# the token names the store keeps sessions and one-time links under (`token list` shows
# them; revoking one ends it)
SESSION_TOKEN_NAME = "dashboard session"
LINK_TOKEN_NAME = "dashboard link"
SESSION_LIFETIME = timedelta(hours=12)
# a one-time link is for the browser the CLI opens at once: short, and used once
LINK_LIFETIME = timedelta(minutes=5)

# paths served without a credential: the sign-in page, its assets and the sign-in call
PUBLIC_PREFIXES = ("/dashboard/static/",)
PUBLIC_PATHS = frozenset({"/login", "/auth/login"})
# pages a browser opens: without a session they redirect to the sign-in page, not 401
PAGE_PATHS = frozenset({"/"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session: str) -> str:
    """The CSRF token of a session: a one-way function of the session token, so a page
    that cannot read the session cookie cannot compute it either."""
    return hashlib.sha256(b"dockyard-csrf\x00" + session.encode()).hexdigest()[:40]


def csrf_ok(session: str, sent: str | None) -> bool:
    """True when `sent` (the request's CSRF header) belongs to `session`."""
    return sent is not None and hmac.compare_digest(sent.encode(), csrf_token(session).encode())


def is_public(path: str) -> bool:
    """Paths that need no credential: nothing on them is anyone's data."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def cookie(scope_cookie: str | None, name: str) -> str | None:
    """One cookie's value from a Cookie header, or None."""
    for part in (scope_cookie or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            return value
    return None


def expiry(now: datetime, lifetime: timedelta) -> str:
    """The store's timestamp form (ISO, milliseconds, Z) of `now + lifetime`."""
    at = (now + lifetime).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def set_cookie_headers(session: str, secure: bool, max_age: int) -> list[tuple[str, str]]:
    """Set-Cookie headers of a new session (or, with max_age 0 and "", of its end)."""
    flags = f"; Path=/; SameSite=Strict; Max-Age={max_age}" + ("; Secure" if secure else "")
    csrf = csrf_token(session) if session else ""
    return [
        ("set-cookie", f"{SESSION_COOKIE}={session}{flags}; HttpOnly"),
        ("set-cookie", f"{CSRF_COOKIE}={csrf}{flags}"),
    ]
