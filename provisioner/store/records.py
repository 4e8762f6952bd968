"""Log entries and prompts of a task: the parts of the store that grow with use."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from provisioner import metrics
from provisioner.bridge.runtime.wire import (
    OUTPUT,
    STORED_LOG_KEYS,
    SYSTEM,
    LogEntry,
    PromptRecord,
    StoredLogEntry,
)
from provisioner.model import utcnow
from provisioner.prompts import FAILED, FINISHED, QUEUED, STATE_ORDER, TAKEN
from provisioner.store.schema import events, logs, prompts, tasks


def insert_ignoring_duplicates(db: Engine, table: Any) -> Any:
    # Two followers (or a follower and a final sync) may store the same bridge entry:
    # the unique (task_id, seq) keeps one and the other is dropped silently.
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


# a log row as read: wire.StoredLogEntry's fields in order, which _LogsQuery selects
LOG_KEYS = STORED_LOG_KEYS
# a log row as written: the task's id and the fields a bridge entry brings
_LOG_COLUMNS = ("task_id", *(k for k in LOG_KEYS if k not in ("id", "delivery")))


class _BulkLogInsert:
    """The log insert compiled once, run straight on the driver.

    A flood stores thousands of lines per batch: SQLAlchemy's per-row parameter handling
    cost more than SQLite's insert itself. The columns are plain strings and integers, so
    the driver takes the values as they are. On SQLite one statement inserts up to
    ROWS_PER_STATEMENT rows: Python's sqlite3 releases and takes back the GIL around every
    statement it runs, and with the API's threads busy each hand-over waited its turn.
    """

    ROWS_PER_STATEMENT = 100  # 700 parameters: below SQLite's oldest limit of 999

    def __init__(self, db: Engine) -> None:
        compiled = (
            insert_ignoring_duplicates(db, logs)
            .inline()
            .compile(dialect=db.dialect, column_keys=list(_LOG_COLUMNS))
        )
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None
        group = "(" + ", ".join(["?"] * len(_LOG_COLUMNS)) + ")"
        self._multi: tuple[str, str] | None = None
        if (
            db.dialect.name == "sqlite"
            and self.order == list(_LOG_COLUMNS)
            and self.sql.count(group) == 1
        ):
            head, _, tail = self.sql.partition(group)
            self._multi = (head, tail)
        self._statements: dict[int, str] = {}

    def _statement(self, count: int) -> str:
        """INSERT ... VALUES (...), (...) ... with `count` rows."""
        sql = self._statements.get(count)
        if sql is None:
            assert self._multi is not None
            head, tail = self._multi
            group = "(" + ", ".join(["?"] * len(_LOG_COLUMNS)) + ")"
            sql = self._statements[count] = head + ", ".join([group] * count) + tail
        return sql

    def run(self, conn: Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows (values in the order of _LOG_COLUMNS); how many were new."""
        if self._multi is None:
            keys = _LOG_COLUMNS
            if self.order is None:
                params: list[Any] = [dict(zip(keys, row, strict=True)) for row in rows]
            else:
                at = [keys.index(key) for key in self.order]
                params = [tuple(row[i] for i in at) for row in rows]
            return int(conn.exec_driver_sql(self.sql, params).rowcount or 0)
        added = 0
        step = self.ROWS_PER_STATEMENT
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            flat = tuple(value for row in chunk for value in row)
            added += int(conn.exec_driver_sql(self._statement(len(chunk)), flat).rowcount or 0)
        return added


