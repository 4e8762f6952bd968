"""Reports from the agent (dockyard-task): kept in order, persisted, handed to the server.

Each report gets the next sequence number and an id of its own, and is appended to
reports.jsonl in the state directory (flushed to disk before it is acknowledged), so a
bridge restart loses none. The server's follower reads the reports after the last
sequence number it applied (GET /dockyard/log?reports_after=N, GET /dockyard/reports).

The file lives where the agent can write (the home volume): on load, every record is
checked again as a new report would be, and what is not a report is left out.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from .statedir import log
from .task_command import COMPLETE, ReportError, check_report
from .transcript import utc_iso

# a workspace's whole history of reports: plenty for any agent, bounded against a flood
MAX_REPORTS = 10000
MAX_REPORT_BYTES = 16 << 20
PAGE = 100  # reports in one reply
_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportLog:
    """The reports of one workspace, in order; appended to `path` (None: memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.reports: list[dict[str, Any]] = []
        self._seqs: list[int] = []
        self.bytes = 0
        if path is not None:
            self._load(path)

    @property
    def last_seq(self) -> int:
        """The newest report's sequence number (0 when none)."""
        return self._seqs[-1] if self._seqs else 0

    def completed_after(self, seq: int) -> dict[str, Any] | None:
        """The `complete` report made after `seq`, if one was."""
        for report in reversed(self.reports):
            if report["seq"] <= seq:
                return None
            if report["kind"] == COMPLETE:
                return report
        return None

    def _load(self, path: Path) -> None:
        try:
            if path.stat().st_size > MAX_REPORT_BYTES + (1 << 20):
                # never written by a bridge (it stops at the bound): set aside unread
                aside = path.with_name(f"{path.name}.too-large-{int(time.time())}")
                path.replace(aside)
                log(f"{path} is larger than any bridge writes; moved it to {aside.name}")
                return
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log(f"cannot read the reports in {path}: {exc}")
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # a line torn by a crash (never acknowledged): cut off, as the transcript's
            try:
                with path.open("r+b") as f:
                    f.truncate(end)
            except OSError as exc:
                log(f"cannot cut a torn line off {path}: {exc}")
        skipped = 0
        for line in data[:end].splitlines():
            record = _record(line)
            if record is None or (self._seqs and record["seq"] <= self._seqs[-1]):
                skipped += 1
                continue
            self._keep(record, len(line) + 1)
        if skipped:
            log(f"left out {skipped} records of {path} that are not reports")

    def _keep(self, record: dict[str, Any], size: int) -> None:
        self.reports.append(record)
        self._seqs.append(record["seq"])
        self.bytes += size

    def room_for(self, size: int) -> bool:
        """Whether one more report of `size` bytes fits in the bounds."""
        return len(self.reports) < MAX_REPORTS and self.bytes + size <= MAX_REPORT_BYTES

    def append(self, report: dict[str, Any], now: float) -> dict[str, Any]:
        """Number, name and persist a checked report; OSError when it cannot be kept."""
        record = {"seq": self.last_seq + 1, "id": uuid.uuid4().hex, "time": utc_iso(now)}
        record.update(report)
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        if self.path is not None:
            with self.path.open("ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        self._keep(record, len(line))
        return record

    def after(self, seq: int, limit: int = PAGE) -> list[dict[str, Any]]:
        """Reports with a sequence number above `seq`, oldest first, at most `limit`."""
        start = bisect.bisect_right(self._seqs, seq)
        return [dict(r) for r in self.reports[start : start + max(limit, 0)]]


def _record(line: bytes) -> dict[str, Any] | None:
    """A stored report, checked as a new one would be; None when it is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    seq, report_id, at = data.pop("seq", None), data.pop("id", None), data.pop("time", None)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None
    if not isinstance(report_id, str) or not _ID.match(report_id) or not isinstance(at, str):
        return None
    try:
        report = check_report(data)
    except ReportError:
        return None
    return {"seq": seq, "id": report_id, "time": at[:40], **report}
