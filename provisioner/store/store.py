"""The store: tasks, events and logs with compare-and-set status changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry

from provisioner.errors import TaskConflict, TaskNotFound
from provisioner.lifecycle import Status, check_transition, phase_applies, state_applies
from provisioner.model import Task, utcnow
from provisioner.store.schema import events, logs, metadata, tasks

_TASK_FIELDS = [f.name for f in fields(Task)]


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (API) and the writer (engine) proceed together.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Store:
    """All reads and writes of task data go through here."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.db: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.db, "connect", _sqlite_pragmas)
        else:
            self.db = create_engine(url, pool_pre_ping=True)
        metadata.create_all(self.db)

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.db.dispose()

    # tasks ----------------------------------------------------------------
    @staticmethod
    def _row_to_task(row: Any) -> Task:
        data = {name: getattr(row, name) for name in _TASK_FIELDS}
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
        return task

    def get(self, ref: str) -> Task:
        """A task by id, id prefix (8+ chars) or name."""
        with self.db.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.id == ref)).first()
            if row is None:
                row = conn.execute(select(tasks).where(tasks.c.name == ref)).first()
            if row is None and len(ref) >= 8:
                rows = conn.execute(select(tasks).where(tasks.c.id.startswith(ref))).all()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise TaskNotFound(f"No task {ref!r}", hint="list tasks with: dockyard task list")
        return self._row_to_task(row)

    def list_tasks(self, statuses: Iterable[Status] | None = None) -> list[Task]:
        """Tasks, newest first, optionally only those in the given statuses."""
        query = select(tasks).order_by(tasks.c.created_at.desc())
        if statuses is not None:
            query = query.where(tasks.c.status.in_([s.value for s in statuses]))
        with self.db.connect() as conn:
            return [self._row_to_task(r) for r in conn.execute(query)]

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
        **changes: Any,
    ) -> Task:
        """Move a task from `expected` to `target`, atomically, or raise TaskConflict."""
        check_transition(expected, target, action=action)
        now = utcnow()
        values: dict[str, Any] = {"status": target.value, "updated_at": now, **changes}
        if not state_applies(target):
            values["state"] = None
        if not phase_applies(target):
            values["phase"] = None
        with self.db.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.status == expected.value))
                .values(**values)
            )
            if result.rowcount != 1:
                current = conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar()
                if current is None:
                    raise TaskNotFound(f"No task {task_id!r} (it was deleted)")
                raise TaskConflict(f"Task changed meanwhile: it is {current}, not {expected.value}")
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
        return self.get(task_id)

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
                select(tasks.c.state, tasks.c.phase).where(
                    and_(tasks.c.id == task_id, tasks.c.status == expected.value)
                )
            ).first()
            if current is None:
                return False
            result = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.status == expected.value))
                .values(updated_at=now, **changes)
            )
            if result.rowcount != 1:
                return False
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
        return True

    def delete(self, task_id: str) -> None:
        """Remove a task with its history and logs."""
        with self.db.begin() as conn:
            conn.execute(delete(logs).where(logs.c.task_id == task_id))
            conn.execute(delete(events).where(events.c.task_id == task_id))
            conn.execute(delete(tasks).where(tasks.c.id == task_id))

    # events ---------------------------------------------------------------
    def events(self, task_id: str) -> list[dict[str, Any]]:
        """The task's history, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.task_id == task_id).order_by(events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    # logs -----------------------------------------------------------------
    def append_logs(self, task_id: str, entries: list[dict[str, Any]]) -> int:
        """Store transcript entries; ones whose seq is already stored are skipped."""
        if not entries:
            return 0
        stored = 0
        with self.db.begin() as conn:
            have = {
                r[0]
                for r in conn.execute(
                    select(logs.c.seq).where(
                        and_(
                            logs.c.task_id == task_id,
                            logs.c.seq.in_([e["seq"] for e in entries if e.get("seq") is not None]),
                        )
                    )
                )
            }
            rows = [
                {
                    "task_id": task_id,
                    "seq": e.get("seq"),
                    "type": e["type"],
                    "content": e["content"],
                    "time": e.get("time") or utcnow(),
                    "prompt_id": e.get("prompt_id"),
                }
                for e in entries
                if e.get("seq") is None or e["seq"] not in have
            ]
            if rows:
                conn.execute(insert(logs), rows)
                stored = len(rows)
        return stored

    def system_log(self, task_id: str, content: str) -> None:
        """A provisioning line (not from the agent) in the task's logs."""
        self.append_logs(task_id, [{"seq": None, "type": "system", "content": content}])

    def logs(self, task_id: str, after: int = 0, limit: int = 10000) -> list[dict[str, Any]]:
        """Log entries with id > after, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    logs.c.id,
                    logs.c.seq,
                    logs.c.type,
                    logs.c.content,
                    logs.c.time,
                    logs.c.prompt_id,
                )
                .where(and_(logs.c.task_id == task_id, logs.c.id > after))
                .order_by(logs.c.id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    def last_seq(self, task_id: str) -> int:
        """The highest bridge sequence number stored for the task (0 when none)."""
        with self.db.connect() as conn:
            value = conn.execute(
                select(func.max(logs.c.seq)).where(logs.c.task_id == task_id)
            ).scalar()
        return int(value or 0)

    def tail(self, task_id: str, lines: int = 10) -> list[str]:
        """The last agent output lines, for error messages."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(logs.c.content)
                .where(and_(logs.c.task_id == task_id, or_(logs.c.type == "output")))
                .order_by(logs.c.id.desc())
                .limit(lines)
            )
            return [r[0] for r in rows][::-1]
