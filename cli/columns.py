"""`-c/--column` of `task list` and `task status`: the table's columns chosen by name, as
Coder's CLI does (`-c name,status,state`). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import click

from cli.render import cell, relative_time, render_table, truncate

Getter = Callable[[dict[str, Any], datetime | None], str]


def _field(key: str) -> Getter:
    return lambda task, _now: cell(task.get(key))


def _since(*keys: str) -> Getter:
    def get(task: dict[str, Any], now: datetime | None) -> str:
        return relative_time(next((task[k] for k in keys if task.get(k)), None), now)

    return get


# header -> how to fill it; the first six are the default table's (TASK_HEADERS)
COLUMNS: dict[str, Getter] = {
    "NAME": _field("name"),
    "STATUS": _field("status"),
    "PHASE": _field("phase"),
    "STATE": _field("state"),
    "UPDATED": _since("updated_at"),
    "MESSAGE": lambda task, _now: truncate(cell(task.get("message"))),
    "ID": _field("id"),
    "OWNER": _field("owner"),
    "TEMPLATE": _field("template"),
    "PRESET": _field("preset"),
    "PRIORITY": _field("priority"),
    "CREATED": _since("created_at"),
    "STATE CHANGED": _since("state_changed_at", "updated_at"),
}
# Coder's names of the same columns
ALIASES = {"OWNER NAME": "OWNER", "TEMPLATE NAME": "TEMPLATE", "UPDATED AT": "UPDATED"}


def _header(name: str) -> str | None:
    key = " ".join(name.replace("_", " ").replace("-", " ").upper().split())
    key = ALIASES.get(key, key)
    return key if key in COLUMNS else None


def parse_columns(
    ctx: click.Context | None, param: click.Parameter | None, values: Sequence[str]
) -> list[str]:
    """Click callback: `-c name,status -c state` as ["NAME", "STATUS", "STATE"]."""
    wanted: list[str] = []
    for value in values:
        for name in value.split(","):
            if not name.strip():
                continue
            header = _header(name)
            if header is None:
                known = ", ".join(h.lower() for h in COLUMNS)
                raise click.BadParameter(f"unknown column {name.strip()[:40]!r} (one of: {known})")
            wanted.append(header)
    return wanted


column_option = click.option(
    "-c",
    "--column",
    "columns",
    multiple=True,
    callback=parse_columns,
    metavar="NAME[,NAME]",
    help="Only these columns, in this order (name, status, phase, state, updated, message, "
    "id, owner, template, preset, priority, created, state changed).",
)


def column_table(
    tasks: Iterable[dict[str, Any]], columns: Sequence[str], now: datetime | None = None
) -> str:
    """The tasks as a table of `columns` (headers of COLUMNS)."""
    rows = [[COLUMNS[c](task, now) for c in columns] for task in tasks]
    return render_table(list(columns), rows)
