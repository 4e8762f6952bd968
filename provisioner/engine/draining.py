"""Drain and undrain: the I/O around the pure `provisioner.draining`.

`drain` and `undrain` (the API's, admins only) change the stored state; every engine's
reconcile pass then acts on it (`step`): while draining it admits nothing and pauses
active tasks (idle ones at once, working ones once idle or when the grace is over), each
with a `drain` event and its id kept in the state first, so a crash between the two never
leaves a task paused that undrain would not resume. Undrain resumes exactly those through
the normal resume path (the agent starts with the template's resume_command: nothing is
typed again), and a pass that finds an undrain cut short finishes it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Protocol

from provisioner.draining import (
    MAX_GRACE_S,
    SETTING,
    WAITING,
    Drain,
    started,
    stopped,
    to_pause,
    to_resume,
    undrain_stalled,
    with_paused,
    without,
)
from provisioner.errors import DockyardError, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.store.store import Store

log = logging.getLogger(__name__)


class DrainPort(Protocol):
    """What draining needs of the engine."""

    store: Store

    def wake(self) -> None:
        """Run a reconcile pass soon."""

    def pause(
        self, ref: str, *, actor: str = ..., reason: str = ..., expect_idle: bool = ...
    ) -> Task:
        """Stop a task's workspace, keeping its disk and logs."""

    def resume(self, ref: str, *, actor: str = ..., reason: str = ...) -> Task:
        """Start a paused task's workspace again."""


class Draining:
    """One engine's part in draining the server (the state is shared in the store)."""

    def __init__(self, engine: DrainPort, pool: Executor) -> None:
        self.engine = engine
        self.store = engine.store
        self._pool = pool
        self._busy: set[str] = set()  # tasks this engine is pausing right now
        self._lock = threading.Lock()

    def state(self) -> Drain:
        """The drain state as stored now."""
        return Drain.from_value(self.store.setting(SETTING))

    # requests --------------------------------------------------------------------------
    def drain(self, *, actor: str, grace_s: float) -> Drain:
        """Stop admitting; working tasks have `grace_s` seconds to go idle before they are
        paused like the idle ones."""
        if not 0 <= grace_s <= MAX_GRACE_S:
            raise ParameterError(f"The grace must be 0s to {MAX_GRACE_S / 3600:g}h")
        now = datetime.now(UTC)
        value = self.store.change_setting(
            SETTING, lambda v: started(Drain.from_value(v), actor, grace_s, now).to_value()
        )
        log.info("draining (asked by %s, grace %gs)", actor, grace_s)
        self.engine.wake()
        return Drain.from_value(value)

    def undrain(self, *, actor: str) -> tuple[Drain, list[Task]]:
        """Admit again and resume the tasks the drain paused; the state and those resumed."""
        now = datetime.now(UTC)
        self.store.change_setting(SETTING, lambda v: stopped(Drain.from_value(v), now).to_value())
        log.info("undrained by %s", actor)
        resumed = self.resume_paused(actor=actor)
        self.engine.wake()
        return self.state(), resumed

    def resume_paused(self, *, actor: str) -> list[Task]:
        """Resume the tasks a finished drain paused (none while it still drains)."""
        drain = self.state()
        resume, done = to_resume(drain, self.store.tasks_by_ids(drain.paused).values())
        resumed = []
        for task in resume:
            try:
                again = self.engine.resume(
                    task.id, actor=actor, reason="undrained: resumed where it was"
                )
            except (TaskConflict, TaskNotFound):
                done.append(task.id)  # resumed or deleted by someone else meanwhile
                continue
            except DockyardError as exc:
                log.warning("undrain could not resume %s yet: %s", task.id, exc)
                continue  # kept: a later pass tries again
            self.store.record(
                task.id, "drain", actor=actor, reason="resumed by undrain", to_value="resumed"
            )
            done.append(task.id)
            resumed.append(again)
        if done:
            self.store.change_setting(
                SETTING, lambda v: without(Drain.from_value(v), done).to_value()
            )
        return resumed

    # the reconcile step -----------------------------------------------------------------
    def step(self, live: list[Task]) -> bool:
        """Act on the drain state; True while draining (then nothing may be admitted)."""
        drain = self.state()
        if not drain.draining:
            if undrain_stalled(drain, datetime.now(UTC)):
                self.resume_paused(actor="drain")  # an undrain cut short (a crash)
            return False
        for task, idle_only in to_pause(drain, live, datetime.now(UTC)):
            with self._lock:
                if task.id in self._busy:
                    continue
                self._busy.add(task.id)
            self._pool.submit(self._pause, task.id, idle_only, drain.by or "an admin")
        return True

    def tell_waiting(self, pending: list[Task]) -> None:
        """Say why tasks that could start (their dependencies met) do not: the drain."""
        for task in pending:
            if task.message != WAITING:
                self.store.update(task.id, Status.PENDING, actor="drain", message=WAITING)

    def _pause(self, task_id: str, idle_only: bool, by: str) -> None:
        try:
            # Kept first: paused but not kept, undrain would never resume it.
            value = self.store.change_setting(
                SETTING,
                lambda v: (
                    with_paused(Drain.from_value(v), task_id).to_value()
                    if Drain.from_value(v).draining
                    else v
                ),
            )
            if not Drain.from_value(value).draining:
                return  # undrained meanwhile
            why = "working past the grace" if not idle_only else "idle"
            reason = f"the server is draining (asked by {by}); paused {why}, context kept"
            self.engine.pause(task_id, actor="drain", reason=reason, expect_idle=idle_only)
            self.store.record(task_id, "drain", actor="drain", reason=reason, to_value="paused")
        except (TaskConflict, TaskNotFound):
            pass  # it started working again, or moved on: a later pass looks again
        except DockyardError as exc:
            log.warning("drain could not pause %s: %s", task_id, exc)
        finally:
            with self._lock:
                self._busy.discard(task_id)
