"""A way into a workspace, and files out: the pure rules (no I/O).

What a template allows (`access:`: who may run commands in its workspaces, and whether
as root), the ports it declares (`apps:`), and the checks every request into a
workspace passes: a command line's bounds, a terminal size, a port, a path that must stay
inside the workspace directory, and the tar members a copy may carry. The server and the
backends do the I/O around these.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# bounds of what a caller may send into a workspace
MAX_ARGS = 256
MAX_ARG_BYTES = 32 * 1024
MAX_ARGV_BYTES = 128 * 1024
MAX_PATH_BYTES = 4096
MAX_INPUT_FRAME = 64 * 1024  # one WebSocket message of terminal input
MAX_ROWS = 1000
MAX_COLS = 1000
# a `cp` into the workspace: what one upload may hold, uncompressed, and how many entries
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_UPLOAD_MEMBERS = 100_000
APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# the bridge's own port: never a preview (its API is the server's, behind its token)
RESERVED_PORTS = frozenset({7777})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccessConfig(_Strict):
    """template.yaml `access:`: who may open a shell or run commands in a workspace."""

    exec: Literal["owner", "admin", "none"] = Field(
        "owner",
        description="Who may `task exec`/`task shell`/`cp` in: the task's owner (and "
        "admins), admins only, or nobody",
    )
    root: bool = Field(
        False, description="Allow `--root` (uid 0 in the workspace); off: the workspace user"
    )


class AppConfig(_Strict):
    """template.yaml `apps:` entry: a port the workspace serves, previewed by the server."""

    name: str = Field(pattern=APP_NAME_RE.pattern, description="Short name shown to users")
    port: int = Field(ge=1, le=65535, description="The port inside the workspace")
    health: str | None = Field(
        None, pattern=r"^/[\x21-\x7e]{0,200}$", description="A path that answers when it is up"
    )


class AccessDenied(ValueError):
    """A request into a workspace that its template or the caller's role does not allow."""


class BadPath(ValueError):
    """A path that is not a path inside the workspace."""


def may_exec(access: AccessConfig, *, is_owner: bool, is_admin: bool, root: bool) -> None:
    """Raise AccessDenied unless this caller may run commands in the workspace."""
    if access.exec == "none":
        raise AccessDenied("this task's template allows no commands in its workspaces")
    if access.exec == "admin" and not is_admin:
        raise AccessDenied("this task's template allows commands in its workspaces to admins only")
    if access.exec == "owner" and not (is_owner or is_admin):
        raise AccessDenied("only the task's owner may run commands in its workspace")
    if root and not access.root:
        raise AccessDenied(
            "this task's template does not allow root in its workspaces "
            "(a template opts in with access: {root: true})"
        )


def access_of(policy: Mapping[str, Any]) -> AccessConfig:
    """A task's pinned access rules (defaults for tasks made before there were any)."""
    return AccessConfig.model_validate(policy.get("access") or {})


def apps_of(policy: Mapping[str, Any]) -> list[AppConfig]:
    """A task's pinned apps."""
    return [AppConfig.model_validate(a) for a in policy.get("apps") or []]


def _clean_text(value: str, what: str, limit: int) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise ValueError(f"{what} is longer than {limit} bytes")
    if "\x00" in value:
        raise ValueError(f"{what} holds a NUL character")


def check_argv(argv: list[str]) -> list[str]:
    """A command line to run in a workspace: 1-256 arguments, no NUL, bounded sizes.

    Arguments are passed as they are (exec, never a shell), so quotes and `;` mean nothing.
    """
    if not argv:
        raise ValueError("no command given")
    if len(argv) > MAX_ARGS:
        raise ValueError(f"{len(argv)} arguments; at most {MAX_ARGS}")
    total = 0
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ValueError(f"argument {i} is not a string")
        _clean_text(arg, f"argument {i}", MAX_ARG_BYTES)
        total += len(arg.encode("utf-8", "surrogatepass"))
    if total > MAX_ARGV_BYTES:
        raise ValueError(f"the command line is {total} bytes; at most {MAX_ARGV_BYTES}")
    if not argv[0]:
        raise ValueError("the command is empty")
    return list(argv)


def check_size(rows: int, cols: int) -> tuple[int, int]:
    """A terminal size: 1-1000 rows and columns."""
    if not (1 <= rows <= MAX_ROWS and 1 <= cols <= MAX_COLS):
        raise ValueError(f"terminal size {rows}x{cols}: rows and columns must be 1-{MAX_ROWS}")
    return rows, cols


