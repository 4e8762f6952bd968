"""What tasks cost, totalled: `dockyard cost [--by ...] [--since ...]` (GET /api/v2/cost).
Pure: the store hands over each task's cost columns, this groups and sums them.

A task's columns are already sums over its turns and attempts, so a task counts once.
`--since` and `--by day` go by when the task was created (its cost is not stored per day).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from provisioner.errors import ParameterError

# what a total may be grouped by: a task column, or the day (UTC) the task was created
GROUPINGS = ("template", "owner", "model", "target", "day")
_AGO_RE = re.compile(r"(\d{1,6})([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_AGO = timedelta(days=3660)
# the columns each row must carry
COLUMNS = ("template", "owner", "model", "target", "created_at", "tokens_in", "tokens_out")


def parse_since(text: str, now: datetime) -> datetime:
    """`7d`, `12h`, `30m`, `2w` ago, or a date (`2026-11-01`, midnight UTC) or ISO time;
    ParameterError for anything else, or a time in the future."""
    value = text.strip()
    ago = _AGO_RE.fullmatch(value)
    if ago:
        span = timedelta(seconds=int(ago.group(1)) * _UNIT_S[ago.group(2)])
        if span > MAX_AGO:
            raise ParameterError(f"Invalid since {value[:40]!r}: at most {MAX_AGO.days}d ago")
        return now - span
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            f"Invalid since {value[:40]!r}: a span such as 7d, 12h, 30m or 2w, "
            "or a date such as 2026-11-01"
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > now:
        raise ParameterError(f"Invalid since {value[:40]!r}: it is in the future")
    return when.astimezone(UTC)


def check_grouping(by: str | None) -> str | None:
    """`by` if it is one of GROUPINGS (or None: totals only)."""
    if by is not None and by not in GROUPINGS:
        raise ParameterError(f"Invalid grouping {by[:40]!r}: one of {', '.join(GROUPINGS)}")
    return by


def _key(row: Mapping[str, Any], by: str) -> str | None:
    if by == "day":
        return str(row["created_at"])[:10]
    value = row.get(by)
    return None if value is None else str(value)


def _empty() -> dict[str, Any]:
    return {"tasks": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}


def _add(total: dict[str, Any], row: Mapping[str, Any]) -> None:
    total["tasks"] += 1
    total["tokens_in"] += int(row.get("tokens_in") or 0)
    total["tokens_out"] += int(row.get("tokens_out") or 0)
    total["cost_usd"] += float(row.get("cost_usd") or 0.0)


def totals(rows: Iterable[Mapping[str, Any]], by: str | None) -> dict[str, Any]:
    """{"total": sums, "groups": [{"key", sums...}]}: groups by `by`, most dollars first
    (then most tokens, then by key; days newest first); none without `by`."""
    total = _empty()
    groups: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        _add(total, row)
        if by is not None:
            key = _key(row, by)
            _add(groups.setdefault(key, {"key": key, **_empty()}), row)
    listed = list(groups.values())
    for item in [total, *listed]:
        item["cost_usd"] = round(item["cost_usd"], 6)
    if by == "day":
        listed.sort(key=lambda g: str(g["key"]), reverse=True)
    else:
        listed.sort(
            key=lambda g: (-g["cost_usd"], -(g["tokens_in"] + g["tokens_out"]), str(g["key"]))
        )
    return {"total": total, "groups": listed}
