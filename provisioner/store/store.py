"""The store: tasks, events and logs with compare-and-set status changes."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    make_url,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import ConnectionPoolEntry

from provisioner import metrics
from provisioner.capacity import (
    COUNTED,
    Slot,
    Usage,
    count_usage,
    may_start,
    pool_members_to_evict,
)
from provisioner.errors import DockyardError, TaskConflict, TaskNotFound
from provisioner.lifecycle import (
    TERMINAL,
    State,
    Status,
    advance_phases,
    check_transition,
    phase_applies,
    state_applies,
)
from provisioner.model import Task, parse_time, utcnow
from provisioner.store import commit_order, eventlog
from provisioner.store.a2a import A2AMixin
from provisioner.store.accounts import AccountsMixin
from provisioner.store.claims import ClaimsMixin
from provisioner.store.gauges import GaugesMixin
from provisioner.store.records import LogsMixin, PromptsMixin, insert_ignoring_duplicates
from provisioner.store.schedules import SchedulesMixin
from provisioner.store.schema import events, locks, logs, metadata, prompts, tasks
from provisioner.store.settings import SettingsMixin
from provisioner.store.triggers import TriggersMixin
from provisioner.store.webhooks import WebhooksMixin

_TASK_FIELDS = [f.name for f in fields(Task)]


# The connection pool of a server database (PostgreSQL): every followed task has a
# follower thread that stores its lines, the API answers in up to 40 threads and the
# engine's provisioning pool runs 4, each holding a connection only while it reads or
# writes. SQLAlchemy's default (5, and 10 more under load) made followers of 50 busy tasks
# wait for one another; a waiter gives up after pool_timeout seconds. Changed in
# config.yaml `database:` (see docs/operating.md); PostgreSQL's own max_connections (100
# by default) must cover pool_size + max_overflow for every server sharing it.
DEFAULT_POOL: dict[str, int] = {"pool_size": 10, "max_overflow": 40, "pool_timeout": 30}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _create_private(database: str | None) -> None:
    """Create a new SQLite file readable by its owner only (its -wal and -shm follow)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL lets readers (API) and the writer (engine) proceed together. Switching a new
    # file to WAL while another process does too can fail at once with "locked" (SQLite
    # does not always wait on its busy handler there): try again shortly.
    for attempt in range(50):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.02)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@functools.cache
def _nul_free_text() -> type:
    """psycopg's text adapter, but a NUL (which PostgreSQL text cannot hold) becomes U+FFFD."""
    from psycopg.types.string import StrDumperUnknown

    class NulFreeText(StrDumperUnknown):
        def dump(self, obj: str) -> Any:
            return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)

    return NulFreeText


