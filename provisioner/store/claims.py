"""What claims keep beside a task: the registered workers, and the expiry of a claim's
lease (back to pending, its attempt counted), in one transaction with its events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from provisioner.claiming import WAITING_FOR_WORKER, Worker
from provisioner.errors import TaskConflict
from provisioner.lifecycle import EXPIRE, Status
from provisioner.model import Task, utcnow
from provisioner.store.schema import events, workers

# what a claim's end clears (a task back in the pool is nobody's)
NO_CLAIM: dict[str, Any] = {
    "claimed_by": None,
    "session_id": None,
    "worker": None,
    "claim_until": None,
}


def _worker(row: Any) -> Worker:
    return Worker(
        name=row.name,
        owner=row.owner,
        codebases=tuple(row.codebases or ()),
        targets=tuple(row.targets or ()),
        registered_at=row.registered_at,
        last_seen=row.last_seen,
    )


class ClaimsMixin:
    """Workers and claim expiry (mixed into the Store)."""

    db: Engine

    if TYPE_CHECKING:

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
            match: dict[str, Any] | None = None,
        ) -> None: ...

        def _changed(self, *task_ids: str, logs_only: bool = False) -> None: ...

    def expire_claim(self, task: Task, *, actor: str = "engine") -> bool:
        """Put a task whose claim lease ran out back to pending as its next attempt, with
        a `lease` event beside the status event; False when it moved (or was renewed)
        meanwhile: of engines sharing the store, one expires it."""
        reason = (
            f"the lease of session {task.session_id} ({task.claimed_by}) ran out at "
            f"{task.claim_until}; back in the pool as attempt {task.attempt + 1}"
        )
        changes = {
            **NO_CLAIM,
            "attempt": task.attempt + 1,
            "queued_at": utcnow(),
            "message": WAITING_FOR_WORKER,
        }
        match = {"session_id": task.session_id, "claim_until": task.claim_until}
        action = EXPIRE if task.status == Status.ACTIVE else None
        try:
            with self.db.begin() as conn:
                self._move(
                    conn,
                    task.id,
                    task.status,
                    Status.PENDING,
                    actor,
                    reason,
                    changes,
                    action=action,
                    match=match,
                )
                conn.execute(
                    insert(events).values(
                        task_id=task.id,
                        kind="lease",
                        from_value=task.session_id,
                        to_value="expired",
                        actor=actor,
                        reason=reason,
                        time=utcnow(),
                    )
                )
        except TaskConflict:
            return False
        self._changed(task.id)
        return True

    # workers ------------------------------------------------------------------------
    def register_worker(
        self, name: str, owner: str, codebases: tuple[str, ...], targets: tuple[str, ...]
    ) -> Worker:
        """Register `name` for `owner`, or update its routing when `owner` has it; a
        name another user registered is a conflict."""
        now = utcnow()
        values = {"codebases": list(codebases), "targets": list(targets), "last_seen": now}
        with self.db.begin() as conn:
            row = conn.execute(select(workers).where(workers.c.name == name)).first()
            if row is not None and row.owner != owner:
                raise TaskConflict(f"Worker {name!r} is registered by another user")
            if row is not None:
                conn.execute(update(workers).where(workers.c.name == name).values(**values))
        if row is None:
            try:
                with self.db.begin() as conn:
                    conn.execute(
                        insert(workers).values(name=name, owner=owner, registered_at=now, **values)
                    )
            except IntegrityError:  # registered by someone else at the same moment
                return self.register_worker(name, owner, codebases, targets)
        found = self.get_worker(name)
        assert found is not None
        return found

    def get_worker(self, name: str) -> Worker | None:
        with self.db.connect() as conn:
            row = conn.execute(select(workers).where(workers.c.name == name)).first()
        return None if row is None else _worker(row)

    def list_workers(self, owner: str | None = None) -> list[Worker]:
        query = select(workers).order_by(workers.c.name)
        if owner is not None:
            query = query.where(workers.c.owner == owner)
        with self.db.connect() as conn:
            return [_worker(r) for r in conn.execute(query)]

    def worker_seen(self, name: str, owner: str) -> bool:
        """A heartbeat: the worker is alive as of now. False: no such worker of `owner`."""
        with self.db.begin() as conn:
            result = conn.execute(
                update(workers)
                .where(workers.c.name == name, workers.c.owner == owner)
                .values(last_seen=utcnow())
            )
        return result.rowcount == 1