class _LogsQuery:
    """A log page query compiled once, run straight on the driver's cursor.

    A page of a flood holds thousands of rows: SQLAlchemy's result rows cost more than
    SQLite's reading them. The columns are plain strings and integers (no conversion).
    """

    def __init__(self, db: Engine, as_json: bool = False) -> None:
        # LOG_KEYS in order: the log's own columns, and its prompt's state as `delivery`
        columns = [
            prompts.c.state.label(key) if key == "delivery" else logs.c[key] for key in LOG_KEYS
        ]
        query: Any = (
            select(*columns)
            .outerjoin(prompts, prompts.c.id == logs.c.prompt_id)
            .where(and_(logs.c.task_id == bindparam("task_id"), logs.c.id > bindparam("after")))
            .order_by(logs.c.id)
            .limit(bindparam("limit"))
        )
        if as_json:
            # One row: the page as a JSON array, and the ids in the order it has them.
            page = query.subquery("page")
            pairs: list[Any] = []
            for key in LOG_KEYS:
                pairs += [literal_column(f"'{key}'"), page.c[key]]
            query = select(
                func.json_group_array(func.json_object(*pairs)),
                func.json_group_array(page.c.id),
            )
        self.compiled = query.compile(dialect=db.dialect)
        self.sql = str(self.compiled)
        self.order = self.compiled.positiontup if self.compiled.positional else None

    def params(self, task_id: str, after: int, limit: int) -> Any:
        """The arguments in the driver's parameter style (SQLite's OFFSET 0 included)."""
        named = self.compiled.construct_params({"task_id": task_id, "after": after, "limit": limit})
        if self.order is None:
            return named
        return tuple(named[key] for key in self.order)

    def run(self, db: Engine, task_id: str, after: int, limit: int) -> list[Any]:
        """The result rows as the driver gives them."""
        with db.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(self.sql, self.params(task_id, after, limit))
                return list(cursor.fetchall())
            finally:
                cursor.close()


def _source(value: object) -> str | None:
    """An entry's source as stored: a short name or nothing (the column holds 16)."""
    return value[:16] if isinstance(value, str) and value else None


# the first key of the advisory locks that order a task's log writers (see below)
_LOGS_LOCK_SPACE = 0x10C5


def _lock_task_logs(conn: Connection, task_ids: set[str]) -> None:
    """Hold each task's log lock until this transaction ends (PostgreSQL only).

    Ids come from a sequence when a row is inserted, but become visible when its
    transaction commits: two followers storing one task's lines at once could commit
    ids 7..9 after a reader had read up to 10, and a reader polling `after=` would never
    see them. Under this lock a writer takes its ids only after the previous writer of
    that task committed, so one task's ids become visible in order. Writers of other
    tasks do not wait (unless their ids hash alike, which only serialises them). SQLite
    has one writer at a time already.
    """
    for task_id in sorted(task_ids):  # one order: two multi-task writers never deadlock
        conn.execute(
            select(func.pg_advisory_xact_lock(_LOGS_LOCK_SPACE, func.hashtext(bindparam("t")))),
            {"t": task_id},
        )


