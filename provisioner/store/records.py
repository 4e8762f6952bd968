"""Log entries and prompts of a task: the parts of the store that grow with use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from provisioner.model import utcnow
from provisioner.store.schema import logs, prompts


def insert_ignoring_duplicates(db: Engine, table: Any) -> Any:
    # Two followers (or a follower and a final sync) may store the same bridge entry:
    # the unique (task_id, seq) keeps one and the other is dropped silently.
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


_LOG_COLUMNS = ("task_id", "seq", "type", "content", "time", "prompt_id", "source")
_LOG_KEYS = ("id", "seq", "type", "content", "time", "prompt_id", "source", "delivery")


class _BulkLogInsert:
    """The log insert compiled once, run straight on the driver.

    A flood stores thousands of lines per batch: SQLAlchemy's per-row parameter handling
    cost more than SQLite's insert itself. The columns are plain strings and integers, so
    the driver takes the values as they are.
    """

    def __init__(self, db: Engine) -> None:
        compiled = (
            insert_ignoring_duplicates(db, logs)
            .inline()
            .compile(dialect=db.dialect, column_keys=list(_LOG_COLUMNS))
        )
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None

    def params(self, rows: list[dict[str, Any]]) -> list[Any]:
        """The rows in the driver's parameter style."""
        if self.order is None:
            return rows
        order = self.order
        return [tuple(row[key] for key in order) for row in rows]


def _source(value: object) -> str | None:
    """An entry's source as stored: a short name or nothing (the column holds 16)."""
    return value[:16] if isinstance(value, str) and value else None


class LogsMixin:
    """Transcript entries from the bridge and provisioning lines, in arrival order."""

    db: Engine
    # Callbacks run whenever lines are stored, so long-polling readers in this process wake
    # at once; readers still re-check on a timer for writers in other processes.
    log_listeners: set[Callable[[], None]]
    _bulk_log_insert: _BulkLogInsert | None = None

    def append_logs(self, task_id: str, entries: list[dict[str, Any]]) -> int:
        """Store entries; ones whose bridge seq is already stored are skipped."""
        rows = [
            {
                "task_id": task_id,
                "seq": e.get("seq"),
                "type": e["type"],
                "content": e["content"],
                "time": e.get("time") or utcnow(),
                "prompt_id": e.get("prompt_id"),
                "source": _source(e.get("source")),
            }
            for e in entries
        ]
        if not rows:
            return 0
        bulk = self._bulk_log_insert
        if bulk is None:
            bulk = self._bulk_log_insert = _BulkLogInsert(self.db)
        with self.db.begin() as conn:
            result = conn.exec_driver_sql(bulk.sql, bulk.params(rows))
        for listener in list(self.log_listeners):
            listener()
        return int(result.rowcount or 0)

    def system_log(self, task_id: str, content: str) -> None:
        """A provisioning line (not from the agent) in the task's logs."""
        self.append_logs(task_id, [{"seq": None, "type": "system", "content": content}])

    def logs(self, task_id: str, after: int = 0, limit: int = 10000) -> list[dict[str, Any]]:
        """Log entries with id > after, oldest first, inputs with their delivery state."""
        query = (
            select(
                logs.c.id,
                logs.c.seq,
                logs.c.type,
                logs.c.content,
                logs.c.time,
                logs.c.prompt_id,
                logs.c.source,
                prompts.c.state.label("delivery"),
            )
            .outerjoin(prompts, prompts.c.id == logs.c.prompt_id)
            .where(and_(logs.c.task_id == task_id, logs.c.id > after))
            .order_by(logs.c.id)
            .limit(limit)
        )
        with self.db.connect() as conn:
            # zip over plain tuples: a third of the cost of dict(row._mapping) per row
            return [dict(zip(_LOG_KEYS, row, strict=True)) for row in conn.execute(query)]

    def last_seq(self, task_id: str) -> int:
        """The highest bridge sequence number stored for the task (0 when none)."""
        with self.db.connect() as conn:
            value = conn.execute(
                select(func.max(logs.c.seq)).where(logs.c.task_id == task_id)
            ).scalar()
        return int(value or 0)

    def tail(self, task_id: str, lines: int = 10) -> list[str]:
        """The last output lines (agent or setup), for error messages."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(logs.c.content)
                .where(and_(logs.c.task_id == task_id, logs.c.type == "output"))
                .order_by(logs.c.id.desc())
                .limit(lines)
            )
            return [r[0] for r in rows][::-1]


class PromptsMixin:
    """Prompts sent to a task, kept until the agent has taken them (none is lost)."""

    db: Engine

    def add_prompt(self, task_id: str, prompt_id: str, content: str) -> dict[str, Any]:
        """Record a prompt as queued; the same id twice is stored once."""
        row = {
            "id": prompt_id,
            "task_id": task_id,
            "content": content,
            "state": "queued",
            "handed": 0,
            "created_at": utcnow(),
        }
        with self.db.begin() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, prompts), [row])
        return self.prompt(prompt_id) or row

    def prompt(self, prompt_id: str) -> dict[str, Any] | None:
        """One prompt by id."""
        with self.db.connect() as conn:
            row = conn.execute(select(prompts).where(prompts.c.id == prompt_id)).first()
        return dict(row._mapping) if row else None

    def prompts(self, task_id: str, only_unhanded: bool = False) -> list[dict[str, Any]]:
        """The task's prompts in the order they were sent."""
        query = select(prompts).where(prompts.c.task_id == task_id)
        if only_unhanded:
            query = query.where(prompts.c.handed == 0)
        with self.db.connect() as conn:
            rows = conn.execute(query.order_by(prompts.c.created_at, prompts.c.id))
            return [dict(r._mapping) for r in rows]

    def mark_handed(self, prompt_id: str) -> None:
        """The bridge has the prompt in its own (persistent) queue."""
        with self.db.begin() as conn:
            conn.execute(update(prompts).where(prompts.c.id == prompt_id).values(handed=1))

    def sync_prompts(self, task_id: str, reported: list[dict[str, Any]]) -> None:
        """Take the bridge's view of delivery states (it is the one that knows)."""
        order = {"queued": 0, "delivered": 1, "taken": 2}
        mine = {p["id"]: p for p in self.prompts(task_id)}
        with self.db.begin() as conn:
            for rp in reported:
                have = mine.get(rp.get("id", ""))
                state = rp.get("state", "queued")
                if have is None or order.get(state, 0) <= order.get(have["state"], 0):
                    continue
                conn.execute(
                    update(prompts)
                    .where(prompts.c.id == have["id"])
                    .values(
                        state=state,
                        handed=1,
                        delivered_at=rp.get("delivered_at"),
                        taken_at=rp.get("taken_at"),
                    )
                )
