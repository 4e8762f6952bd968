"""Kept bundles: the rules of the copies of task branches the server keeps after a
delete (pure). File names come from task ids checked here, never from a caller's text,
so no name can reach outside the kept folder; a record's fields are checked when read
back, as a file on disk may have been edited."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from provisioner.gitwork.parse import GitOutputError, bundle_ref

# task ids are UUIDs (engine/commands.py): nothing else names a kept file
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_DAYS = 30


class KeptError(ValueError):
    """A kept file name or record that is not one of ours."""


def check_task_id(task_id: str) -> str:
    """`task_id`, if it is a task id (a UUID), else KeptError."""
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise KeptError(f"not a task id: {str(task_id)[:80]!r}")
    return task_id


def bundle_name(task_id: str) -> str:
    return f"{check_task_id(task_id)}.bundle"


def record_name(task_id: str) -> str:
    return f"{check_task_id(task_id)}.json"


def diff_name(task_id: str) -> str:
    """The task's diffs kept beside its bundle (the bundle starts after the base commit,
    so it cannot give a diff against the base by itself)."""
    return f"{check_task_id(task_id)}.diff"


DIFF_KINDS = ("base", "checkpoint")


def diffs_of(data: Any) -> dict[str, dict[str, Any]]:
    """Kept diffs read back from disk: {"base": ..., "checkpoint": ...}, each a diff
    answer as the API shows it; KeptError when damaged."""
    if not isinstance(data, dict) or not set(data) <= set(DIFF_KINDS):
        raise KeptError("a kept diff is damaged")
    for value in data.values():
        if not isinstance(value, dict) or not isinstance(value.get("files"), list):
            raise KeptError("a kept diff is damaged")
    return data


def bounded_diffs(diffs: dict[str, dict[str, Any]], max_bytes: int) -> dict[str, dict[str, Any]]:
    """The diffs, their text dropped (files and commits kept, `diff_omitted` said) where
    keeping it would pass `max_bytes`."""
    out = {}
    for kind, found in diffs.items():
        text = found.get("diff") or ""
        if len(text.encode()) > max_bytes:
            found = {**found, "diff": None, "diff_omitted": True}
        out[kind] = found
    return out


@dataclass(frozen=True)
class KeptRecord:
    """What the server knows of a deleted task's kept branch."""

    task_id: str
    name: str
    owner: str
    branch: str
    base: str
    ref: str
    kept_at: str  # ISO 8601, UTC
    size: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record_of(data: Any) -> KeptRecord:
    """A record read back from disk, checked field by field."""
    if not isinstance(data, dict):
        raise KeptError("a kept record is not a mapping")
    try:
        record = KeptRecord(
            task_id=check_task_id(data["task_id"]),
            name=str(data["name"]),
            owner=str(data["owner"]),
            branch=str(data["branch"]),
            base=str(data["base"]),
            ref=bundle_ref(str(data["ref"])),
            kept_at=str(data["kept_at"]),
            size=int(data["size"]),
        )
    except (KeyError, TypeError, ValueError, GitOutputError) as exc:
        raise KeptError(f"a kept record is damaged: {exc}") from exc
    if not _SHA.fullmatch(record.base):
        raise KeptError("a kept record's base is not a commit")
    return record


def matches(record: KeptRecord, ref: str, owner: str | None) -> bool:
    """Whether `ref` (a task's id or name) names this record for `owner` (None: anyone's,
    for admins)."""
    if owner is not None and record.owner != owner:
        return False
    return ref in (record.task_id, record.name)


def too_big(size: int, max_bytes: int) -> bool:
    return size > max_bytes


def expired(kept_at: str, now: datetime, days: int) -> bool:
    """Whether a bundle kept at `kept_at` is past the retention of `days` (0: forever)."""
    if days <= 0:
        return False
    try:
        when = datetime.fromisoformat(kept_at)
    except ValueError:
        return True  # unreadable: not ours to keep
    if when.tzinfo is None or now.tzinfo is None:
        when, now = when.replace(tzinfo=None), now.replace(tzinfo=None)
    return now - when > timedelta(days=days)


def parse_settings(section: Any, where: str) -> tuple[int, int]:
    """(max bytes, days) of config.yaml's `kept_bundles: {max_mb, days}`."""
    if section is None:
        return DEFAULT_MAX_BYTES, DEFAULT_DAYS
    if not isinstance(section, dict):
        raise KeptError(f"{where} must be a mapping, e.g. {{max_mb: 200, days: 30}}")
    unknown = set(section) - {"max_mb", "days"}
    if unknown:
        raise KeptError(f"{where}: unknown keys {sorted(unknown)} (max_mb, days)")
    values = []
    for key, default in (("max_mb", DEFAULT_MAX_BYTES // (1024 * 1024)), ("days", DEFAULT_DAYS)):
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise KeptError(f"{where}.{key} must be a whole number from 0, got {value!r}")
        values.append(value)
    return values[0] * 1024 * 1024, values[1]
