"""What users ask of the engine through the API: create, pause, resume, delete, send.

A mixin of the Engine (its reconcile loop, following and failing live in engine.py);
each method runs in the API's thread and takes the task's lock where it changes status.
`CommandsHost` names what these methods use of the rest of the engine.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from provisioner.backends.base import Backend
from provisioner.claiming import WAITING_FOR_WORKER
from provisioner.draining import WAITING as DRAINING
from provisioner.engine.admission import Admissions
from provisioner.engine.draining import Draining
from provisioner.engine.forks import check_fork
from provisioner.engine.gitops import GitWork
from provisioner.engine.kept import KeptBundles
from provisioner.engine.pools import WarmPools
from provisioner.engine.routing import Routes
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import initial_prompt_id, task_policy
from provisioner.errors import DockyardError, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import TERMINAL, ErrorClass, State, Status
from provisioner.model import NAME_RE, QueueFields, Task, slug_from_prompt, utcnow
from provisioner.prompts import check_size, new_prompt_id
from provisioner.queueing import title_from
from provisioner.retention import removed as workspace_removed
from provisioner.routing import template_and_preset
from provisioner.session_limits import OpenSessions
from provisioner.spec import WorkspaceSpec
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

log = logging.getLogger(__name__)

# how long a claim on a starting task holds without a heartbeat
LEASE_TTL_S = 15.0
# how long a delete waits for a start of the task under way in this engine to notice
PROVISION_SETTLE_S = 10.0


class UserCommands:
    """create_task, pause, resume, delete and send (mixed into the Engine)."""

    # what these use of the rest of the Engine
    store: Store
    backend: Backend
    catalog: Catalog
    secrets: SecretStore
    pools: WarmPools
    admissions: Admissions
    routes: Routes
    draining: Draining
    gitwork: GitWork
    kept: KeptBundles | None
    sessions: OpenSessions
    _task_locks: dict[str, threading.Lock]
    _provisioning: set[str]
    _lock: threading.Lock

    if TYPE_CHECKING:

        def wake(self) -> None: ...
        def _lock_for(self, table: dict[str, threading.Lock], task_id: str) -> threading.Lock: ...
        def _stop_follower(self, task_id: str, wait: bool = True) -> None: ...
        def _submit_provision(self, task_id: str) -> None: ...
        def sync_logs(self, task: Task) -> None: ...
        def nudge_follower(self, task_id: str) -> None: ...
        def mark_stopping(self, task_id: str) -> None: ...
        def queue_dependencies(
            self, queue: QueueFields, owner: str, refs: list[str]
        ) -> list[str]: ...
        def first_gate(self, task: Task) -> None: ...
        def dependency_deleted(self, deleted: Task) -> None: ...
        def fail(
            self,
            task_id: str,
            expected: Status,
            message: str,
            klass: ErrorClass,
            *,
            stop: bool = False,
            phase: str | None = None,
        ) -> None: ...

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
        """Validate and render everything, then store `owner`'s task as pending.

        With a target (or a codebase a target serves) and no template, it runs the
        target's template and preset; an explicit template (and preset) wins. A task for
        a codebase no target serves is stored unrouted and waits (see engine.routing).
        """
        if not prompt.strip():
            raise ParameterError("The prompt is empty", hint="give the task something to do")
        if name is not None and not NAME_RE.fullmatch(name):
            raise ParameterError(
                f"Invalid task name {name[:80]!r}: use 1-64 lowercase letters, digits and "
                "dashes, starting with a letter or digit"
            )
        queue = queue or QueueFields()
        queue.check()
        routed = self.routes.for_new(queue.target, queue.codebase)
        queue_only = routed.target is not None and routed.target.workers
        if queue_only:
            assert routed.target is not None
            if template is not None or preset is not None or parameters or queue.parent:
                raise ParameterError(
                    f"Target {routed.target.name} is a workers target: its tasks are claimed "
                    "by workers, never run on a template",
                    hint="drop --template, --preset, --param and --parent, or pick another target",
                )
        if queue.offer_to is not None:
            if not queue_only:
                raise ParameterError(
                    "Only a queue-only task (of a workers: true target) can be offered to a worker",
                    hint="give --target with a workers target, or drop --offer-to",
                )
            if self.store.get_worker(queue.offer_to) is None:
                raise ParameterError(
                    f"No worker {queue.offer_to!r} to offer it to",
                    hint="list workers with: dockyard worker list",
                )
        template, preset = template_and_preset(routed, template, preset)
        if template is None and not routed.unserved and not queue_only:
            raise ParameterError(
                "No template given", hint="name one with --template (or a route with --target)"
            )
        depends_on = self.queue_dependencies(
            queue, owner, self._dependency_ids(queue.depends_on, owner)
        )
        parent_id = self._parent_id(queue.parent, owner)
        if template is None:  # its codebase is served by no target yet: it waits for one
            tpl = spec = chosen = None
            if template_version is not None:
                raise ParameterError("A template version needs a template (--template)")
        else:
            tpl = self.catalog.get(template, template_version)
            check_size(prompt, "the prompt", tpl.config.agent.profile.max_prompt_bytes, tpl.name)
            chosen = select_preset(tpl, preset)
            given = {**self.secrets.from_environment(tpl, parameters), **parameters}
            spec = render_workspace(tpl, chosen, given)  # fails before anything is created
        if parent_id is not None:
            if tpl is None or spec is None:
                raise ParameterError("A fork runs its parent's template: give --template")
            check_fork(self.store.get(parent_id), tpl.name, spec, self.backend)
        if not queue_only:
            self.backend.ping()
        if name is None:
            stem = slug_from_prompt(prompt)
            name = f"{stem}-{secrets.token_hex(2)}"
            while self.store.name_taken(owner, name):
                name = f"{stem}-{secrets.token_hex(2)}"
        now = utcnow()
        policy = task_policy(self.catalog, spec) if spec else {}
        task = Task(
            id=str(uuid.uuid4()),
            name=name,
            display_name=prompt.strip().splitlines()[0][:120],
            owner=owner,
            # unrouted: the template is the target's, chosen once one serves its codebase
            template=tpl.name if tpl else "",
            template_version=tpl.version if tpl else "",
            preset=chosen.name if chosen else None,
            parameters=redact(tpl, spec.parameters) if tpl and spec else {},
            resolved=redact(tpl, spec.parameters) if tpl and spec else {},
            prompt=prompt,
            status=Status.PENDING,
            bridge_token=secrets.token_urlsafe(32),
            created_at=now,
            updated_at=now,
            message="waiting to be provisioned",
            policy=policy,
            priority=queue.priority,
            title=title_from(prompt, queue.title),
            tags=list(queue.tags),
            task_type=queue.task_type,
            epic=queue.epic,
            source=queue.source,
            created_by=actor,
            depends_on=depends_on,
            on_dependency_failure=queue.on_dependency_failure,
            action=queue.action,
            target=routed.target.name if routed.target else None,
            codebase=queue.codebase,
            parent_id=parent_id,
            # the task's own --retries wins over its template's lifecycle.retries
            retries=int(policy.get("retries") or 0) if queue.retries is None else queue.retries,
            queue_only=queue_only,
            offer_to=queue.offer_to,
            schedule_id=queue.schedule_id,
        )
        if queue.action == "backlog":
            task.status = Status.BACKLOG
            task.message = "in the backlog: starts when nothing else waits"
        draining = self.draining.state().draining
        if queue_only and task.status == Status.PENDING:
            task.message = WAITING_FOR_WORKER
        elif task.status == Status.PENDING:
            task.message = self.admissions.first_message(task)
            if draining:
                task.message = DRAINING  # accepted; admitted after undrain
        self.first_gate(task)  # waiting for its dependencies: no place in line
        if tpl is None or spec is None:
            # Which of the given parameters are secret is known only once the template
            # is: until then all of them stay out of the database.
            return self._store_new(task, dict(parameters), actor)
        secret_names = {p.name for p in tpl.config.parameters if p.secret}
        secret_values = {k: v for k, v in spec.parameters.items() if k in secret_names}
        # A warm workspace starts at once: not for a task that must wait (for its
        # dependencies, the backlog or the end of a drain) or be forked, nor one under a
        # target's max_concurrent (only admission applies that limit, under its lock).
        limited = task.target in self.admissions.target_limits and task.action != "parallel"
        plain = not (
            depends_on or parent_id or task.status != Status.PENDING or limited or draining
        )
        warm = (
            None
            if not plain
            else self.pools.claim(
                tpl,
                chosen,
                spec,
                secret_values,
                {
                    "name": task.name,
                    "owner": owner,
                    "display_name": task.display_name,
                    "prompt": prompt,
                    "message": "claimed a warm workspace",
                    **task.queue_fields(),
                },
            )
        )
        if warm is not None:
            return self._start_claimed(warm, tpl, spec, actor)
        if self.catalog.versions is not None:
            self.catalog.versions.snapshot(tpl)  # the task pins this exact content
        return self._store_new(task, secret_values, actor)

    def _store_new(self, task: Task, secret_values: dict[str, Any], actor: str) -> Task:
        """Store a new task (its secrets first) with its first prompt, and wake the loop."""
        # Saved first: the engine may pick the stored task up at once and must find them.
        # A task that cannot be stored (its name taken, text the database refuses) must
        # not leave its secrets behind in a file no task owns.
        self.secrets.save(task.id, secret_values)
        try:
            self.store.create_task(task, actor=actor)
        except BaseException:
            self.secrets.delete(task.id)
            raise
        # The bridge queues the first prompt from its config; recording it here gives it
        # an id and a delivery state like every other prompt.
        self.store.add_prompt(task.id, initial_prompt_id(task), task.prompt, handed=True)
        self.wake()
        return task

    def _dependency_ids(self, refs: tuple[str, ...], owner: str) -> list[str]:
        """The ids of the owner's tasks `refs` name; an unknown ref is a 400."""
        ids: list[str] = []
        for ref in refs:
            try:
                ids.append(self.store.get(ref, owner=owner).id)
            except TaskNotFound:
                raise ParameterError(
                    f"Unknown dependency {ref[:80]!r}: no task of yours by that name or id",
                    hint="list tasks with: dockyard task list",
                ) from None
        return list(dict.fromkeys(ids))

    def _parent_id(self, ref: str | None, owner: str) -> str | None:
        if ref is None:
            return None
        try:
            return self.store.get(ref, owner=owner).id
        except TaskNotFound:
            raise ParameterError(
                f"Unknown parent {ref[:80]!r}: no task of yours by that name or id"
            ) from None

    def _start_claimed(self, task: Task, tpl: Template, spec: WorkspaceSpec, actor: str) -> Task:
        """A claimed warm workspace: run the per-claim step, then give it the prompt."""
        try:
            self.pools.claim_setup(task, tpl, spec)
        except DockyardError as exc:
            self.fail(task.id, Status.ACTIVE, str(exc), ErrorClass.PERMANENT)
            return self.store.get(task.id)
        self.store.add_prompt(task.id, initial_prompt_id(task), task.prompt)
        self.store.update(task.id, Status.ACTIVE, actor=actor, state=State.WORKING.value)
        self._deliver_now(task)
        return self.store.get(task.id)

    def pause(
        self,
        ref: str,
        *,
        actor: str = "user",
        reason: str = "paused by user",
        expect_idle: bool = False,
    ) -> Task:
        """Stop the workspace, keep its disk and logs."""
        task = self.store.get(ref)
        _refuse_queue_only(task, "pause it")
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)
            if task.status != Status.ACTIVE:
                hint = "wait until it is active" if task.status == Status.INITIALIZING else None
                raise TaskConflict(
                    f"Cannot pause {task.name}: it is {task.status.value}", hint=hint
                )
            if expect_idle and task.state != State.IDLE.value:
                raise TaskConflict(f"{task.name} is working again; not auto-pausing")
            self._stop_follower(task.id, wait=False)
            self.mark_stopping(task.id)
            self.sync_logs(task)
            # the agent's work committed first: nothing it wrote waits outside git
            self.gitwork.checkpoint(task, reason, actor=actor)
            self.backend.stop(task.id)
            message = "paused" if actor.startswith("user") else reason
            paused = self.store.transition(
                task.id,
                Status.ACTIVE,
                Status.PAUSED,
                actor=actor,
                action="pause",
                reason=reason,
                message=message,
            )
        self.wake()  # a slot is free: a waiting task may start
        return paused

    def resume(self, ref: str, *, actor: str = "user", reason: str = "resumed by user") -> Task:
        """Start a paused or errored task's workspace again."""
        task = self.store.get(ref)
        _refuse_queue_only(task, "resume it")
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)
            if task.status not in (Status.PAUSED, Status.ERROR):
                raise TaskConflict(
                    f"Cannot resume {task.name}: it is {task.status.value}, not paused or error"
                )
            if self.draining.state().draining:
                # nothing starts while the server drains: it waits, its prompts kept
                return self.store.transition(
                    task.id,
                    task.status,
                    Status.PENDING,
                    actor=actor,
                    action="resume",
                    reason=f"{reason}; waiting: the server is draining",
                    message=DRAINING,
                    queued_at=utcnow(),
                )
            # Past capacity it waits as pending (its prompts kept) until a slot frees.
            task, started = self.admissions.resume(
                task, actor=actor, reason=reason, lease_s=LEASE_TTL_S
            )
        if started:
            self._submit_provision(task.id)
        return task

    def delete(self, ref: str, *, actor: str = "user") -> Task:
        """Remove the task's workspace (containers and volumes) and its records.

        Of deletes racing for one task exactly one wins; the others find it gone (404).
        """
        task = self.store.get(ref)
        with self._lock_for(self._task_locks, task.id):
            task = self.store.get(task.id)  # a delete that held the lock first removed it
            self._stop_follower(task.id, wait=False)
            if task.status == Status.ACTIVE:
                # its last work committed before the workspace goes (bounded; a failure
                # is an event and never keeps the delete from happening)
                self.gitwork.checkpoint(task, "delete", actor=actor)
            if self.kept is not None and task.base_commit and not workspace_removed(task):
                # a copy of the branch outlives the workspace (bounded; never blocks)
                self.gitwork.keep(task, self.kept, actor=actor)
            if task.status not in TERMINAL:
                with contextlib.suppress(TaskConflict, TaskNotFound):
                    self.store.transition(
                        task.id,
                        task.status,
                        Status.CANCELLED,
                        actor=actor,
                        reason="deleted by user",
                    )
            # before its row goes: a reconcile pass must never see it missing while it
            # is still on its dependents' lists after it completed
            self.dependency_deleted(task)  # they go on without it, or fail
            self.backend.remove(task.id)
            if not self.store.delete(task.id):  # another server sharing the store was first
                raise TaskNotFound(f"No task {ref[:80]!r}", hint="it was deleted just now")
            self.secrets.delete(task.id)
            self.sessions.forget(task.id)  # its idle clock: nothing left to time
        if self._settle_provisioning(task.id, PROVISION_SETTLE_S):
            # a start under way in this engine made more of the workspace after the
            # removal above (it stops at its next step, finding the task gone)
            self.backend.remove(task.id)
        self.wake()  # a slot may be free: a waiting task may start
        return task

    def _settle_provisioning(self, task_id: str, timeout: float) -> bool:
        """Wait (bounded) for this engine's start of the task to end; True if one ran."""
        deadline = time.monotonic() + timeout
        ran = False
        while True:
            with self._lock:
                if task_id not in self._provisioning:
                    return ran
            ran = True
            if time.monotonic() >= deadline:
                return ran
            time.sleep(0.02)

    def send(self, ref: str, text: str, *, actor: str = "user") -> dict[str, Any]:
        """Queue a follow-up prompt; it reaches the agent once it is active and idle.

        A paused task is resumed first; a starting one gets it once active; a working
        agent gets it when it is next idle. The prompt is stored before anything else, so
        a crash or restart anywhere after this call loses nothing.
        """
        task = self.store.get(ref)
        _refuse_queue_only(task, "send to it")
        if not text.strip():
            raise ParameterError("The prompt is empty")
        if task.status in TERMINAL or task.status == Status.ERROR:
            hint = (
                f"resume it first: dockyard task resume {task.name}"
                if task.status == Status.ERROR
                else "create a new task instead"
            )
            raise TaskConflict(f"Cannot send to {task.name}: it is {task.status.value}", hint=hint)
        self._check_prompt_size(task, text)
        prompt = self.store.add_prompt(task.id, new_prompt_id(), text)
        if task.status == Status.PAUSED:
            with contextlib.suppress(TaskConflict):
                self.resume(task.id, actor=actor, reason="resumed to take a prompt")
        elif task.status == Status.ACTIVE:
            # The agent is about to work: say so at once, the bridge will confirm. A
            # question the agent asked is answered by this prompt.
            answered: dict[str, Any] = (
                {"question": None} if task.state == State.INPUT_REQUIRED.value else {}
            )
            self.store.update(
                task.id, Status.ACTIVE, actor=actor, state=State.WORKING.value, **answered
            )
            self._deliver_now(task)
        return {"ok": True, "prompt_id": prompt["id"], "state": prompt["state"]}

    def _check_prompt_size(self, task: Task, text: str) -> None:
        """Refuse input larger than the task's template takes (its pinned version)."""
        try:
            tpl = self.catalog.get(task.template, task.template_version)
        except DockyardError:
            return  # its template is gone: the API's own limit still holds
        check_size(text, "the input", tpl.config.agent.profile.max_prompt_bytes, tpl.name)

    def _deliver_now(self, task: Task) -> None:
        # The task's follower is the one place that hands prompts to the bridge (in
        # order, through its client): nudged, it does so at once, even mid long-poll.
        self.nudge_follower(task.id)


def _refuse_queue_only(task: Task, act: str) -> None:
    """A queue-only task has no workspace and no agent of Dockyard's to act on."""
    if task.queue_only:
        raise TaskConflict(
            f"Cannot {act}: task {task.name} is queue-only (its worker does the work; "
            "there is no workspace)",
            hint="complete it, or delete it",
        )
