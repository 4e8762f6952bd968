"""Checks on repository URLs, refs and branch names (pure).

Every value here comes from whoever creates a task, and ends in git's argv: git treats a
URL such as `ext::sh -c ...` as a command to run, `file://` or a bare path as the
server's own disk, and anything starting with `-` as an option (ssh too: a host `-oProxy
Command=...` was CVE-2017-1000117). Only http(s) and ssh URLs of a plain shape pass
(`ssh://[user@]host[:port]/path` and scp-like `[user@]host:path`), never with a password
or token inside (those are separate secrets: repo_credential, repo_ssh_key).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from provisioner.errors import ParameterError

MAX_URL = 2048
MAX_REF = 200
SCHEMES = ("https", "http", "ssh")
# an ssh login name: a plain user (git, deploy...), never an option or a user:password
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# scp-like `[user@]host:path` (no scheme; git reads it as ssh when no `/` precedes the `:`)
_SCP = re.compile(r"(?:(?P<user>[^@/]*)@)?(?P<host>[^@/:]+):(?P<path>.*)", re.S)
# a host name or IPv4 address (IPv6 in brackets is left out on purpose: rare for a forge)
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
_PATH = re.compile(r"/[A-Za-z0-9._~/%+@-]*")
# what a branch or tag name may hold here: git's rules, narrowed to the characters forges use
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
TASK_BRANCH_PREFIX = "dockyard/"


def is_ssh_url(url: str) -> bool:
    """Whether git reaches `url` over ssh: `ssh://...` or scp-like `[user@]host:path`."""
    if url.lower().startswith("ssh://"):
        return True
    return "://" not in url and _SCP.fullmatch(url) is not None


def split_repo_url(url: str) -> tuple[str, str]:
    """(host, path) of an http(s), ssh:// or scp-like URL; ("", "") for anything else."""
    if "://" not in url:
        found = _SCP.fullmatch(url)
        return (found["host"], "/" + found["path"].lstrip("/")) if found else ("", "")
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", ""
    return parts.hostname or "", parts.path


def redact_url(url: str) -> str:
    """`url` without a password or token, for messages and logs. An ssh login name (the
    `git` of git@host:path) is not a secret and stays; any other user part goes, since a
    token is often given as the user name of an https URL."""
    if "://" not in url:
        user, at, rest = url.partition("@")
        return rest if at and not _SSH_USER.fullmatch(user) else url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    if parts.username is None and parts.password is None:
        return url
    ssh_user = parts.scheme.lower() == "ssh" and parts.password is None
    if ssh_user and _SSH_USER.fullmatch(parts.username or ""):
        return url
    host = parts.hostname or ""
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
    """`url` if it is a plain http(s) or ssh repository URL on an allowed host; else
    ParameterError saying what is wrong and what to do."""
    what = "Parameter repo"
    if not isinstance(url, str) or not url:
        raise ParameterError(f"{what}: give the repository's https:// or ssh:// URL")
    if len(url) > MAX_URL:
        raise ParameterError(f"{what}: the URL is longer than {MAX_URL} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ParameterError(f"{what}: the URL holds a space or control character")
    if url.startswith("-"):
        raise ParameterError(f"{what}: a URL may not start with '-' (git would read an option)")
    if "::" in url.split("/", 1)[0]:
        raise ParameterError(f"{what}: git remote helpers (such as ext::) are refused")
    scp = _SCP.fullmatch(url) if "://" not in url else None
    if scp is not None:
        scheme, user, password, host = "ssh", scp["user"], None, scp["host"]
        port, path, extra = None, "/" + scp["path"], ""
        if scp["path"].startswith("-") or not scp["path"]:
            raise ParameterError(f"{what}: {host}:PATH needs a path not starting with '-'")
    else:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ParameterError(f"{what}: not a URL ({exc})") from exc
        scheme, user, password = parts.scheme.lower(), parts.username, parts.password
        host, path, extra = parts.hostname or "", parts.path, parts.query + parts.fragment
        if scheme not in SCHEMES:
            shown = parts.scheme or "a local path"
            raise ParameterError(
                f"{what}: only https:// (or http://) and ssh:// (or user@host:path) "
                f"repositories are cloned, not {shown}"
            )
        if "@" in parts.netloc and user is None:
            user = ""
    if password is not None or (
        user is not None and (scheme != "ssh" or not _SSH_USER.fullmatch(user))
    ):
        secret = "repo_ssh_key" if scheme == "ssh" else "repo_credential"
        raise ParameterError(
            f"{what}: the URL carries credentials ({redact_url(url)}); give them as the "
            f"secret parameter {secret} instead"
        )
    if not _HOST.fullmatch(host):
        raise ParameterError(f"{what}: {host[:80]!r} is not a host name")
    if port == 0:
        raise ParameterError(f"{what}: port 0 is not a port")
    if extra:
        raise ParameterError(f"{what}: a repository URL has no query or fragment")
    if path and not _PATH.fullmatch(path):
        raise ParameterError(f"{what}: the URL's path holds characters git URLs do not use")
    if ".." in path.split("/"):
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