class LogsMixin:
    """Transcript entries from the bridge and provisioning lines, in arrival order."""

    db: Engine
    # Callbacks run whenever lines are stored or a task changes (transition, update,
    # record), so long-polling readers in this process wake at once; readers still
    # re-check on a timer for writers in other processes.
    log_listeners: set[Callable[[], None]]
    # Callbacks run with the ids of the tasks whose rows changed (not for log lines), so a
    # reader that shows many tasks (the dashboard's stream) re-reads only those; an empty
    # set means "some, unknown which": re-read them all.
    task_listeners: set[Callable[[frozenset[str]], None]]
    _bulk_log_insert: _BulkLogInsert | None = None
    _logs_query: _LogsQuery | None = None
    _logs_json_query: _LogsQuery | None = None
    _logs_json_unsupported = False

    def append_logs(self, task_id: str, entries: Sequence[LogEntry]) -> int:
        """Store bridge entries; ones whose seq is already stored are skipped."""
        # values in the order of _LOG_COLUMNS
        rows = [
            (
                task_id,
                e.get("seq"),
                e["type"],
                e["content"],
                e.get("time") or utcnow(),
                e.get("prompt_id"),
                _source(e.get("source")),
            )
            for e in entries
        ]
        return self._insert_logs(rows)

    def _insert_logs(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        bulk = self._bulk_log_insert
        if bulk is None:
            bulk = self._bulk_log_insert = _BulkLogInsert(self.db)
        with self.db.begin() as conn:
            if self.db.dialect.name == "postgresql":
                _lock_task_logs(conn, {row[0] for row in rows})
            added = bulk.run(conn, rows)
        self._changed(logs_only=True)
        return added

    def _changed(self, *task_ids: str, logs_only: bool = False) -> None:
        """Wake this process's long-polls and streams (server/waiting.py, the dashboard's
        stream): these tasks' rows, or only their logs, changed, committed. No id given:
        tasks changed, unknown which. Other servers' changes they find by re-reading."""
        for listener in list(self.log_listeners):
            listener()
        if logs_only:
            return
        changed = frozenset(task_ids)
        for task_listener in list(self.task_listeners):
            task_listener(changed)

    def system_log(self, task_id: str, content: str) -> None:
        """A provisioning line (not from the agent) in the task's logs: no bridge seq."""
        self._insert_logs([(task_id, None, SYSTEM, content, utcnow(), None, None)])

    def logs(self, task_id: str, after: int = 0, limit: int = 10000) -> list[StoredLogEntry]:
        """Log entries with id > after, oldest first, inputs with their delivery state."""
        # zip over plain tuples: a third of the cost of dict(row._mapping) per row
        return [
            cast(StoredLogEntry, dict(zip(LOG_KEYS, row, strict=True)))
            for row in self.log_rows(task_id, after, limit)
        ]

    def log_rows(self, task_id: str, after: int = 0, limit: int = 10000) -> list[tuple[Any, ...]]:
        """`logs` as plain tuples in the order of LOG_KEYS (for the API's JSON)."""
        query = self._logs_query
        if query is None:
            query = self._logs_query = _LogsQuery(self.db)
        return query.run(self.db, task_id, after, limit)

    def log_rows_json(
        self, task_id: str, after: int = 0, limit: int = 10000
    ) -> tuple[str, list[int]] | None:
        """`log_rows` as a JSON array of objects written by SQLite itself, and their ids.

        Python's sqlite3 hands the GIL over around every row it steps through: with the
        follower busy in a flood, a page of 10,000 rows waited on it thousands of times
        (seconds under load); this is one step. None where the database cannot (not
        SQLite, no JSON functions) or where the array is not in id order: read log_rows.
        """
        if self.db.dialect.name != "sqlite" or self._logs_json_unsupported:
            return None
        query = self._logs_json_query
        if query is None:
            query = self._logs_json_query = _LogsQuery(self.db, as_json=True)
        try:
            ((text, ids_text),) = query.run(self.db, task_id, after, limit)
        except sqlite3.OperationalError as exc:
            if "no such function" not in str(exc):
                raise
            self._logs_json_unsupported = True  # an SQLite built without JSON functions
            return None
        ids: list[int] = json.loads(ids_text)
        if any(a >= b for a, b in itertools.pairwise(ids)):
            return None  # SQLite promises no order of an aggregate: never seen, checked
        return str(text), ids

    def tail_start(self, task_id: str, lines: int) -> int:
        """The id after which the task's last `lines` entries come (0: it has no more):
        `log_rows(task_id, tail_start(...), lines)` reads the tail, oldest first."""
        with self.db.connect() as conn:
            value = conn.execute(
                select(logs.c.id)
                .where(logs.c.task_id == task_id)
                .order_by(logs.c.id.desc())
                .limit(1)
                .offset(lines)
            ).scalar()
        return int(value or 0)

    def last_seq(self, task_id: str) -> int:
        """The highest bridge sequence number stored for the task (0 when none)."""
        with self.db.connect() as conn:
            value = conn.execute(
                select(func.max(logs.c.seq)).where(logs.c.task_id == task_id)
            ).scalar()
        return int(value or 0)

    def report_seq(self, task_id: str) -> int:
        """The bridge's sequence number of the newest report applied to the task (0: none)."""
        with self.db.connect() as conn:
            value = conn.execute(select(tasks.c.report_seq).where(tasks.c.id == task_id)).scalar()
        return int(value or 0)

    def set_report_seq(self, task_id: str, seq: int) -> None:
        """Remember that the task's reports up to `seq` are applied. Never moves back,
        except to 0: the bridge lost its reports (its state was wiped) and numbers anew."""
        column = tasks.c.report_seq
        ahead = or_(column.is_(None), column < seq) if seq > 0 else true()
        with self.db.begin() as conn:
            conn.execute(
                update(tasks).where(and_(tasks.c.id == task_id, ahead)).values(report_seq=seq)
            )

    def tail(self, task_id: str, lines: int = 10) -> list[str]:
        """The last output lines (agent or setup), for error messages."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(logs.c.content)
                .where(and_(logs.c.task_id == task_id, logs.c.type == OUTPUT))
                .order_by(logs.c.id.desc())
                .limit(lines)
            )
            return [r[0] for r in rows][::-1]


class PromptsMixin:
    """Prompts sent to a task, kept until the agent has taken them (none is lost)."""

    db: Engine

    def add_prompt(
        self, task_id: str, prompt_id: str, content: str, handed: bool = False
    ) -> dict[str, Any]:
        """Record a prompt as queued; the same id twice is stored once. `handed`: the
        bridge has it already (a task's first prompt travels in the bridge's config)."""
        row = {
            "id": prompt_id,
            "task_id": task_id,
            "content": content,
            "state": QUEUED,
            "handed": int(handed),
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

    def sync_prompts(self, task_id: str, reported: Sequence[PromptRecord]) -> list[tuple[str, str]]:
        """Take the bridge's view of delivery states (it is the one that knows).

        Returns the prompts it says failed, newly: (id, reason) each.
        """
        mine = {p["id"]: p for p in self.prompts(task_id)}
        failed: list[tuple[str, str]] = []
        with self.db.begin() as conn:
            for rp in reported:
                have = mine.get(rp.get("id", ""))
                state = rp.get("state", QUEUED)
                if (
                    have is None
                    or state not in STATE_ORDER
                    or have["state"] in FINISHED
                    or STATE_ORDER[state] <= STATE_ORDER.get(have["state"], 0)
                ):
                    continue
                if state == FAILED:
                    reason = str(rp.get("reason") or "the bridge could not deliver it")
                    if self._fail_prompt(conn, task_id, have["id"], reason, "bridge"):
                        failed.append((have["id"], reason))
                    continue
                if state == TAKEN and rp.get("taken_at"):
                    waited = metrics.seconds_between(have["created_at"], rp.get("taken_at"))
                    if waited is not None:
                        metrics.SEND_TO_TAKEN.observe(waited)
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
        return failed

    def fail_prompt(self, task_id: str, prompt_id: str, reason: str, actor: str) -> bool:
        """Mark a prompt that will never reach the agent failed; False if it had finished."""
        with self.db.begin() as conn:
            return self._fail_prompt(conn, task_id, prompt_id, reason, actor)

    @staticmethod
    def _fail_prompt(
        conn: Connection, task_id: str, prompt_id: str, reason: str, actor: str
    ) -> bool:
        done = conn.execute(
            update(prompts)
            .where(and_(prompts.c.id == prompt_id, prompts.c.state.not_in(FINISHED)))
            .values(state=FAILED, handed=1, reason=reason)
        )
        if not done.rowcount:
            return False
        # the task's history says which prompt failed and why
        conn.execute(
            insert(events).values(
                task_id=task_id,
                kind="prompt",
                from_value=prompt_id[:32],
                to_value=FAILED,
                actor=actor,
                reason=reason,
                time=utcnow(),
            )
        )
        return True