def check_port(port: int) -> int:
    """A port in the workspace a caller may reach: 1-65535, never the bridge's."""
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not 1-65535")
    if port in RESERVED_PORTS:
        raise AccessDenied(f"port {port} is the bridge's own; it is not forwarded")
    return port


def workspace_path(workdir: str, path: str) -> str:
    """`path` (relative to the workspace directory, or absolute under it) as an absolute
    normalized path inside `workdir`; BadPath for anything outside it.

    Textual only: a symlink inside the workspace that points out is caught where the
    files are (the in-workspace helper resolves real paths before it reads or writes).
    """
    _clean_text(path, "the path", MAX_PATH_BYTES)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise BadPath("the path holds a control character")
    root = posixpath.normpath(workdir)
    joined = posixpath.normpath(posixpath.join(root, path or "."))
    # normpath folds `..`: what is left must still be the root or under it
    if joined != root and not joined.startswith(root.rstrip("/") + "/"):
        raise BadPath(f"{path!r} is outside the workspace directory {root}")
    return joined


def member_name(name: str) -> str:
    """A tar member's name as it may be written under the destination: relative, without
    `..`, no control characters; BadPath otherwise."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadPath("a tar member has an empty or overlong name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadPath(f"tar member {name!r} holds a control character")
    if name.startswith("/"):
        raise BadPath(f"tar member {name!r} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadPath(f"tar member {name!r} climbs out with '..'")
    if not parts:
        raise BadPath(f"tar member {name!r} names nothing")
    return "/".join(parts)


def link_target_ok(member: str, target: str) -> bool:
    """Whether a symlink stored at `member` pointing to `target` stays inside the tree it
    is unpacked into (a relative target that never climbs above the top)."""
    if not target or target.startswith("/"):
        return False
    base = posixpath.dirname(member)
    resolved = posixpath.normpath(posixpath.join("/top", base, target))
    return resolved == "/top" or resolved.startswith("/top/")


TERM_RE = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
DEFAULT_SHELL = ["sh", "-c", 'exec "$(command -v bash || command -v sh)" -l']


class ExecRequest(BaseModel):
    """The first message of an exec WebSocket: what to run and how."""

    model_config = ConfigDict(extra="forbid")

    argv: list[str] | None = Field(None, description="The command; a login shell if absent")
    tty: bool = True
    rows: int = 24
    cols: int = 80
    root: bool = False
    term: str = "xterm-256color"


def parse_exec_request(doc: Any) -> ExecRequest:
    """Check an exec request (ValueError names what is wrong)."""
    if not isinstance(doc, dict):
        raise ValueError("the first message must be a JSON object: {argv, tty, rows, cols}")
    request = ExecRequest.model_validate(doc)
    if request.argv is not None:
        check_argv(request.argv)
    check_size(request.rows, request.cols)
    if not TERM_RE.match(request.term):
        raise ValueError("term must be 1-64 letters, digits or ._+-")
    return request


def describe_argv(argv: list[str] | None) -> str:
    """A command line as an event's reason: printable, at most 200 characters."""
    if argv is None:
        return "shell"
    text = " ".join(argv)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 200 else text[:197] + "..."


def check_members(members: list[tuple[str, str, str, int]]) -> str:
    """Check a tar's members, (name, kind, link target, size) each with kind `file`,
    `dir`, `symlink` or anything else; return the one top-level name they share.

    Refused: absolute names, `..`, control characters, links pointing out of the tree,
    hard links, devices and other special files, more than MAX_UPLOAD_MEMBERS entries or
    MAX_UPLOAD_BYTES of content."""
    if not members:
        raise BadPath("the archive is empty")
    if len(members) > MAX_UPLOAD_MEMBERS:
        raise BadPath(f"the archive has more than {MAX_UPLOAD_MEMBERS} entries")
    total = 0
    tops: set[str] = set()
    for name, kind, target, size in members:
        clean = member_name(name)
        tops.add(clean.split("/")[0])
        if kind == "symlink":
            if not link_target_ok(clean, target):
                raise BadPath(f"link {clean} -> {target} points outside what is copied")
        elif kind not in ("file", "dir"):
            raise BadPath(f"{clean} is a {kind}: only files, directories and symlinks are copied")
        total += max(size, 0)
        if total > MAX_UPLOAD_BYTES:
            raise BadPath(f"the archive holds more than {MAX_UPLOAD_BYTES} bytes")
    if len(tops) != 1:
        raise BadPath("the archive must hold one file or directory at its top")
    return tops.pop()
