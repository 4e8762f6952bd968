"""Preview URLs in a browser (pure: no I/O): the grant that opens one task's port, and
what a previewed app's answers may and may not carry.

The previewed app is hostile code served from the dashboard's own host, so it must never
act with the dashboard's privileges (read its session, call the API with it, read the
CSRF token). The design (docs/workspace-access.md, "Previews in a browser"):

- A browser opening `/api/dockyard/v1/tasks/T/apps/PORT/...` with the dashboard session
  is sent on (303) to `/api/dockyard/v1/previews/<grant>/...`: the grant, signed by the
  server (HMAC-SHA256 with a key kept in the database, so every server sharing it
  agrees), names one task, one port and the user, and ends after GRANT_LIFETIME_S. It is
  the only credential on that path; the session cookie is never used there, and never
  passed to the app.
- Every preview answer carries `Content-Security-Policy: sandbox ...` without
  `allow-same-origin`: the page runs in an opaque origin, so its script cannot read
  cookies, and its requests to the API are cross-site (no SameSite=Strict session cookie
  goes with them) and cross-origin (their answers unreadable): a 401.
- Relative links and assets resolve under the grant's path (the grant is in the path, not
  a cookie, so the sandboxed page's own requests carry it); so do WebSockets.
- What the app sets cannot reach the dashboard: its cookies are confined to the grant's
  path (Domain dropped; ours refused), and the grant never leaves in a Referer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

GRANT_LIFETIME_S = 3600
PREVIEWS = "previews"
# opaque origin: no allow-same-origin, no top navigation (the page cannot replace the
# dashboard's tab with a look-alike)
SANDBOX = (
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads "
    "allow-pointer-lock allow-presentation"
)
# cookies of the dashboard and of Coder's clients: never sent to an app, never set by one
OUR_COOKIES = frozenset({"dockyard_session", "dockyard_csrf", "coder_session_token"})
MAX_GRANT = 512
_GRANT = re.compile(r"v1\.[A-Za-z0-9_-]{1,400}\.[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Grant:
    task_id: str
    port: int
    user: str
    expires: int  # epoch seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, b"dockyard-preview\x00" + body.encode(), hashlib.sha256).digest())


def make_grant(key: bytes, task_id: str, port: int, user: str, now: float) -> str:
    """A grant for `user` to preview `port` of `task_id` until now + GRANT_LIFETIME_S:
    path-safe (base64url and dots)."""
    payload = {"t": task_id, "p": port, "u": user, "e": int(now) + GRANT_LIFETIME_S}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"v1.{body}.{_mac(key, body)}"


def read_grant(key: bytes, grant: str, now: float) -> Grant | None:
    """The grant's content when its signature holds and it has not expired; else None."""
    if len(grant) > MAX_GRANT or not _GRANT.fullmatch(grant):
        return None
    _, body, mac = grant.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        return None
    try:
        data = json.loads(_unb64(body))
        found = Grant(str(data["t"]), int(data["p"]), str(data["u"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    if found.expires <= now:
        return None
    return found


def request_cookies(header: str | None) -> str | None:
    """The Cookie header an app may see: ours taken out (the session is a credential of
    this API, never the app's)."""
    if not header:
        return None
    kept = []
    for part in header.split(";"):
        name = part.strip().partition("=")[0].strip()
        if part.strip() and name not in OUR_COOKIES:
            kept.append(part.strip())
    return "; ".join(kept) or None


def confined_cookie(value: str, path: str) -> str | None:
    """An app's Set-Cookie confined to its preview's `path`: its Path replaced, Domain
    dropped (a cookie of the app must not reach the dashboard's pages); one naming a
    cookie of ours, or a __Host-/__Secure- one that cannot be confined, is dropped."""
    parts = [p.strip() for p in value.split(";")]
    name = parts[0].partition("=")[0].strip()
    if not name or name in OUR_COOKIES or name.lower().startswith(("__host-", "__secure-")):
        return None
    attributes = [
        p for p in parts[1:] if p and p.partition("=")[0].strip().lower() not in ("path", "domain")
    ]
    return "; ".join([parts[0], *attributes, f"Path={path}"])


_PREVIEW_PATH = re.compile(r"/api/(?:v2|dockyard/v1)/previews/[^/]*(?:/.*)?")


def is_preview_path(path: str) -> bool:
    """A path under a grant: its credential is the grant in it (checked by the route),
    never a token or the session cookie."""
    return _PREVIEW_PATH.fullmatch(path) is not None


def preview_path(prefix: str, grant: str) -> str:
    """Where a grant's preview lives (its root, with the trailing slash)."""
    return f"{prefix}/{PREVIEWS}/{grant}/"
