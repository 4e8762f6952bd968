"""Reading what the git scripts print (pure): `@@key value` lines and `@@section` blocks."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from provisioner.gitwork.scripts import BASE_LINE, FAILED_LINE

SECTIONS = ("commits", "numstat", "diff", "bundle", "error")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# a diff's paths a local `git apply` would write: none inside .git, none climbing out
_DIFF_PATH = re.compile(r"^(?:diff --git a/(.*) b/(.*)|\+\+\+ b/(.*)|--- a/(.*))$")


class GitOutputError(ValueError):
    """The script's output is not what it prints: a broken or hostile workspace."""


@dataclass
class ScriptOutput:
    """The keys (`@@key value`) and sections (`@@name`, then lines) a script printed."""

    keys: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)


def read_output(text: str) -> ScriptOutput:
    """Split a script's output into keys and sections."""
    out = ScriptOutput()
    current: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("@@"):
            head = line[2:].rstrip("\n")
            name, _, value = head.partition(" ")
            if name in SECTIONS and not value:
                if current is not None:
                    out.sections[current] = "".join(lines)
                current, lines = name, []
                continue
            if current is None or current not in ("diff", "bundle", "error"):
                out.keys[name] = value
                continue
        if current is not None:
            lines.append(line)
    if current is not None:
        out.sections[current] = "".join(lines)
    return out


def error_of(text: str, limit: int = 600) -> str:
    """What a failed script said (git's last messages), short and on one line."""
    out = read_output(text)
    said = out.sections.get("error", text).strip()
    said = " ".join(said.split())
    return said[-limit:] if said else "no message"


def sha(value: str | None, what: str) -> str:
    """A commit id, checked."""
    if value is None or not _SHA.fullmatch(value):
        raise GitOutputError(f"the workspace answered no {what} commit id")
    return value


def commits_of(section: str) -> list[dict[str, str]]:
    """`%H\\t%an\\t%s` lines as commits, newest first."""
    found = []
    for line in section.splitlines():
        commit, _, rest = line.partition("\t")
        author, _, subject = rest.partition("\t")
        if _SHA.fullmatch(commit):
            found.append({"commit": commit, "author": author, "subject": subject})
    return found


def numstat_of(section: str) -> list[dict[str, Any]]:
    """`git diff --numstat` lines as files: added and deleted lines (None for binary)."""
    files = []
    for line in section.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        added, deleted, path = parts
        files.append(
            {
                "path": path,
                "added": int(added) if added.isdigit() else None,
                "deleted": int(deleted) if deleted.isdigit() else None,
            }
        )
    return files


def diff_result(text: str) -> dict[str, Any]:
    """The diff script's output as the API shows it."""
    out = read_output(text)
    files = numstat_of(out.sections.get("numstat", ""))
    return {
        "base_commit": sha(out.keys.get("base"), "base"),
        "from_commit": sha(out.keys.get("from"), "starting"),
        "head_commit": sha(out.keys.get("head"), "head"),
        "branch": out.keys.get("branch", ""),
        "commits": commits_of(out.sections.get("commits", "")),
        "files": files,
        "added": sum(f["added"] or 0 for f in files),
        "deleted": sum(f["deleted"] or 0 for f in files),
        "diff": out.sections.get("diff"),
    }


def kept_diffs(text: str, separator: str) -> dict[str, dict[str, Any]]:
    """Both diffs of the kept-diffs script: {"base": ..., "checkpoint": ...}. No line of
    a diff, numstat or commit list starts with the separator (diff lines start with a
    space, + or -; hunk headers with "@@ -")."""
    lines = text.splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if line.rstrip("\n") == separator]
    if len(marks) != 1:
        raise GitOutputError("the workspace's diffs are not in the expected form")
    first, second = "".join(lines[: marks[0]]), "".join(lines[marks[0] + 1 :])
    return {"base": diff_result(first), "checkpoint": diff_result(second)}


_BUNDLE_REF = re.compile(r"HEAD|refs/heads/[A-Za-z0-9_][A-Za-z0-9._/+-]{0,200}")


def bundle_ref(value: str | None) -> str:
    """The ref a bundle holds (the task branch, or HEAD), checked: a client fetches it."""
    if value is None or not _BUNDLE_REF.fullmatch(value) or ".." in value:
        raise GitOutputError("the workspace named no branch for its bundle")
    return value


def bundle_of(text: str) -> tuple[str, str, bytes | None]:
    """(base commit, the ref in the bundle, the bundle's bytes; None when the branch has
    no commit beyond the base)."""
    out = read_output(text)
    base = sha(out.keys.get("base"), "base")
    ref = bundle_ref(out.keys.get("ref"))
    if "empty" in out.keys:
        return base, ref, None
    encoded = "".join(out.sections.get("bundle", "").split())
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GitOutputError("the workspace's bundle is not base64") from exc
    if not data.startswith(b"# v2 git bundle") and not data.startswith(b"# v3 git bundle"):
        raise GitOutputError("the workspace answered something that is not a git bundle")
    return base, ref, data


def base_commit_in(lines: list[str]) -> str | None:
    """The base commit the clone printed in the setup's output, if it did."""
    for line in lines:
        if line.startswith(BASE_LINE):
            value = line[len(BASE_LINE) :].strip()
            if _SHA.fullmatch(value):
                return value
    return None


def unsafe_diff_paths(diff: str) -> list[str]:
    """Paths in a diff that `git apply` must never write: inside .git, absolute, or
    climbing out with '..'. A hostile workspace could send such a diff."""
    bad = []
    for line in diff.splitlines():
        m = _DIFF_PATH.match(line)
        if not m:
            continue
        for path in (p for p in m.groups() if p):
            parts = path.split("/")
            if path.startswith("/") or ".." in parts or ".git" in (p.lower() for p in parts):
                bad.append(path)
    return bad


def clone_failure(lines: list[str]) -> str | None:
    """The clone's own failure line (what git said, the URL without credentials), if the
    setup failed there: the task's error message."""
    for line in reversed(lines):
        if line.startswith(FAILED_LINE) and " failed: " in line:
            return line.removeprefix(FAILED_LINE).strip()[:1000]
    return None
