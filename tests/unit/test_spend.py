"""Cost totals: grouped, summed once per task, and `since` read strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from provisioner.errors import ParameterError
from provisioner.spend import check_grouping, parse_since, totals

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def row(template: str, owner: str, model: str | None, day: str, tin: int, tout: int, usd: float):
    return {
        "template": template,
        "owner": owner,
        "model": model,
        "target": None,
        "created_at": f"{day}T10:00:00.000Z",
        "tokens_in": tin,
        "tokens_out": tout,
        "cost_usd": usd,
    }


ROWS = [
    row("aider", "alice", "gpt-4o", "2026-11-29", 1000, 100, 0.5),
    row("aider", "bob", "gpt-4o", "2026-11-30", 2000, 200, 1.25),
    row("claude-code", "alice", "claude-sonnet-4-5", "2026-11-30", 10, 1, 3.0),
    row("scripted", "bob", None, "2026-11-28", 0, 0, 0.0),
]


def test_totals_group_and_sum() -> None:
    found = totals(ROWS, "template")
    assert found["total"] == {"tasks": 4, "tokens_in": 3010, "tokens_out": 301, "cost_usd": 4.75}
    assert [(g["key"], g["tasks"], g["cost_usd"]) for g in found["groups"]] == [
        ("claude-code", 1, 3.0),
        ("aider", 2, 1.75),
        ("scripted", 1, 0.0),
    ]
    by_model = {g["key"]: g["tasks"] for g in totals(ROWS, "model")["groups"]}
    assert by_model == {"claude-sonnet-4-5": 1, "gpt-4o": 2, None: 1}
    days = [g["key"] for g in totals(ROWS, "day")["groups"]]
    assert days == ["2026-11-30", "2026-11-29", "2026-11-28"]
    assert totals(ROWS, None)["groups"] == []
    assert totals([], "owner") == {
        "total": {"tasks": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0},
        "groups": [],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(days=14)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T09:00:00+01:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "7",
        "-7d",
        "7y",
        "1e3d",
        "9999999d",
        "4000d",
        "2027-01-01",
        "7d; drop",
        "\x00",
    ],
)
def test_since_that_is_garbage_is_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="Invalid since"):
        parse_since(text, NOW)


def test_grouping_is_one_of_the_known() -> None:
    assert check_grouping("day") == "day" and check_grouping(None) is None
    with pytest.raises(ParameterError, match="one of template, owner"):
        check_grouping("prompt")
