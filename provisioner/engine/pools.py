"""Warm pools: workspaces of a preset kept initialized, so a task starts by claiming one.

A member is an ordinary task row of kind `pool` with no prompt: the engine provisions it
like any task (so it survives restarts and shows in `pool list`), and its agent waits
idle. Creating a task from that preset claims one with a compare-and-set on the row, so
two creates never get the same workspace; the prompt then goes in like a follow-up.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from provisioner.engine.workspace import lender_pin, task_policy
from provisioner.errors import BackendError, DockyardError, TaskConflict, TaskNotFound
from provisioner.lifecycle import TERMINAL, State, Status
from provisioner.model import Task, utcnow
from provisioner.spec import IMAGE_FROM, WorkspaceSpec
from provisioner.templating.catalog import Preset, Template
from provisioner.templating.params import redact
from provisioner.templating.render import render_string, render_workspace

if TYPE_CHECKING:
    from provisioner.engine.ports import PoolsPort

log = logging.getLogger(__name__)

FILL_EVERY_S = 2.0


class WarmPools:
    """Keeps every preset's pool at its size and hands members to new tasks."""

    def __init__(self, engine: PoolsPort) -> None:
        self.engine = engine
        self._last_fill = 0.0

    # keeping pools full ----------------------------------------------------------
    def fill(self) -> None:
        """Top pools up to size; retire members built from an older template version."""
        if time.monotonic() - self._last_fill < FILL_EVERY_S:
            return
        self._last_fill = time.monotonic()
        members = [t for t in self.engine.store.list_tasks(kind="pool") if t.status not in TERMINAL]
        for template in self._templates():
            for preset in template.presets.values():
                if preset.config.prebuilds <= 0:
                    continue
                mine = [
                    m for m in members if m.template == template.name and m.preset == preset.name
                ]
                try:
                    lender = lender_pin(self.engine.catalog, render_workspace(template, preset, {}))
                except DockyardError as exc:
                    # the lender cannot be read right now (a half-saved file?): judge
                    # nothing, retire nothing, add nothing until it can
                    log.warning("warm pool of %s/%s: %s", template.name, preset.name, exc)
                    continue
                stale = [
                    m
                    for m in mine
                    if m.template_version != template.version or m.policy.get(IMAGE_FROM) != lender
                ]
                for member in stale:
                    self._retire(member, "built from an older template version")
                fresh = [m for m in mine if m not in stale and m.status != Status.ERROR]
                for _ in range(preset.config.prebuilds - len(fresh)):
                    self._add_member(template, preset)

    def _templates(self) -> list[Template]:
        try:
            return self.engine.catalog.all()
        except DockyardError as exc:
            log.warning("cannot read templates for warm pools: %s", exc)
            return []

    def _add_member(self, template: Template, preset: Preset) -> None:
        engine = self.engine
        try:
            spec = render_workspace(template, preset, {})
            policy = task_policy(engine.catalog, spec)
        except DockyardError as exc:
            log.warning("warm pool of %s/%s cannot render: %s", template.name, preset.name, exc)
            return
        now = utcnow()
        task = Task(
            id=str(uuid.uuid4()),
            name=f"warm-{template.name}-{secrets.token_hex(3)}",
            display_name=f"warm {template.name}/{preset.name}",
            owner=engine.owner,
            template=template.name,
            template_version=template.version,
            preset=preset.name,
            parameters=redact(template, spec.parameters),
            resolved=redact(template, spec.parameters),
            prompt="",
            status=Status.PENDING,
            bridge_token=secrets.token_urlsafe(32),
            created_at=now,
            updated_at=now,
            message="warming up",
            policy=policy,
            kind="pool",
        )
        if engine.catalog.versions is not None:
            engine.catalog.versions.snapshot(template)
        engine.store.create_task(task, actor="pool")
        engine.wake()

    def _retire(self, member: Task, why: str) -> None:
        log.info("retiring warm workspace %s: %s", member.name, why)
        try:
            self.engine.delete(member.id)
        except (TaskConflict, TaskNotFound, BackendError) as exc:
            log.warning("could not retire %s: %s", member.name, exc)

    # claiming ----------------------------------------------------------------------------
    def claim(
        self,
        template: Template,
        preset: Preset | None,
        spec: WorkspaceSpec,
        secret_values: dict[str, Any],
        changes: dict[str, Any],
    ) -> Task | None:
        """Give the new task an idle warm workspace that matches it exactly, if any."""
        if preset is None or preset.config.prebuilds <= 0:
            return None
        store = self.engine.store
        wanted = redact(template, spec.parameters)
        for member in store.list_tasks([Status.ACTIVE], kind="pool"):
            if (
                member.template != template.name
                or member.preset != preset.name
                or member.template_version != template.version
                or member.resolved != wanted
                or member.policy.get(IMAGE_FROM) != lender_pin(self.engine.catalog, spec)
                or member.state != State.IDLE.value
                or self.engine.secrets.load(member.id) != secret_values
            ):
                continue
            if store.claim_pool_member(member.id, changes, actor="user"):
                self.engine.wake()  # refill the pool soon
                return store.get(member.id)
        return None

    def claim_setup(self, task: Task, template: Template, spec: WorkspaceSpec) -> None:
        """Run the template's per-claim step in the claimed workspace, with the task's values."""
        script = template.config.claim_setup
        if not script:
            return
        context = {
            **spec.parameters,
            "params": spec.parameters,
            "task": {"id": task.id, "name": task.name, "prompt": task.prompt},
        }
        rendered = render_string(script, context, f"{template.path}: field claim_setup")
        code, output = self.engine.backend.exec(task.id, ["/bin/sh", "-c", rendered])
        for line in output.splitlines():
            self.engine.store.system_log(task.id, f"claim setup: {line}")
        if code != 0:
            raise BackendError(f"claim setup failed with exit code {code}: {output[-500:]}")
