"""Pure rendering of API objects as tables, text lines and JSON; no I/O here."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from provisioner.bridge.runtime.wire import INPUT, QUEUED, SYSTEM, StoredLogEntry

EMPTY = "-"
MESSAGE_WIDTH = 60
TASK_HEADERS = ("NAME", "STATUS", "PHASE", "STATE", "UPDATED", "MESSAGE")
# statuses after which a task changes no more without a user acting
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# statuses in which no agent runs, so no more logs arrive on their own
STOPPED_STATUSES = frozenset({"paused", "error"}) | TERMINAL_STATUSES
_HEX = re.compile(r"[0-9a-f]+")


def cell(value: Any) -> str:
    """A value as table text; None and empty values become `-`."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def truncate(text: str, width: int = MESSAGE_WIDTH) -> str:
    """One line of at most `width` characters, ending in `...` when cut."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: max(width - 3, 0)].rstrip() + "..."


def short_version(version: str | None) -> str:
    """A content-hash version shortened like a git hash; other versions unchanged."""
    if version and len(version) > 12 and _HEX.fullmatch(version):
        return version[:12]
    return cell(version)


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (naive ones are UTC), or None."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def relative_time(value: str | None, now: datetime | None = None) -> str:
    """`5s ago`, `3m ago`, `2h ago`, `4d ago`; `-` when missing; the raw text if unparsable."""
    if not value:
        return EMPTY
    then = parse_time(value)
    if then is None:
        return value
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    seconds = max(seconds, 0)  # a server clock slightly ahead of ours
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _plain(value: str) -> bool:
    """True for text rich lays out as one character per column: printable ASCII."""
    return value.isascii() and value.isprintable()


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A borderless, aligned table, one row per line (never wrapped, so `awk` can read it)."""
    rows = [list(row) for row in rows]
    # headers are rich markup (emoji codes, [styles]); ours never use either
    fixed = all(_plain(v) and not set(v) & set(":[") for v in headers)
    if fixed and all(_plain(v) for row in rows for v in row):
        # what rich prints for such cells, without importing it (~40 ms a command)
        widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
        lines = [headers, *rows]
        return "\n".join(
            "   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0))
    for header in headers:
        table.add_column(header, header_style="", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(value) for value in row))
    buffer = io.StringIO()
    # a huge width keeps every row on one line; long cells are truncated by the callers
    console = Console(file=buffer, width=100_000, color_system=None, force_terminal=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def to_json(value: Any) -> str:
    """Indented JSON for `-o json`."""
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- tasks ---
def task_row(task: dict[str, Any], now: datetime | None = None) -> list[str]:
    """The TASK_HEADERS cells of one task."""
    return [
        cell(task.get("name")),
        cell(task.get("status")),
        cell(task.get("phase")),
        cell(task.get("state")),
        relative_time(task.get("updated_at"), now),
        truncate(cell(task.get("message"))),
    ]


def tasks_table(
    tasks: Iterable[dict[str, Any]], now: datetime | None = None, owners: bool = False
) -> str:
    """The task list table; with `owners`, an OWNER column first (every user's tasks)."""
    if owners:
        rows = [[cell(t.get("owner")), *task_row(t, now)] for t in tasks]
        return render_table(["OWNER", *TASK_HEADERS], rows)
    return render_table(TASK_HEADERS, [task_row(t, now) for t in tasks])


def status_line(task: dict[str, Any]) -> str:
    """`initializing: image`, `active: idle`, `paused`: the status with its detail."""
    status = cell(task.get("status"))
    detail = task.get("phase") if status == "initializing" else task.get("state")
    return f"{status}: {detail}" if detail else status


# A log entry as the API sends it: a wire.StoredLogEntry (read loosely: a server of
# another version may send fewer fields)
LogEntryJSON = StoredLogEntry | Mapping[str, Any]


def log_entry(entry: LogEntryJSON) -> dict[str, Any]:
    """The JSON shape of a log entry: the server's, with source, prompt and delivery only
    where they say something (its seq is the bridge's business)."""
    shape: dict[str, Any] = {k: entry.get(k) for k in ("id", "type", "content", "time")}
    if entry.get("source"):
        shape["source"] = entry["source"]  # agent | screen | setup
    if entry.get("prompt_id"):
        shape["prompt_id"] = entry["prompt_id"]
        shape["delivery"] = entry.get("delivery")  # queued | delivered | taken
    return shape


def log_text(entry: LogEntryJSON) -> str:
    """A log entry as text: inputs as `>>> ...`, system lines as `[dockyard] ...`."""
    content = str(entry.get("content") or "").rstrip("\n")
    prefix = {INPUT: ">>> ", SYSTEM: "[dockyard] "}.get(str(entry.get("type")), "")
    if entry.get("delivery") == QUEUED:
        prefix += "(queued) "
    if not prefix:
        return content
    return "\n".join(prefix + line for line in content.split("\n"))


# --- templates and presets ---
def templates_table(templates: Iterable[dict[str, Any]]) -> str:
    """The template list table."""
    rows = [
        [
            cell(t.get("name")),
            truncate(cell(t.get("description"))),
            cell(t.get("presets")),
            short_version(t.get("version")),
        ]
        for t in templates
    ]
    return render_table(("NAME", "DESCRIPTION", "PRESETS", "VERSION"), rows)


def _option(option: Any) -> str:
    """An option given as a plain value or as {name, value}."""
    if isinstance(option, dict):
        return cell(option.get("value", option.get("name")))
    return cell(option)


def parameter_row(param: dict[str, Any]) -> list[str]:
    """NAME TYPE DEFAULT REQUIRED DESCRIPTION OPTIONS cells of one template parameter."""
    default = param.get("default")
    if param.get("secret") and default not in (None, ""):
        default = "(secret)"
    return [
        cell(param.get("name")),
        cell(param.get("type")),
        truncate(cell(default), 30),
        "yes" if param.get("required") else "no",
        truncate(cell(param.get("description"))),
        ",".join(_option(o) for o in param.get("options") or []) or EMPTY,
    ]


def template_text(template: dict[str, Any]) -> str:
    """`template show`: the template's fields, then its parameters table."""
    default = template.get("default_preset")
    presets = [f"{p} (default)" if p == default else str(p) for p in template.get("presets") or []]
    lines = [
        f"Name:         {cell(template.get('name'))}",
        f"Description:  {cell(template.get('description'))}",
        f"Version:      {cell(template.get('version'))}",
        f"Backend:      {cell(template.get('backend'))}",
        f"Presets:      {', '.join(presets) or EMPTY}",
        "",
    ]
    params = template.get("parameters") or []
    if not params:
        return "\n".join([*lines, "Parameters:   none"])
    headers = ("NAME", "TYPE", "DEFAULT", "REQUIRED", "DESCRIPTION", "OPTIONS")
    return "\n".join([*lines, "Parameters:", render_table(headers, map(parameter_row, params))])


def presets_table(presets: Iterable[dict[str, Any]]) -> str:
    """The preset list table."""
    rows = [
        [
            cell(p.get("template")),
            cell(p.get("name")),
            "yes" if p.get("default") else EMPTY,
            truncate(cell(p.get("parameters"))),
        ]
        for p in presets
    ]
    return render_table(("TEMPLATE", "PRESET", "DEFAULT", "PARAMETERS"), rows)


def events_table(events: Iterable[dict[str, Any]], tasks: bool = False) -> str:
    """A task's history as a table; with `tasks`, every task's (a TASK column)."""
    rows = []
    for e in events:
        row = [
            cell(e.get("time")),
            cell(e.get("kind")),
            f"{cell(e.get('from_value'))} -> {cell(e.get('to_value'))}",
            cell(e.get("actor")),
            truncate(cell(e.get("reason")), 60),
        ]
        rows.append([cell(e.get("task_name")), *row] if tasks else row)
    headers = ["TIME", "KIND", "CHANGE", "ACTOR", "REASON"]
    return render_table(["TASK", *headers] if tasks else headers, rows)


def queue_table(entries: Iterable[dict[str, Any]]) -> str:
    """`task list --queue` (GET /api/v2/queue): place in admission order, and what each
    waits for; another user's task shows as `-`."""
    rows = [
        [
            "-" if e.get("position") is None else str(e["position"]),
            cell(e.get("name")),
            str(e.get("priority")),
            cell(e.get("target") or e.get("template") or e.get("codebase")),
            cell(e.get("waiting_for")),
            truncate(cell(e.get("reason"))),
        ]
        for e in entries
    ]
    return render_table(["#", "NAME", "PRI", "TARGET", "WAITING FOR", "WHY"], rows)


def queue_lines(task: dict[str, Any]) -> list[str]:
    """The queue's fields of `task status` worth a line each, when set."""
    lines = []
    title = task.get("title")
    if title:
        lines.append(f"title: {title}")
    extra = [f"priority {task.get('priority')}"]
    for key in ("task_type", "epic", "target", "codebase"):
        if task.get(key):
            extra.append(f"{key.replace('_', ' ')} {task[key]}")
    if task.get("tags"):
        extra.append("tags " + ",".join(task["tags"]))
    attempt, retries = int(task.get("attempt") or 1), int(task.get("retries") or 0)
    if attempt > 1 or retries:
        most = retries + 1
        extra.append(f"attempt {attempt} of {most}" if attempt <= most else f"attempt {attempt}")
    lines.append(", ".join(extra))
    if task.get("retry_at"):
        lines.append(f"retry: attempt {attempt + 1} starts at {task['retry_at']}")
    if task.get("question"):
        lines.append(f"question: {task['question']}")
    if task.get("progress"):
        lines.append(f"progress: {task['progress']}")
    if task.get("outcome"):
        outcome = str(task["outcome"])
        details = [d for d in (task.get("error_class"), task.get("error_code")) if d]
        if details:
            outcome += f" ({', '.join(details)})"
        lines.append(f"outcome: {outcome}")
    if task.get("tokens_in") or task.get("tokens_out") or task.get("cost_usd"):
        cost = (
            f"cost: {task.get('tokens_in') or 0} tokens in, {task.get('tokens_out') or 0} out"
            f", ${float(task.get('cost_usd') or 0):.4f}"
        )
        if task.get("model"):
            cost += f" ({task['model']})"
        lines.append(cost)
    return lines


def workspace_lines(task: dict[str, Any]) -> list[str]:
    """Where the task's workspace came from (a fork) and whether it is gone (retention)."""
    lines = []
    if task.get("parent_id"):
        lines.append(f"forked from: {task['parent_id']}")
    workspace = task.get("workspace") or {}
    if workspace.get("removed_at"):
        reason = workspace.get("reason") or "removed"
        lines.append(f"workspace: removed {relative_time(workspace['removed_at'])}: {reason}")
    return lines


def app_lines(task: dict[str, Any], apps: list[dict[str, Any]] | None = None) -> list[str]:
    """The ports its template declares (`apps:`), where the server previews them, and
    (given `apps` as GET /tasks/T/apps answers) whether each answers its health path."""
    lines = []
    states = {a.get("name"): a.get("up") for a in apps or []}
    for app in (task.get("policy") or {}).get("apps") or []:
        health = f", health {app['health']}" if app.get("health") else ""
        where = f"/api/dockyard/v1/tasks/{task.get('name')}/apps/{app.get('name')}/"
        up = states.get(app.get("name"))
        state = "" if up is None else (" (up)" if up else " (not answering)")
        lines.append(f"app: {app.get('name')} port {app.get('port')}{health}{state}: {where}")
    return lines


def phases_line(phases: Iterable[dict[str, Any]]) -> str:
    """`phases: image 0.1s, create 0.1s, ... (total 0.9s)`; an open phase says `running`."""
    parts = []
    total = 0.0
    for p in phases:
        took = p.get("duration_s")
        if took is None:
            parts.append(f"{p.get('phase')} running")
        else:
            total += float(took)
            parts.append(f"{p.get('phase')} {float(took):.2f}s")
    return f"phases: {', '.join(parts)} (total {total:.2f}s)"
