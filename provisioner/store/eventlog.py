"""Every task event the store commits, also as a line of the server's log.

A log pipeline then sees each change of every task (status, state, phase, priority,
a prompt that failed...) as one line with its task id, next to the request that caused
it (the line carries that request's id: see provisioner/server/logformat.py). Events are
inserted in many places of the store; rather than each remembering to log, the engine's
hooks collect the inserts into the events table and log them once their transaction
commits (a rolled-back event is no event).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.sql.dml import Insert

from provisioner.store.schema import events

log = logging.getLogger("dockyard.events")
_PENDING = "dockyard_pending_events"


def _collect(conn: Any, clause: Any, multiparams: Any, params: Any, *_: Any) -> None:
    if not isinstance(clause, Insert) or clause.table is not events:
        return
    if not log.isEnabledFor(logging.INFO):
        return
    rows = [dict(clause.compile().params)]
    if multiparams:  # insert(events), [{...}, ...]
        rows = [{**rows[0], **row} for row in multiparams if isinstance(row, dict)] or rows
    conn.info.setdefault(_PENDING, []).extend(rows)


def _plain(value: object, limit: int = 200) -> str:
    """One short line: a reason may hold a user's text, and a text log must not let a
    newline in it forge a line of its own (the JSON fields keep it whole)."""
    text = str(value if value is not None else "")
    return "".join(c if c.isprintable() else "\ufffd" for c in text[:limit])


def _flush(conn: Any) -> None:
    for row in conn.info.pop(_PENDING, []):
        old, new = row.get("from_value"), row.get("to_value")
        change = f"{_plain(old, 32)} -> {_plain(new, 32)}" if old else _plain(new, 32)
        log.info(
            "task %s: %s %s by %s%s",
            row.get("task_id"),
            _plain(row.get("kind"), 16),
            change,
            _plain(row.get("actor"), 64),
            f" ({_plain(row['reason'])})" if row.get("reason") else "",
            extra={
                "task_id": row.get("task_id"),
                "event": row.get("kind"),
                "from": old,
                "to": new,
                "actor": row.get("actor"),
                "reason": row.get("reason") or "",
            },
        )


def _discard(conn: Any) -> None:
    conn.info.pop(_PENDING, None)


def install(db: Engine) -> None:
    """Log the task events committed through `db`."""
    event.listen(db, "after_execute", _collect)
    event.listen(db, "commit", _flush)
    event.listen(db, "rollback", _discard)
