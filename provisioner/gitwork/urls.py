"""Checks on repository URLs, refs and branch names (pure).

Every value here comes from whoever creates a task, and ends in git's argv: git treats a
URL such as `ext::sh -c ...` as a command to run, `file://` or a bare path as the
server's own disk, and anything starting with `-` as an option. Only http(s) URLs of a
plain shape pass, never with credentials inside (the token is a separate secret).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from provisioner.errors import ParameterError

MAX_URL = 2048
MAX_REF = 200
SCHEMES = ("https", "http")
# a host name or IPv4 address (IPv6 in brackets is left out on purpose: rare for a forge)
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
_PATH = re.compile(r"/[A-Za-z0-9._~/%+@-]*")
# what a branch or tag name may hold here: git's rules, narrowed to the characters forges use
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
TASK_BRANCH_PREFIX = "dockyard/"


def redact_url(url: str) -> str:
    """`url` without any user or password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{host}{port}").geturl()


def host_allowed(host: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether `host` is in the allow list: an exact name, or `*.example.com` for the
    names under example.com (not example.com itself). An empty list allows every host."""
    if not allowed:
        return True
    host = host.lower()
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


def check_repo_url(url: str, allowed_hosts: list[str] | tuple[str, ...] = ()) -> str:
    """`url` if it is a plain http(s) repository URL on an allowed host; else ParameterError
    saying what is wrong and what to do."""
    what = "Parameter repo"
    if not isinstance(url, str) or not url:
        raise ParameterError(f"{what}: give the repository's https:// URL")
    if len(url) > MAX_URL:
        raise ParameterError(f"{what}: the URL is longer than {MAX_URL} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ParameterError(f"{what}: the URL holds a space or control character")
    if url.startswith("-"):
        raise ParameterError(f"{what}: a URL may not start with '-' (git would read an option)")
    if "::" in url.split("/", 1)[0]:
        raise ParameterError(f"{what}: git remote helpers (such as ext::) are refused")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ParameterError(f"{what}: not a URL ({exc})") from exc
    if parts.scheme.lower() not in SCHEMES:
        shown = parts.scheme or "a local path"
        raise ParameterError(
            f"{what}: only https:// (or http://) repositories are cloned, not {shown}"
        )
    if "@" in parts.netloc or parts.username or parts.password:
        raise ParameterError(
            f"{what}: the URL carries credentials ({redact_url(url)}); give the token as "
            "the secret parameter repo_credential instead"
        )
    host = parts.hostname or ""
    if not _HOST.fullmatch(host):
        raise ParameterError(f"{what}: {host!r} is not a host name")
    if port == 0:
        raise ParameterError(f"{what}: port 0 is not a port")
    if parts.query or parts.fragment:
        raise ParameterError(f"{what}: a repository URL has no query or fragment")
    if parts.path and not _PATH.fullmatch(parts.path):
        raise ParameterError(f"{what}: the URL's path holds characters git URLs do not use")
    if ".." in parts.path.split("/"):
        raise ParameterError(f"{what}: the URL's path may not hold '..'")
    if not host_allowed(host, allowed_hosts):
        raise ParameterError(
            f"{what}: host {host} is not allowed by the template; allowed: "
            + ", ".join(allowed_hosts)
        )
    return url


def check_ref(ref: str, what: str = "Parameter ref") -> str:
    """`ref` (a branch, tag or commit; empty: the remote's default branch) if git would take
    it as a name and never as an option; else ParameterError."""
    if ref == "":
        return ref
    if len(ref) > MAX_REF:
        raise ParameterError(f"{what}: longer than {MAX_REF} characters")
    if not _REF.fullmatch(ref):
        raise ParameterError(
            f"{what}: {ref[:80]!r} is not a branch, tag or commit name (letters, digits, "
            "'.', '_', '/', '+', '-'; not starting with '-' or '.')"
        )
    if ".." in ref or "//" in ref or ref.endswith(("/", ".", ".lock")) or "/." in ref:
        raise ParameterError(f"{what}: {ref[:80]!r} is not a valid git ref name")
    return ref


def task_branch(task_name: str) -> str:
    """The branch a task's work goes on."""
    return f"{TASK_BRANCH_PREFIX}{task_name}"
