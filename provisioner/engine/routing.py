"""Routing tasks to the targets of the server's config (the decisions: provisioner.routing).

A new task's route is decided as it is created. A task for a codebase no target serves
is stored unrouted and waits; every reconcile pass looks for a target serving it (one
appears when the server restarts with a config that has it) and routes it there. A task
that came without a template then gets the target's, rendered as a create would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provisioner.engine.workspace import task_policy
from provisioner.errors import DockyardError, TaskConflict, TaskNotFound
from provisioner.lifecycle import ErrorClass, Status
from provisioner.model import Task
from provisioner.prompts import check_size
from provisioner.routing import Route, Target, route, serving
from provisioner.templating.catalog import Catalog
from provisioner.templating.params import redact
from provisioner.templating.render import render_workspace, select_preset

if TYPE_CHECKING:
    from provisioner.engine.ports import RoutingPort

log = logging.getLogger(__name__)


class Routes:
    """Finds targets for new and waiting tasks of one engine."""

    def __init__(self, engine: RoutingPort) -> None:
        self.engine = engine

    @property
    def targets(self) -> Mapping[str, Target]:
        return self.engine.admissions.targets

    def load(self) -> dict[str, int]:
        """Live and waiting tasks by target: a codebase goes to the least loaded."""
        counts: dict[str, int] = {}
        usage = self.engine.store.usage(None)
        for slot in (*usage.live, *usage.queue):
            if slot.kind == "task" and slot.target is not None:
                counts[slot.target] = counts.get(slot.target, 0) + 1
        return counts

    def for_new(self, target: str | None, codebase: str | None) -> Route:
        """The route of a task being created (ParameterError: an unknown target)."""
        by_codebase = target is None and codebase is not None
        return route(self.targets, target, codebase, self.load() if by_codebase else None)

    def route_waiting(self, pending: list[Task]) -> None:
        """Route the waiting tasks whose codebase a target now serves."""
        for task in pending:
            if task.kind != "task" or task.target is not None or task.codebase is None:
                continue
            if not serving(self.targets, task.codebase):
                continue
            chosen = self.for_new(None, task.codebase).target
            if chosen is None:
                continue
            try:
                self._assign(task, chosen)
            except (TaskConflict, TaskNotFound):
                continue  # started, deleted or routed by another engine meanwhile

    def _assign(self, task: Task, target: Target) -> None:
        store = self.engine.store
        reason = f"target {target.name} serves codebase {task.codebase}"
        changes: dict[str, Any] = {"target": target.name}
        message = "routed to target " + target.name
        if target.workers:  # queue-only from now on: a worker claims it
            changes["queue_only"] = True
            reason += ": claimed by workers"
            message += "; waiting for a worker to claim it"
        elif not task.template:  # created without one: it runs the target's
            try:
                changes.update(self._render(task, target))
            except DockyardError as exc:
                message = f"cannot run on target {target.name}: {exc}"
                store.transition(
                    task.id,
                    Status.PENDING,
                    Status.FAILED,
                    actor="engine",
                    reason=message,
                    message=message,
                    error_class=ErrorClass.PERMANENT.value,
                )
                return
            reason += f": runs {target.template}" + (f"/{target.preset}" if target.preset else "")
        store.record(
            task.id,
            "route",
            actor="engine",
            reason=reason,
            to_value=target.name,
            expected=Status.PENDING,
            message=message,
            **changes,
        )
        log.info("task %s routed to target %s", task.id, target.name)
        self.engine.wake()

    def _render(self, task: Task, target: Target) -> dict[str, Any]:
        """What a create would have stored for the target's template; the parameters
        given at creation were kept in the secret store until now (none of them can be
        known to be secret or not before the template is)."""
        engine = self.engine
        assert target.template is not None  # a workers target renders nothing
        tpl = engine.catalog.get(target.template)
        check_size(task.prompt, "the prompt", tpl.config.agent.profile.max_prompt_bytes, tpl.name)
        chosen = select_preset(tpl, target.preset)
        given = engine.secrets.load(task.id)
        spec = render_workspace(
            tpl, chosen, {**engine.secrets.from_environment(tpl, given), **given}
        )
        if engine.catalog.versions is not None:
            engine.catalog.versions.snapshot(tpl)  # the task pins this exact content
        secret_names = {p.name for p in tpl.config.parameters if p.secret}
        engine.secrets.save(
            task.id, {k: v for k, v in spec.parameters.items() if k in secret_names}
        )
        return {
            "template": tpl.name,
            "template_version": tpl.version,
            "preset": chosen.name if chosen else None,
            "parameters": redact(tpl, spec.parameters),
            "resolved": redact(tpl, spec.parameters),
            "policy": task_policy(engine.catalog, spec),
        }


def check_targets(catalog: Catalog, targets: Mapping[str, Target]) -> None:
    """Refuse to start with a target whose template or preset does not exist: every task
    routed there would fail. (A template deleted later fails the tasks routed to it as
    they are created or routed, naming it.)"""
    for target in targets.values():
        if target.template is None:
            continue  # a workers target: nothing to run
        try:
            select_preset(catalog.get(target.template), target.preset)
        except DockyardError as exc:
            raise DockyardError(
                f"targets.{target.name}: {exc.message}",
                hint="fix the target in config.yaml, or add the template",
            ) from exc
