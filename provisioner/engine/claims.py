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
    DEFAULT_OFFER_S,
    DEFAULT_WORKER_TTL_S,
    HELD,
    WAITING_FOR_WORKER,
    Worker,
    candidates,
    check_registration,
    check_session,
    expired,
    held_message,
    lease_end,
    not_claimable,
    offer_expired,
    parse_lease,
    to_offer,
)
from provisioner.dependencies import Dependency, Verdict, decide
from provisioner.errors import Forbidden, TaskConflict, TaskNotFound
from provisioner.lifecycle import State, Status
from provisioner.model import Task, utcnow
from provisioner.queueing import check_text
from provisioner.routing import Target
from provisioner.store.store import Store

# a rejection's reason goes into the history: as bounded as any other reason
MAX_REASON_BYTES = 512

log = logging.getLogger(__name__)


class TaskClaims:
    """claim, renew, start and expire claims; register and route workers (mixed into the
    Engine)."""

    store: Store
    worker_ttl_s: float = DEFAULT_WORKER_TTL_S
    offer_s: float = DEFAULT_OFFER_S

    if TYPE_CHECKING:

        @property
        def workers_targets(self) -> dict[str, Target]: ...

    # finding the task ------------------------------------------------------------------
    def claimable(self, ref: str, user: str, *, admin: bool = False) -> Task:
        """The task `ref` as `user` may act on it for a claim: their own (any, for an
        admin), or anyone's queue-only task. Another user's workspace task is a 404."""
        try:
            return self.store.get(ref, None if admin else user)
        except TaskNotFound as mine:
            try:
                task = self.store.get(ref)
            except TaskConflict:
                raise mine from None  # a name several users have: theirs stay unseen
            if not task.queue_only:
                raise mine from None  # another user's workspace task: not found
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
        """Put the tasks whose claim lease (or offer) ran out back to pending; their ids."""
        now = datetime.now(UTC)
        back = [t.id for t in live if expired(t, now) and self.store.expire_claim(t)]
        for task in live:
            if offer_expired(task, now):
                why = f"the offer to worker {task.offer_to} ran out at {task.offer_until}"
                if self._end_offer(task, "engine", why):
                    back.append(task.id)
        for task_id in back:
            log.info("task %s: claim lease expired, back to pending", task_id)
        return back

    # offers (Agent Swarm) ------------------------------------------------------------
    def make_offers(self, ready: Sequence[Task]) -> None:
        """Offer each ready task created with --offer-to to its worker, for a while."""
        for task in to_offer(ready):
            until = lease_end(datetime.now(UTC), self.offer_s)
            try:
                self.store.transition(
                    task.id,
                    Status.PENDING,
                    Status.OFFERED,
                    actor="engine",
                    reason=f"offered to worker {task.offer_to} until {until}",
                    match={"offer_to": task.offer_to},
                    offer_until=until,
                    blocked=False,
                    message=f"offered to worker {task.offer_to} until {until}",
                )
            except (TaskConflict, TaskNotFound):
                continue  # claimed, deleted or offered by another engine meanwhile

    def _offered_to_caller(self, ref: str, user: str, admin: bool) -> Task:
        task = self.claimable(ref, user, admin=admin)
        if task.status != Status.OFFERED:
            raise TaskConflict(f"task {task.name} is {task.status.value}: it is not offered")
        worker = self.store.get_worker(task.offer_to or "")
        if not admin and (worker is None or worker.owner != user):
            raise TaskConflict(
                f"task {task.name} is offered to worker {task.offer_to}, not to one of yours"
            )
        return task

    def accept_offer(
        self,
        ref: str,
        *,
        user: str,
        session_id: object,
        lease_s: object = None,
        admin: bool = False,
    ) -> Task:
        """offered -> claimed by the worker it was offered to (its owner accepts)."""
        session = check_session(session_id)
        lease = parse_lease(lease_s)
        task = self._offered_to_caller(ref, user, admin)
        return self._accept(task, user, session, lease)

    def _accept(self, task: Task, user: str, session: str, lease: float) -> Task:
        until = lease_end(datetime.now(UTC), lease)
        who = f"session {session} (worker {task.offer_to})"
        return self.store.transition(
            task.id,
            Status.OFFERED,
            Status.CLAIMED,
            actor=f"user:{user}",
            reason=f"offer accepted by {who}, lease until {until}",
            match={"offer_until": task.offer_until},
            claimed_by=user,
            session_id=session,
            worker=task.offer_to,
            claim_until=until,
            offer_to=None,
            offer_until=None,
            message=f"claimed by {who}",
        )

    def reject_offer(
        self, ref: str, *, user: str, reason: str | None = None, admin: bool = False
    ) -> Task:
        """offered -> pending: the worker declines; any worker may claim it then."""
        # it goes into the task's history, which terminals show: no escape sequences
        reason = check_text(reason, "reason", MAX_REASON_BYTES)
        task = self._offered_to_caller(ref, user, admin)
        why = f"worker {task.offer_to} rejected the offer" + (f": {reason}" if reason else "")
        if not self._end_offer(task, f"user:{user}", why):
            raise TaskConflict(not_claimable(self.store.get(task.id)) or "the offer has ended")
        return self.store.get(task.id)

    def _end_offer(self, task: Task, actor: str, why: str) -> bool:
        try:
            self.store.transition(
                task.id,
                Status.OFFERED,
                Status.PENDING,
                actor=actor,
                reason=why,
                match={"offer_until": task.offer_until},
                offer_to=None,
                offer_until=None,
                queued_at=utcnow(),
                message=WAITING_FOR_WORKER,
            )
        except (TaskConflict, TaskNotFound):
            return False
        log.info("task %s: %s", task.id, why)
        return True

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
        offered = self.store.list_tasks([Status.OFFERED])
        for task in sorted(offered, key=lambda t: (-t.priority, t.created_at)):
            if task.offer_to == worker.name:
                try:
                    return self._accept(task, user, session, lease)
                except TaskConflict:
                    continue  # the offer ran out meanwhile
        pending = self.store.list_tasks([Status.PENDING])
        for task in candidates(worker, pending):
            try:
                return self._claim(task, user, session, lease, worker.name)
            except TaskConflict:
                continue  # taken meanwhile, or waiting for dependencies: the next one
        return None
