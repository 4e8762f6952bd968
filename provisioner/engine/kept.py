"""The kept bundles' folder (<home>/kept): a git bundle of a deleted task's branch and a
record of whose it was, so `task pull` still gets the work after `task delete`. Names
come only from task ids checked by provisioner.gitwork.kept; files are 0600 in a 0700
folder, written whole (a temporary file, then a rename) so a reader never sees half."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.gitwork import kept as rules
from provisioner.gitwork.kept import KeptError, KeptRecord

log = logging.getLogger(__name__)


class KeptBundles:
    """One server's kept bundles, bounded in size each and in age (`days`, 0: forever)."""

    def __init__(
        self,
        root: Path,
        max_bytes: int = rules.DEFAULT_MAX_BYTES,
        days: int = rules.DEFAULT_DAYS,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.days = days

    def _write(self, name: str, data: bytes) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.root / name
        partial = self.root / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, final)

    def keep(
        self, record: KeptRecord, data: bytes, diffs: dict[str, dict[str, Any]] | None = None
    ) -> Path:
        """Write the bundle and its diffs, then its record (a record always has its
        bundle)."""
        self.prune()
        self._write(rules.bundle_name(record.task_id), data)
        if diffs:
            bounded = rules.bounded_diffs(diffs, self.max_bytes)
            self._write(rules.diff_name(record.task_id), json.dumps(bounded).encode())
        self._write(rules.record_name(record.task_id), json.dumps(record.to_json()).encode())
        return self.root / rules.bundle_name(record.task_id)

    def records(self) -> list[KeptRecord]:
        """Every readable record (a damaged one is skipped and logged)."""
        found: list[KeptRecord] = []
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.glob("*.json")):
            try:
                record = rules.record_of(json.loads(path.read_text()))
            except (OSError, ValueError, KeptError) as exc:
                log.warning("kept record %s skipped: %s", path.name, exc)
                continue
            if path.name == rules.record_name(record.task_id):
                found.append(record)
        return found

    def find(self, ref: str, owner: str | None) -> KeptRecord | None:
        """The newest kept record `ref` names for `owner` (None: anyone's), if any."""
        self.prune()
        hits = [r for r in self.records() if rules.matches(r, ref, owner)]
        return max(hits, key=lambda r: r.kept_at) if hits else None

    def read(self, record: KeptRecord) -> bytes:
        return (self.root / rules.bundle_name(record.task_id)).read_bytes()

    def diff(self, record: KeptRecord, kind: str) -> dict[str, Any] | None:
        """The diff kept with the bundle (`kind`: against the base or the last
        checkpoint); None when none was kept (a bundle kept before diffs were)."""
        try:
            raw = (self.root / rules.diff_name(record.task_id)).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return rules.diffs_of(json.loads(raw)).get(kind)
        except (ValueError, KeptError) as exc:
            log.warning("kept diff of %s skipped: %s", record.task_id, exc)
            return None

    def remove(self, task_id: str) -> None:
        for name in (
            rules.record_name(task_id),
            rules.bundle_name(task_id),
            rules.diff_name(task_id),
        ):
            (self.root / name).unlink(missing_ok=True)

    def prune(self, now: datetime | None = None) -> list[str]:
        """Remove the bundles past retention; the task ids removed."""
        now = now or datetime.now(UTC)
        gone: list[str] = []
        for record in self.records():
            if rules.expired(record.kept_at, now, self.days):
                self.remove(record.task_id)
                gone.append(record.task_id)
        return gone