def _postgres_text(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # A binary file printed by a setup script or an agent's tool would otherwise fail the
    # whole batch of log lines it is in, and the task's log follower with it. SQLite keeps
    # NULs as they are.
    dbapi_conn.adapters.register_dumper(str, _nul_free_text())


class Store(
    LogsMixin,
    PromptsMixin,
    AccountsMixin,
    A2AMixin,
    SettingsMixin,
    WebhooksMixin,
    ClaimsMixin,
    GaugesMixin,
    SchedulesMixin,
    TriggersMixin,
):
    """All reads and writes of task data go through here."""

    def __init__(self, url: str, pool: Mapping[str, int] | None = None) -> None:
        self.url = url
        shown = make_url(url).render_as_string(hide_password=True)
        try:
            self._open(url, {**DEFAULT_POOL, **(pool or {})})
        except ImportError as exc:
            raise DockyardError(
                f"The database driver for {shown} is not installed ({exc.name or exc})",
                hint="for PostgreSQL: pip install 'dockyard[postgres]'",
            ) from exc
        except OperationalError as exc:
            raise DockyardError(
                f"Cannot open the database at {shown}: {str(exc.orig).strip()}",
                hint="check DOCKYARD_DATABASE_URL and that the database server is running",
            ) from exc
        self.log_listeners = set()
        self.task_listeners = set()
        self._touched = {}
        self._audit_writes = 0

    def _open(self, url: str, pool: Mapping[str, int]) -> None:
        if url.startswith("sqlite"):
            _create_private(make_url(url).database)
            self.db: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.db, "connect", _sqlite_pragmas)
        else:
            # Compare-and-set and the capacity lock rely on READ COMMITTED: a statement
            # that waited for another transaction's row lock re-reads the row it then
            # changes (or skips), where a stricter level set as the database's default
            # would fail it with a serialization error instead.
            self.db = create_engine(
                url, pool_pre_ping=True, isolation_level="READ COMMITTED", **pool
            )
            if self.db.dialect.driver == "psycopg":
                event.listen(self.db, "connect", _postgres_text)
        eventlog.install(self.db)
        self._create_tables()
        self._check_schema()
        commit_order.prepare(self.db)
        with self.db.begin() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, locks), [{"name": "capacity"}])

    def _create_tables(self) -> None:
        """Create the tables a new database lacks, even while another process does too."""
        for attempt in range(5):
            try:
                metadata.create_all(self.db)
                return
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                # Two servers opening a new database at once both find a table missing and
                # one CREATE fails ("already exists"; on PostgreSQL a unique violation in
                # its catalog): look again, the table is there now. Anything else (the
                # database is unreachable) is said at once.
                lost_race = isinstance(exc, IntegrityError) or "already exists" in str(exc)
                if attempt == 4 or not lost_race:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _check_schema(self) -> None:
        """Bring an older database up to date: columns added since are added in place."""
        for table in metadata.sorted_tables:
            have = {c["name"] for c in inspect(self.db).get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    self._add_column(table.name, column)
            if table.name == "tasks" and have and "title" not in have:
                # Before the queue every task had priority 0 (unused); its default is
                # the middle now, so old tasks keep their place among new ones.
                with self.db.begin() as conn:
                    conn.execute(update(tasks).where(tasks.c.priority == 0).values(priority=50))

    def _add_column(self, table: str, column: Any) -> None:
        if not column.nullable and column.server_default is None:
            raise DockyardError(
                f"The database at {self.url} is from an older Dockyard and lacks "
                f"{table}.{column.name}, which cannot be filled in",
                hint="move the file aside to start afresh (its tasks will not be shown)",
            )
        kind = column.type.compile(dialect=self.db.dialect)
        ddl = f"ALTER TABLE {table} ADD COLUMN {column.name} {kind}"
        if column.server_default is not None:
            ddl += f" DEFAULT '{column.server_default.arg}'"
            if not column.nullable:
                ddl += " NOT NULL"
        try:
            with self.db.begin() as conn:
                conn.execute(text(ddl))
        except (OperationalError, ProgrammingError):
            # another process sharing the database may have added it first
            if column.name not in {c["name"] for c in inspect(self.db).get_columns(table)}:
                raise

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.db.dispose()

    # tasks ----------------------------------------------------------------
    @staticmethod
    def _row_to_task(row: Any) -> Task:
        # zip over the row as a tuple: a third of the cost of getattr per column, which
        # was most of listing 500 tasks (the dashboard's stream lists them every 2 s)
        columns = dict(zip(row._fields, row, strict=True))
        data = {name: columns[name] for name in _TASK_FIELDS}
        data["status"] = Status(data["status"])
        return Task(**data)

    def create_task(self, task: Task, actor: str) -> Task:
        """Insert a new task and its first event; a taken name is a conflict."""
        values = {name: getattr(task, name) for name in _TASK_FIELDS}
        values["status"] = task.status.value
        try:
            with self.db.begin() as conn:
                conn.execute(insert(tasks).values(**values))
                conn.execute(
                    insert(events).values(
                        task_id=task.id,
                        kind="status",
                        from_value=None,
                        to_value=task.status.value,
                        actor=actor,
                        reason="created",
                        time=task.created_at,
                    )
                )
        except IntegrityError as exc:
            raise TaskConflict(
                f"A task named {task.name!r} already exists",
                hint="choose another --name or delete the old task",
            ) from exc
        self._changed(task.id)  # a new task shows on the board at once
        return task

    def get(self, ref: str, owner: str | None = None) -> Task:
        """A task by id, name or id prefix (8+ chars); with `owner`, only that owner's.

        Without an owner a name two owners use is ambiguous and refused: say the id.
        """
        mine = tasks.c.owner == owner if owner is not None else true()
        with self.db.connect() as conn:
            row = conn.execute(select(tasks).where(and_(tasks.c.id == ref, mine))).first()
            if row is None:
                named = conn.execute(
                    select(tasks).where(and_(tasks.c.name == ref, mine)).limit(2)
                ).all()
                if len(named) > 1:
                    raise TaskConflict(
                        f"Several users have a task named {ref!r}", hint="use the task's id"
                    )
                row = named[0] if named else None
            if row is None and len(ref) >= 8:
                # autoescape: `_` and `%` in a ref are characters, not LIKE wildcards
                query = select(tasks).where(and_(tasks.c.id.startswith(ref, autoescape=True), mine))
                rows = conn.execute(query.limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise TaskNotFound(f"No task {ref[:80]!r}", hint="list tasks with: dockyard task list")
        return self._row_to_task(row)

    def list_tasks(
        self,
        statuses: Iterable[Status] | None = None,
        kind: str | None = "task",
        owner: str | None = None,
        *,
        tag: str | None = None,
        target: str | None = None,
        epic: str | None = None,
    ) -> list[Task]:
        """Tasks, newest first; by default real tasks only (kind None: warm members too);
        with `owner`, only that owner's; with `tag`, `target` or `epic`, only those."""
        query = select(tasks).order_by(tasks.c.created_at.desc())
        if statuses is not None:
            query = query.where(tasks.c.status.in_([s.value for s in statuses]))
        if kind is not None:
            query = query.where(tasks.c.kind == kind)
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        if target is not None:
            query = query.where(tasks.c.target == target)
        if epic is not None:
            query = query.where(tasks.c.epic == epic)
        with self.db.connect() as conn:
            found = [self._row_to_task(r) for r in conn.execute(query)]
        # tags are a JSON list: matched here, the same on SQLite and PostgreSQL
        return [t for t in found if tag is None or tag in t.tags]

    def tasks_by_ids(self, ids: Iterable[str]) -> dict[str, Task]:
        """The tasks of these ids that exist, by id."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self.db.connect() as conn:
            rows = conn.execute(select(tasks).where(tasks.c.id.in_(wanted)))
            return {r.id: self._row_to_task(r) for r in rows}

    def name_taken(self, owner: str, name: str) -> bool:
        """True when the owner already has a task of that name."""
        with self.db.connect() as conn:
            query = select(func.count()).where(and_(tasks.c.owner == owner, tasks.c.name == name))
            return bool(conn.execute(query).scalar())

    def transition(
        self,
        task_id: str,
        expected: Status,
        target: Status,
        *,
        actor: str,
        reason: str = "",
        action: str | None = None,
        match: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Task:
        """Move a task from `expected` to `target`, atomically, or raise TaskConflict
        (with `match`, only while those columns hold those values too)."""
        check_transition(expected, target, action=action)
        with self.db.begin() as conn:
            self._move(
                conn, task_id, expected, target, actor, reason, changes, action=action, match=match
            )
        self._changed(task_id)
        return self.get(task_id)

    def requeue(
        self, task_id: str, expected: Status, attempt: int, *, actor: str, reason: str
    ) -> Task:
        """Queue a failed or errored task again as attempt `attempt` (a retry): pending,
        waiting from now, its outcome and error cleared, with a `retry` event beside the
        status event, in one transaction (TaskConflict if it moved meanwhile)."""
        changes = {
            "attempt": attempt,
            # a queue-only task goes back to the pool: nobody's claim any more
            "claimed_by": None,
            "session_id": None,
            "worker": None,
            "claim_until": None,
            "queued_at": utcnow(),
            "message": reason,
            "outcome": None,
            "error_code": None,
            "error_class": None,
            "finished_at": None,
        }
        with self.db.begin() as conn:
            self._move(
                conn, task_id, expected, Status.PENDING, actor, reason, changes, action="retry"
            )
            conn.execute(
                insert(events).values(
                    task_id=task_id,
                    kind="retry",
                    from_value=str(attempt - 1),
                    to_value=str(attempt),
                    actor=actor,
                    reason=reason,
                    time=utcnow(),
                )
            )
        self._changed(task_id)
        return self.get(task_id)

    def admit(
        self,
        task_id: str,
        expected: Status,
        limit: int | None,
        *,
        kind: str = "task",
        actor: str,
        reason: str = "",
        action: str | None = None,
        target_limits: Mapping[str, int] | None = None,
        **changes: Any,
    ) -> tuple[Task | None, Usage]:
        """Move a task to initializing if a workspace slot is free for it, and a place
        under its target's `max_concurrent` (see capacity.plan).

        Counting and moving happen in one transaction that first takes the capacity lock,
        so engines sharing the database never both take the last slot (nor a target's
        last place). Returns the moved task (None when it must wait) and the usage the
        decision was made on.
        """
        check_transition(expected, Status.INITIALIZING, action=action)
        with self.db.begin() as conn:
            current = self._locked_usage(conn, limit, target_limits)
            # read inside the lock: a resume is not queued, its route still counts
            candidate = next(iter(self._slots(conn, task_id=task_id)), None)
            if candidate is None:
                raise TaskNotFound(f"No task {task_id!r} (it was deleted)")
            if not may_start(current, task_id, kind, candidate=candidate):
                return None, current
            self._move(conn, task_id, expected, Status.INITIALIZING, actor, reason, changes)
        self._changed(task_id)
        return self.get(task_id), current

    def usage(self, limit: int | None, target_limits: Mapping[str, int] | None = None) -> Usage:
        """How many workspaces are live and who waits, as of now (no lock taken)."""
        with self.db.connect() as conn:
            return count_usage(limit, self._slots(conn), target_limits)

    def evict_pool_members(
        self,
        limit: int | None,
        target_limits: Mapping[str, int] | None = None,
        actor: str = "capacity",
    ) -> list[str]:
        """Cancel warm-pool members whose slots waiting user tasks need; their ids.

        A member claimed by a task meanwhile is no longer of kind pool and is left alone.
        The caller removes the cancelled members' workspaces and rows.
        """
        if limit is None:
            return []
        with self.db.begin() as conn:
            current = self._locked_usage(conn, limit, target_limits)
            if current.waiting == 0:
                return []
            chosen = pool_members_to_evict(current, self._slots(conn, kind="pool"))
            evicted = []
            for member_id in chosen:
                status = conn.execute(
                    select(tasks.c.status).where(
                        and_(tasks.c.id == member_id, tasks.c.kind == "pool")
                    )
                ).scalar()
                if status is None:
                    continue
                try:
                    self._move(
                        conn,
                        member_id,
                        Status(status),
                        Status.CANCELLED,
                        actor,
                        "its slot went to a waiting task",
                        {"message": "stopped: its slot went to a waiting task"},
                        kind="pool",
                    )
                except (TaskConflict, TaskNotFound):
                    continue  # claimed or moved meanwhile (the failed update wrote nothing)
                evicted.append(member_id)
        if evicted:
            self._changed(*evicted)
        return evicted

    def _locked_usage(
        self, conn: Any, limit: int | None, target_limits: Mapping[str, int] | None = None
    ) -> Usage:
        # The first statement: from here on no other admission runs until we commit.
        conn.execute(
            update(locks).where(locks.c.name == "capacity").values(taken=locks.c.taken + 1)
        )
        return count_usage(limit, self._slots(conn), target_limits)

    @staticmethod
    def _slots(conn: Any, kind: str | None = None, task_id: str | None = None) -> list[Slot]:
        """Live and pending tasks as capacity sees them; with `task_id`, that one task
        whatever its status (a resume's route)."""
        query = select(
            tasks.c.id,
            tasks.c.kind,
            tasks.c.status,
            tasks.c.priority,
            tasks.c.queued_at,
            tasks.c.created_at,
            tasks.c.state,
            tasks.c.target,
            tasks.c.action,
            tasks.c.codebase,
            tasks.c.state_changed_at,
        )
        if task_id is not None:
            query = query.where(tasks.c.id == task_id)
        else:
            query = query.where(
                tasks.c.status.in_([s.value for s in COUNTED]),
                # a task waiting for its dependencies is not in line for a slot
                tasks.c.blocked.is_(False),
                # nor one a worker claims: it never takes a workspace
                tasks.c.queue_only.is_(False),
            )
        if kind is not None:
            query = query.where(tasks.c.kind == kind)
        return [
            Slot(
                id=r.id,
                kind=r.kind,
                status=Status(r.status),
                priority=int(r.priority if r.priority is not None else 50),
                waiting_since=r.queued_at or r.created_at,
                state=r.state,
                target=r.target,
                action=r.action or "queue",
                codebase=r.codebase,
                state_since=r.state_changed_at,
            )
            for r in conn.execute(query)
        ]

    def _move(
        self,
        conn: Any,
        task_id: str,
        expected: Status,
        target: Status,
        actor: str,
        reason: str,
        changes: dict[str, Any],
        kind: str | None = None,
        action: str | None = None,
        match: Mapping[str, Any] | None = None,
    ) -> None:
        """The compare-and-set of a status change and its events, inside `conn`'s
        transaction; `kind` also guards the row's kind, `match` other columns."""
        check_transition(expected, target, action=action)
        now = utcnow()
        values: dict[str, Any] = {"status": target.value, "updated_at": now, **changes}
        if target != Status.ERROR:
            values.setdefault("retry_at", None)  # only a task in error waits for a retry
        if target in TERMINAL:
            values.setdefault("finished_at", now)
            values["question"] = None  # nobody is asked anything any more
        if not state_applies(target):
            values["state"] = None
        if "state" in changes or not state_applies(target):
            values["state_changed_at"] = now
        if not phase_applies(target):
            # An error keeps the phase it failed in, when the caller names it.
            values["phase"] = changes.get("phase") if target == Status.ERROR else None
            values["lease_owner"] = None
            values["lease_until"] = None
        # A new start keeps only its own phases; leaving initializing closes the last.
        if target == Status.INITIALIZING:
            values["phases"] = advance_phases([], changes.get("phase"), parse_time(now))
        elif expected == Status.INITIALIZING:
            old = conn.execute(select(tasks.c.phases).where(tasks.c.id == task_id)).scalar()
            values["phases"] = advance_phases(list(old or []), None, parse_time(now))
            closed_before = metrics.closed_count(old)
        guard = and_(tasks.c.id == task_id, tasks.c.status == expected.value)
        if kind is not None:
            guard = and_(guard, tasks.c.kind == kind)
        for column, value in (match or {}).items():
            guard = and_(guard, tasks.c[column] == value)
        result = conn.execute(update(tasks).where(guard).values(**values))
        if result.rowcount == 1 and target in TERMINAL:
            self.revoke_task_tokens(conn, task_id)
        if result.rowcount != 1:
            current = conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar()
            if current is None:
                raise TaskNotFound(f"No task {task_id!r} (it was deleted)")
            metrics.CLAIM_CONFLICTS.inc()
            if current == expected.value and match:
                raise TaskConflict(f"Task changed meanwhile: its {', '.join(match)} changed")
            raise TaskConflict(f"Task changed meanwhile: it is {current}, not {expected.value}")
        if expected == Status.INITIALIZING and target != Status.INITIALIZING:
            metrics.observe_phases(values["phases"], closed_before)
        conn.execute(
            insert(events).values(
                task_id=task_id,
                kind="status",
                from_value=expected.value,
                to_value=target.value,
                actor=actor,
                reason=reason,
                time=now,
            )
        )
        if changes.get("phase"):
            conn.execute(
                insert(events).values(
                    task_id=task_id,
                    kind="phase",
                    from_value=None,
                    to_value=changes["phase"],
                    actor=actor,
                    reason="",
                    time=now,
                )
            )

    def update(
        self, task_id: str, expected: Status, *, actor: str, reason: str = "", **changes: Any
    ) -> bool:
        """Change fields (state, phase, message...) only while the task is `expected`.

        State and phase changes are recorded in the history; returns False when the task
        moved on meanwhile (the caller's view is stale and it should re-read).
        """
        now = utcnow()
        with self.db.begin() as conn:
            current = conn.execute(
                select(tasks.c.state, tasks.c.phase, tasks.c.phases, tasks.c.created_at).where(
                    and_(tasks.c.id == task_id, tasks.c.status == expected.value)
                )
            ).first()
            if current is None:
                return False
            first_idle = (
                changes.get("state") == State.IDLE
                and current.state != State.IDLE
                and not self._was_idle(conn, task_id)
            )
            if changes.get("phase") and changes["phase"] != current.phase:
                changes["phases"] = advance_phases(
                    list(current.phases or []), changes["phase"], parse_time(now)
                )
            if "state" in changes and changes["state"] != current.state:
                changes["state_changed_at"] = now  # the idle clock restarts on every change
            result = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.status == expected.value))
                .values(updated_at=now, **changes)
            )
            if result.rowcount != 1:
                return False
            if "phases" in changes:
                metrics.observe_phases(changes["phases"], metrics.closed_count(current.phases))
            if first_idle:
                waited = metrics.seconds_between(current.created_at, now)
                if waited is not None:
                    metrics.CREATE_TO_IDLE.observe(waited)
            for kind in ("state", "phase"):
                old = getattr(current, kind)
                if kind in changes and changes[kind] != old:
                    conn.execute(
                        insert(events).values(
                            task_id=task_id,
                            kind=kind,
                            from_value=old,
                            to_value=changes[kind],
                            actor=actor,
                            reason=reason,
                            time=now,
                        )
                    )
        self._changed(task_id)
        return True

    @staticmethod
    def _was_idle(conn: Any, task_id: str) -> bool:
        """Whether the task's agent has been idle before (its create-to-idle is measured)."""
        found = conn.execute(
            select(events.c.id)
            .where(
                and_(
                    events.c.task_id == task_id,
                    events.c.kind == "state",
                    events.c.to_value == State.IDLE.value,
                )
            )
            .limit(1)
        ).first()
        return found is not None

    def record(
        self,
        task_id: str,
        kind: str,
        *,
        actor: str,
        reason: str = "",
        from_value: str | None = None,
        to_value: str | None = None,
        ref: str | None = None,
        live: bool = False,
        expected: Status | None = None,
        unchanged: dict[str, Any] | None = None,
        **changes: Any,
    ) -> bool:
        """Change fields and add one event of `kind` (priority, progress, usage...) in one
        transaction. With `ref`, at most once: False if an event with that ref exists.
        With `live`, only while the task has not ended; with `expected`, only while it
        has that status; with `unchanged`, only while those columns hold those values
        (a compare-and-set: of engines sharing the store, one records it). False
        otherwise."""
        now = utcnow()
        if "state" in changes:
            changes.setdefault("state_changed_at", now)
        with self.db.begin() as conn:
            if ref is not None and self._has_ref(conn, task_id, ref):
                return False
            guard = tasks.c.id == task_id
            if live:
                guard = and_(guard, tasks.c.status.not_in([s.value for s in TERMINAL]))
            if expected is not None:
                guard = and_(guard, tasks.c.status == expected.value)
            for column, value in (unchanged or {}).items():
                guard = and_(guard, tasks.c[column] == value)
            result = conn.execute(update(tasks).where(guard).values(updated_at=now, **changes))
            if result.rowcount != 1:
                return False
            conn.execute(
                insert(events).values(
                    task_id=task_id,
                    kind=kind,
                    from_value=from_value,
                    to_value=to_value,
                    actor=actor,
                    reason=reason,
                    time=now,
                    ref=ref,
                )
            )
        self._changed(task_id)
        return True

    def add_cost(
        self,
        task_id: str,
        *,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
        model: str | None,
        actor: str,
        reason: str = "",
        ref: str | None = None,
    ) -> bool:
        """Add a turn's tokens and cost to the task's totals (sums, so reports from two
        places never overwrite each other), with a `usage` event; at most once per ref."""
        changes: dict[str, Any] = {
            "tokens_in": tasks.c.tokens_in + tokens_in,
            "tokens_out": tasks.c.tokens_out + tokens_out,
            "cost_usd": tasks.c.cost_usd + cost_usd,
        }
        if model:
            changes["model"] = model
        shown = f"{tokens_in} in, {tokens_out} out, ${cost_usd:.4f}"
        if model:
            shown += f" ({model})"
        return self.record(
            task_id,
            "usage",
            actor=actor,
            reason=reason or shown,
            to_value=f"{tokens_in + tokens_out}",
            ref=ref,
            **changes,
        )

    def cost_rows(self, owner: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """Each task's cost columns (and what a total groups by): only `owner`'s with
        one, only those created at or after `since` (a utcnow() stamp) with it."""
        query = select(
            tasks.c.template,
            tasks.c.owner,
            tasks.c.model,
            tasks.c.target,
            tasks.c.created_at,
            tasks.c.tokens_in,
            tasks.c.tokens_out,
            tasks.c.cost_usd,
        ).where(tasks.c.kind == "task")
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        if since is not None:
            query = query.where(tasks.c.created_at >= since)
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    @staticmethod
    def _has_ref(conn: Any, task_id: str, ref: str) -> bool:
        query = select(events.c.id).where(and_(events.c.task_id == task_id, events.c.ref == ref))
        return conn.execute(query.limit(1)).first() is not None

    def has_ref(self, task_id: str, ref: str) -> bool:
        """True once an event answering `ref` (a report's id) is recorded."""
        with self.db.connect() as conn:
            return self._has_ref(conn, task_id, ref)

    def delete(self, task_id: str) -> bool:
        """Remove a task with its history and logs; False when it was already gone."""
        with self.db.begin() as conn:
            self.revoke_task_tokens(conn, task_id)
            conn.execute(delete(prompts).where(prompts.c.task_id == task_id))
            conn.execute(delete(logs).where(logs.c.task_id == task_id))
            conn.execute(delete(events).where(events.c.task_id == task_id))
            gone = bool(conn.execute(delete(tasks).where(tasks.c.id == task_id)).rowcount)
        self._changed(task_id)  # the board drops it at once
        return gone

    # events ---------------------------------------------------------------
    def events(self, task_id: str) -> list[dict[str, Any]]:
        """The task's history, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.task_id == task_id).order_by(events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def events_page(
        self,
        after: int = 0,
        limit: int = 500,
        *,
        task_id: str | None = None,
        actor: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Events of every task after id `after`, oldest first, with the task's name;
        only `task_id`'s, `actor`'s or `owner`'s tasks' when given."""
        query = (
            select(events, tasks.c.name.label("task_name"), tasks.c.owner.label("task_owner"))
            .join(tasks, tasks.c.id == events.c.task_id)
            .where(events.c.id > after)
            .order_by(events.c.id)
            .limit(limit)
        )
        if task_id is not None:
            query = query.where(events.c.task_id == task_id)
        if actor is not None:
            query = query.where(events.c.actor == actor)
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def claim_pool_member(self, member_id: str, changes: dict[str, Any], actor: str) -> bool:
        """Turn an idle warm workspace into a task, atomically; False if someone was first."""
        now = utcnow()
        with self.db.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    and_(
                        tasks.c.id == member_id,
                        tasks.c.kind == "pool",
                        tasks.c.status == Status.ACTIVE.value,
                    )
                )
                .values(kind="task", updated_at=now, **changes)
            )
            if result.rowcount != 1:
                return False
            conn.execute(
                insert(events).values(
                    task_id=member_id,
                    kind="status",
                    from_value="pool",
                    to_value="active",
                    actor=actor,
                    reason="claimed a warm workspace",
                    time=now,
                )
            )
        self._changed(member_id)
        return True

    # leases -----------------------------------------------------------------
    def acquire_lease(
        self, task_id: str, worker: str, ttl: float, steal_from: str | None = None
    ) -> bool:
        """Take (or renew) the right to provision an initializing task; False if held."""
        now = time.time()
        free = or_(
            tasks.c.lease_owner.is_(None),
            tasks.c.lease_owner == worker,
            tasks.c.lease_until < now,
        )
        if steal_from:
            free = or_(free, tasks.c.lease_owner == steal_from)
        with self.db.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    and_(
                        tasks.c.id == task_id,
                        tasks.c.status == Status.INITIALIZING.value,
                        free,
                    )
                )
                .values(lease_owner=worker, lease_until=now + ttl)
            )
            return result.rowcount == 1

    def renew_leases(self, worker: str, ttl: float) -> None:
        """Extend every lease this worker holds (its heartbeat)."""
        with self.db.begin() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.lease_owner == worker)
                .values(lease_until=time.time() + ttl)
            )
