"""The reconcile step that fires schedules: for each schedule, which fire time is owed
(the pure `provisioner.scheduling.decide`), what an overlapping run does, and the task
made for it.

Exactly once across servers sharing a database and across restarts: a fire time is made
into a task only by the server whose insert of its (schedule, fire time) row won; a server
that died between that insert and the task leaves the row `claimed`, and once its lease
runs out another server takes it over and makes the task, unless it finds it by its name
(derived from the fire time, see `scheduling.task_name`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from provisioner.engine.secrets import SecretStore, recipe_key
from provisioner.errors import DockyardError, Forbidden, TaskConflict, TaskNotFound
from provisioner.model import QueueFields, Task, parse_time
from provisioner.scheduling import (
    Rule,
    decide,
    from_iso,
    iso,
    on_overlap,
    still_running,
    task_name,
)
from provisioner.store.store import Store
from provisioner.templating.params import with_secrets

log = logging.getLogger(__name__)

EVERY_S = 1.0  # how often the reconcile loop looks at schedules (fire times are seconds)
LEASE_S = 60.0  # how long a server has to make a fire time's task before another may


def _now() -> datetime:
    return datetime.now(UTC)


class SchedulerPort(Protocol):
    """What firing schedules needs of the engine: the store, who we are, and making a
    task as the API does (engine/ports.py has the other helpers' ports)."""

    store: Store
    worker_id: str
    secrets: SecretStore  # a schedule's secret parameters (recipe_key), kept apart

    def create_task(
        self,
        *,
        template: str | None,
        preset: str | None,
        prompt: str,
        parameters: dict[str, Any],
        name: str | None,
        template_version: str | None = None,
        owner: str,
        actor: str = "user",
        queue: QueueFields | None = None,
    ) -> Task:
        """Validate, render and store a task (UserCommands.create_task)."""


class Scheduler:
    """Fires the schedules of one engine's store. `clock` is replaceable for tests."""

    def __init__(self, engine: SchedulerPort, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = clock
        self._last = 0.0

    def maybe_run(self) -> None:
        """Run at most once per EVERY_S (the loop may tick far faster)."""
        if time.monotonic() - self._last < EVERY_S:
            return
        self._last = time.monotonic()
        self.run()

    def run(self) -> None:
        """One pass: every schedule's owed fire time, queued runs, and fire times a dead
        server left half made."""
        now = self.clock()
        for schedule in self.store.active_schedules():
            try:
                self._step(schedule, now)
            except Exception:
                log.exception("schedule %s: the pass failed", schedule["name"])
        for fire in self.store.stale_fires("claimed"):
            if self.store.take_over_fire(fire["id"], "claimed", self.engine.worker_id, LEASE_S):
                try:
                    schedule = self.store.schedule_by_id(fire["schedule_id"])
                except TaskNotFound:
                    continue  # deleted meanwhile: its rows went with it
                self._make(schedule, fire["fire_at"], "taken over from a server that stopped")

    def _step(self, schedule: dict[str, Any], now: datetime) -> None:
        since = parse_time(schedule["since"])
        if schedule["considered"]:
            since = max(since, from_iso(schedule["considered"]))
        rule = Rule(schedule["cron"], schedule["timezone"], schedule["catch_up"])
        decision = decide(rule, since, now)
        if decision.considered is not None:
            missed = (
                f"; {decision.missed} earlier fire time(s) missed while no server ran it"
                if decision.missed
                else ""
            )
            if decision.fire is not None:
                self.fire(schedule, decision.fire, note=missed)
            else:
                self.store.claim_fire(
                    schedule["id"],
                    iso(decision.considered),
                    "skipped",
                    self.engine.worker_id,
                    0,
                    f"missed (no server ran it on time) and catch_up is skip{missed}",
                )
            self.store.schedule_considered(schedule["id"], iso(decision.considered))
        self._start_queued(schedule)

    def fire(self, schedule: dict[str, Any], at: datetime, *, note: str = "") -> str | None:
        """Deal with one fire time (once across every server); the task id if this
        server made its task."""
        fire_at = iso(at)
        running = [
            r
            for r in self.store.schedule_runs(schedule["id"])
            if still_running(r["status"], r["state"])
        ]
        action = on_overlap(schedule["concurrency"], bool(running))
        worker = self.engine.worker_id
        if action == "skip" or (action == "queue" and self.store.queued_fire(schedule["id"])):
            why = "one run waits already" if action == "queue" else "concurrency: skip"
            reason = f"skipped: {running[-1]['name']} is still running ({why})"
            self.store.claim_fire(schedule["id"], fire_at, "skipped", worker, 0, reason)
            return None
        if action == "queue":
            reason = f"waits for {running[-1]['name']} to finish (concurrency: queue)"
            self.store.claim_fire(schedule["id"], fire_at, "queued", worker, 0, reason)
            return None
        if not self.store.claim_fire(schedule["id"], fire_at, "claimed", worker, LEASE_S, ""):
            return None  # another server has this fire time
        return self._make(schedule, fire_at, note.lstrip("; "))

    def _start_queued(self, schedule: dict[str, Any]) -> None:
        queued = self.store.queued_fire(schedule["id"])
        if queued is None:
            return
        runs = self.store.schedule_runs(schedule["id"])
        if any(still_running(r["status"], r["state"]) for r in runs):
            return
        if self.store.take_over_fire(queued["id"], "queued", self.engine.worker_id, LEASE_S):
            self._make(schedule, queued["fire_at"], "its earlier run is done")

    def _make(
        self, schedule: dict[str, Any], fire_at: str, note: str, *, loud: bool = False
    ) -> str | None:
        """Make the task of a fire time this server holds, and settle the fire time.
        `loud`: a failure is raised too (run-now answers with it)."""
        owner, name = schedule["owner"], task_name(schedule["name"], from_iso(fire_at))
        actor = f"schedule:{schedule['name']}"
        try:
            task = self.store.get(name, owner=owner)  # made before its server stopped
        except TaskNotFound:
            if self.store.user_removed(owner):
                reason = f"its owner {owner} was removed"
                self.store.settle_fire(schedule["id"], fire_at, "failed", reason)
                if loud:
                    message = f"Schedule {schedule['name']} makes no tasks: {reason}"
                    raise Forbidden(message) from None
                return None
            try:
                task = self.engine.create_task(
                    template=schedule["template"],
                    preset=schedule["preset"],
                    prompt=schedule["prompt"],
                    parameters=with_secrets(
                        dict(schedule["parameters"] or {}),
                        self.engine.secrets.load(recipe_key("schedule", schedule["id"])),
                    ),
                    name=name,
                    owner=owner,
                    actor=actor,
                    queue=QueueFields(
                        source="cron", schedule_id=schedule["id"], target=schedule["target"]
                    ),
                )
            except DockyardError as exc:
                log.warning("schedule %s at %s: %s", schedule["name"], fire_at, exc)
                self.store.settle_fire(schedule["id"], fire_at, "failed", exc.message)
                if loud:
                    raise
                return None
            reason = f"fire time {fire_at} of schedule {schedule['name']}"
            self.store.record(
                task.id, "schedule", actor=actor, reason=reason + (f" ({note})" if note else "")
            )
        self.store.settle_fire(schedule["id"], fire_at, "started", note, task.id)
        log.info("schedule %s: fire time %s made task %s", schedule["name"], fire_at, task.name)
        return task.id

    def run_now(self, schedule: dict[str, Any], actor: str) -> str:
        """Make a run at once (`schedule run-now`), outside the cron times and whatever
        runs already: the caller asked for it. Its task id; a failure is raised."""
        fire_at = iso(self.clock().replace(microsecond=0))
        worker = self.engine.worker_id
        if not self.store.claim_fire(schedule["id"], fire_at, "claimed", worker, LEASE_S, ""):
            raise TaskConflict(
                f"Schedule {schedule['name']} has a run at {fire_at} already",
                hint="try again in a second",
            )
        task_id = self._make(schedule, fire_at, f"run now by {actor}", loud=True)
        assert task_id is not None  # loud: a failure raised
        return task_id
