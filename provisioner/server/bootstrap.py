"""The zero-setup default: the local user is an admin whose token waits in the home.

The CLI that starts a local server reads `HOME/admin-token` (0600), so nothing needs
setting up, yet nothing is served without a credential, loopback included (any local
user, or a web page in a browser, can reach loopback).
"""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

from sqlalchemy import update

from provisioner.auth.tokens import USER_RE, Role
from provisioner.errors import TaskConflict
from provisioner.paths import admin_token_path, read_admin_token
from provisioner.store.schema import tasks
from provisioner.store.store import Store

# tasks of databases from before owners existed
LEGACY_OWNER = "me"


def local_user_name() -> str:
    """The OS user's name as a Dockyard user name (`admin` if it cannot be one)."""
    try:
        raw = getpass.getuser()
    except (KeyError, OSError):
        return "admin"
    name = re.sub(r"[^a-z0-9_-]", "-", raw.lower())[:32]
    return name if USER_RE.fullmatch(name) else "admin"


def ensure_local_admin(store: Store, home: Path) -> Path:
    """Make sure the home holds a working admin token; returns the file's path."""
    name = local_user_name()
    user = store.user(name)
    if user is None:
        try:
            store.create_user(name, Role.ADMIN)
            store.record_audit("server", "user.create", name, "local admin of " + str(home))
        except TaskConflict:
            pass  # another server sharing the store made it just now
    elif user["role"] != Role.ADMIN.value:
        name = "admin"  # the OS user is a member here: the home's token is another user's
        if store.user(name) is None:
            store.create_user(name, Role.ADMIN)
    with store.db.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.owner == LEGACY_OWNER).values(owner=name))
    path = admin_token_path(home)
    current = read_admin_token(home)
    if current is not None and store.token_valid(current):
        return path
    token, record = store.create_token(name, "local", None)
    store.record_audit("server", "token.create", f"{name}/{record['id']}", "local admin token")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
