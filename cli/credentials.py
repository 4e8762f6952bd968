"""Which API token the CLI sends, and where `dockyard login` keeps tokens.

In order: DOCKYARD_TOKEN (else Coder's CODER_SESSION_TOKEN, so Coder Tasks scripts run with
their environment as is); for the local server (no URL given), the admin token its home
holds; for a URL, the token `dockyard login URL` stored, or the home's admin token when
the URL is the home's own local server.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from cli.client import is_loopback
from cli.local_server import read_server_info, resolve_url, running_server_url
from provisioner.paths import home_dir, read_admin_token

TOKEN_ENV = "DOCKYARD_TOKEN"
CODER_TOKEN_ENV = "CODER_SESSION_TOKEN"  # used when DOCKYARD_TOKEN is not set


def credentials_path() -> Path:
    """The user's stored logins (0600): {"servers": {URL: token}}."""
    if sys.platform.startswith("linux"):
        # what platformdirs answers on Linux (XDG), without its import on every command
        xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
        base = Path(xdg or os.path.expanduser("~/.config")) / "dockyard"
    else:
        import platformdirs

        base = Path(platformdirs.user_config_dir("dockyard", appauthor=False))
    return base / "credentials.json"


def _stored() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return {}
    return {str(k): str(v) for k, v in servers.items() if isinstance(v, str)}


def store_login(url: str, token: str) -> Path:
    """Remember the token for `url`, in a file only the user can read."""
    servers = {**_stored(), url.rstrip("/"): token}
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"servers": servers}, f, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def forget_login(url: str) -> bool:
    """Drop the stored token of `url`; False when there was none."""
    servers = _stored()
    if servers.pop(url.rstrip("/"), None) is None:
        return False
    path = credentials_path()
    with contextlib.suppress(OSError):
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"servers": servers}, f, indent=2)
        tmp.replace(path)
    return True


def token_for(url: str, local: bool) -> str | None:
    """The token to send to `url` (`local`: it is the home's own server we started)."""
    for name in (TOKEN_ENV, CODER_TOKEN_ENV):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    home = home_dir()
    if local:
        return read_admin_token(home)
    stored = _stored().get(url.rstrip("/"))
    if stored:
        return stored
    info = read_server_info(home)
    if info is not None and info.url.rstrip("/") == url.rstrip("/"):
        return read_admin_token(home)
    return None


def connect(explicit_url: str | None) -> tuple[str, str | None]:
    """The server to use (starting the local one if none is given) and its token."""
    url = resolve_url(explicit_url)
    return url, token_for(url, local=not explicit_url)


def connect_quickly(explicit_url: str | None) -> tuple[str, str | None] | None:
    """The local server and its token as server.json names them, when its process runs,
    without asking the server (~10 ms of every command); None: use connect()."""
    if explicit_url:
        return None
    url = running_server_url(home_dir())
    # plain http on loopback only: the refused connection that sends the command the
    # careful way is told apart there (an https server.json URL names the bind address,
    # which its certificate does not: the careful way starts a local server then)
    if url is None or not url.startswith("http://") or not is_loopback(url):
        return None
    return url, token_for(url, local=True)
