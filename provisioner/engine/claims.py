"""Claims of queue-only tasks by workers, and the workers themselves (a mixin of the
Engine, called by the REST API, the MCP tools and the CLI). The decisions are the pure
ones of provisioner.claiming; the store makes each claim a compare-and-set, so of N
concurrent claimers exactly one wins and the others learn who holds it.

Who may claim: as in CacheBash, any authenticated caller may claim a queue-only task
(by id, or by name when that name is unique) without registering. Its owner (and an
admin) sees it as always; the claimer acts on it (start, renew, complete) while it holds
the claim. A task that is not queue-only stays private to its owner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from provisioner.claiming import (
    DEFAULT_WORKER_TTL_S,
    HELD,
    Worker,
    candidates,
    check_registration,
    check_session,
    expired,
    held_message,
    lease_end,
    not_claimable,
    parse_lease,
)
from provisioner.dependencies import Dependency, Verdict, decide
from provisioner.errors import Forbidden, TaskConflict, TaskNotFound
from provisioner.lifecycle import State, Status
from provisioner.model import Task
from provisioner.routing import Target
from provisioner.store.store import Store

log = logging.getLogger(__name__)


class TaskClaims:
    """claim, renew, start and expire claims; register and route workers (mixed into the
    Engine)."""

    store: Store
    worker_ttl_s: float = DEFAULT_WORKER_TTL_S

    if TYPE_CHECKING:

        @property
        def workers_targets(self) -> dict[str, Target]: ...

    # finding the task ------------------------------------------------------------------
    def claimable(self, ref: str, user: str, *, admin: bool = False) -> Task:
        """The task `ref` as `user` may act on it for a claim: their own (any, for an
        admin), or anyone's queue-only task. Another user's workspace task is a 404."""
        try:
            return self.store.get(ref, None if admin else user)
        except TaskNotFound:
            task = self.store.get(ref)
            if not task.queue_only:
                raise
            return task

    def held_by(self, ref: str, user: str, session_id: str, *, admin: bool = False) -> Task:
        """The task `ref` whose claim `user` holds under `session_id` (TaskConflict when
        another session holds it, or nobody does)."""
        task = self.claimable(ref, user, admin=admin)
        if task.status not in HELD or not task.queue_only:
            raise TaskConflict(f"task {task.name} is {task.status.value}: nobody holds a claim")
        if task.session_id != session_id:
            raise TaskConflict(held_message(task), hint="renew or start only your own claim")
        if task.claimed_by != user and not admin:
            raise Forbidden(f"task {task.name} is claimed by another user's session")
        return task

    # claims ------------------------------------------------------------------------
    def claim(
        self,
        ref: str,
        *,
        user: str,
        session_id: object,
        lease_s: object = None,
        admin: bool = False,
        worker: str | None = None,
    ) -> Task:
        """Claim the queue-only task `ref` for `user`'s session: pending -> claimed under
        a lease. TaskConflict saying who holds it, or what it waits for."""
        session = check_session(session_id)
        lease = parse_lease(lease_s)
        task = self.claimable(ref, user, admin=admin)
        return self._claim(task, user, session, lease, worker)

    def _claim(self, task: Task, user: str, session: str, lease: float, worker: str | None) -> Task:
        why = not_claimable(task)
        if why is not None:
            raise TaskConflict(why)
        waits = self._waits_for(task)
        if waits is not None:
            raise TaskConflict(f"task {task.name} cannot be claimed: {waits}")
        until = lease_end(datetime.now(UTC), lease)
        who = f"session {session}" + (f" (worker {worker})" if worker else "")
        try:
            done = self.store.transition(
                task.id,
                Status.PENDING,
                Status.CLAIMED,
                actor=f"user:{user}",
                reason=f"claimed by {who}, lease until {until}",
                claimed_by=user,
                session_id=session,
                worker=worker,
                claim_until=until,
                blocked=False,
                message=f"claimed by {who}",
            )
        except TaskConflict:
            now = self.store.get(task.id)  # someone else won: say who
            raise TaskConflict(not_claimable(now) or held_message(now)) from None
        log.info("task %s claimed by %s (%s)", task.id, session, user)
        return done

    def _waits_for(self, task: Task) -> str | None:
        """What the task's dependencies still wait for (None: all completed)."""
        if not task.depends_on:
            return None
        found = self.store.tasks_by_ids(task.depends_on)
        known = {i: Dependency(t.id, t.name, t.status) for i, t in found.items()}
        decision = decide(task.depends_on, task.on_dependency_failure, known)
        if decision.verdict == Verdict.READY:
            return None
        return decision.message

    def renew_claim(
        self,
        ref: str,
        *,
        user: str,
        session_id: object,
        lease_s: object = None,
        admin: bool = False,
    ) -> Task:
        """Extend the lease of the claim `user`'s session holds (a heartbeat)."""
        session = check_session(session_id)
        lease = parse_lease(lease_s)
        task = self.held_by(ref, user, session, admin=admin)
        until = lease_end(datetime.now(UTC), lease)
        renewed = self.store.record(
            task.id,
            "lease",
            actor=f"user:{user}",
            reason=f"renewed by session {session} until {until}",
            from_value=task.claim_until,
            to_value=until,
            unchanged={"session_id": session, "status": task.status.value},
            claim_until=until,
        )
        if not renewed:  # it expired or ended meanwhile
            raise TaskConflict(not_claimable(self.store.get(task.id)) or "the claim has ended")
        return self.store.get(task.id)

    def start_claimed(
        self, ref: str, *, user: str, session_id: object, admin: bool = False
    ) -> Task:
        """claimed -> active/working: the worker began (optional: it may complete the
        task straight from the claim)."""
        session = check_session(session_id)
        task = self.held_by(ref, user, session, admin=admin)
        return self.store.transition(
            task.id,
            Status.CLAIMED,
            Status.ACTIVE,
            actor=f"user:{user}",
            reason=f"started by session {session}",
            match={"session_id": session},
            state=State.WORKING.value,
            message=f"working (session {session})",
        )

    def expire_claims(self, live: Sequence[Task]) -> list[str]:
        """Put the tasks whose claim lease ran out back to pending; their ids."""
        now = datetime.now(UTC)
        back = [t.id for t in live if expired(t, now) and self.store.expire_claim(t)]
        for task_id in back:
            log.info("task %s: claim lease expired, back to pending", task_id)
        return back

    # workers -----------------------------------------------------------------------
    def register_worker(
        self, name: object, codebases: object, targets: object, *, owner: str
    ) -> Worker:
        named, cbs, tgs = check_registration(name, codebases, targets, self.workers_targets)
        worker = self.store.register_worker(named, owner, cbs, tgs)
        log.info("worker %s registered by %s", worker.name, owner)
        return worker

    def worker_of(self, name: str, user: str, *, admin: bool = False) -> Worker:
        found = self.store.get_worker(name)
        if found is None or (found.owner != user and not admin):
            raise TaskNotFound(
                f"No worker {name[:64]!r}", hint="register it with: dockyard worker register"
            )
        return found

    def heartbeat(self, name: str, user: str) -> Worker:
        if not self.store.worker_seen(name, user):
            self.worker_of(name, user)  # says it is unknown
        return self.worker_of(name, user)

    def workers_view(self, user: str | None) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [w.public(now, self.worker_ttl_s) for w in self.store.list_workers(user)]

    def claim_next(
        self, name: str, *, user: str, session_id: object, lease_s: object = None
    ) -> Task | None:
        """Claim the best pending task `name` serves (CodeTether's routing); None when
        none waits. A claim is also the worker's heartbeat."""
        session = check_session(session_id)
        lease = parse_lease(lease_s)
        worker = self.heartbeat(name, user)
        pending = self.store.list_tasks([Status.PENDING])
        for task in candidates(worker, pending):
            try:
                return self._claim(task, user, session, lease, worker.name)
            except TaskConflict:
                continue  # taken meanwhile, or waiting for dependencies: the next one
        return None
