"""Forks: a task created with a parent starts from a copy of the parent's disk, and its
agent resumes the parent's session before it takes the child's own prompt.

What is checked at create (`check_fork`, so a fork that cannot work is a 400/409 and
nothing is stored) and what runs while the child is provisioned (`copy_parent_disk`, in
the create phase, before the child's container exists). The copy is taken then, when the
child starts, not when it was created: a child that waits for capacity copies the
parent's disk as it is when a slot frees. The parent keeps running meanwhile, so the copy
is crash-consistent (what a power cut would leave on the parent's disk).

The session carries over by itself: the bridge of the child finds on the copied disk that
an agent ran there and starts the template's `resume_command`; it drops the parent's own
transcript and prompts (they are not the child's), so the child's first prompt is typed
in as soon as the resumed agent shows its prompt (`StateDir.claim` in the bridge).
"""

from __future__ import annotations

import logging

from provisioner.backends.base import Backend
from provisioner.errors import BackendError, ParameterError, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.spec import WorkspaceSpec
from provisioner.store.store import Store

log = logging.getLogger(__name__)


def check_fork(parent: Task, template: str, spec: WorkspaceSpec, backend: Backend) -> None:
    """Raise unless a task of `template` (rendered as `spec`) can fork from `parent`."""
    if parent.template != template:
        raise ParameterError(
            f"A fork runs its parent's template: {parent.name} runs {parent.template}, "
            f"not {template}",
            hint=f"create it with --template {parent.template} (or leave --template out)",
        )
    if not backend.can_fork(spec):
        raise ParameterError(
            f"Template {template} cannot fork: its {spec.backend} backend cannot copy a "
            "workspace's disk",
            hint="forks need a template on the docker backend",
        )
    if not parent.phases and parent.status in (Status.PENDING, Status.BACKLOG):
        raise TaskConflict(
            f"Cannot fork {parent.name}: it has not started, so it has no disk or session yet",
            hint=f"wait until it is active: dockyard task status {parent.name} --watch",
        )
    if removed_workspace(parent):
        raise TaskConflict(
            f"Cannot fork {parent.name}: its workspace was removed ({removed_workspace(parent)})"
        )


def removed_workspace(task: Task) -> str | None:
    """Why the task's workspace is gone (retention), or None while it exists."""
    removed = (task.workspace or {}).get("removed_at")
    if not removed:
        return None
    return str((task.workspace or {}).get("reason") or f"removed at {removed}")


def copy_parent_disk(
    store: Store, backend: Backend, child: Task, spec: WorkspaceSpec, image: str
) -> None:
    """Copy the parent's disk into the child's new volumes, and say so on both tasks."""
    assert child.parent_id is not None
    try:
        parent = store.get(child.parent_id)
    except TaskNotFound:
        raise BackendError(
            "the task this one forks from was deleted: there is no disk to copy"
        ) from None
    store.system_log(child.id, f"copying the disk of {parent.name} (it is {parent.status.value})")
    backend.fork_volumes(parent.id, child.id, spec, image)
    # once each, however often a provisioning cut short runs this again
    store.record(
        child.id,
        "fork",
        actor="engine",
        reason=f"started from a copy of {parent.name}'s disk; its agent resumes that session",
        from_value=parent.name[:32],
        ref="fork:copied",
    )
    store.record(
        parent.id,
        "fork",
        actor="engine",
        reason=f"its disk was copied for the fork {child.name}",
        to_value=child.name[:32],
        ref=f"fork:{child.id}"[:64],
    )
    log.info("forked %s's disk into %s", parent.id, child.id)
