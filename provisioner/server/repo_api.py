"""Routes of a task's repository: the work out. The diff against the base commit,
a git bundle of the task branch (the CLI fetches it into a local clone), and a push. Each
runs git on the workspace's disk, the agent not started when the task is paused. Members
reach only their own tasks (find_task); an admin acting on another's is audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.engine.gitops import has_repo
from provisioner.errors import DockyardError, TaskConflict, TaskNotFound
from provisioner.gitwork.kept import KeptRecord
from provisioner.model import Task
from provisioner.prompts import check_strings
from provisioner.retention import removed as workspace_removed
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES
from provisioner.server.tasks_api import task_to_act_on
from provisioner.templating.catalog import Template

BUNDLE_TYPE = "application/x-git-bundle"


class PushInput(BaseModel):
    """Body of POST /api/v2/tasks/{ref}/push."""

    remote: str | None = Field(
        None,
        max_length=2048,
        description="The repository URL to push to (http/https, on a host the template "
        "allows); absent: the repository the task was cloned from",
    )
    branch: str | None = Field(
        None, max_length=200, description="The branch to create there; absent: dockyard/<task>"
    )


class PullRequestInput(BaseModel):
    """Body of POST /api/v2/tasks/{ref}/pr."""

    title: str | None = Field(
        None, max_length=256, description="The request's title; absent: the task's title"
    )
    body: str | None = Field(None, max_length=65536, description="Its description")
    base: str | None = Field(
        None,
        max_length=200,
        description="The branch to merge into; absent: the task's ref, else the default",
    )


def _diff_view(found: dict[str, Any], task: Task) -> dict[str, Any]:
    return {"task": task.name, **found}


def build_repo_router(engine: Engine) -> APIRouter:
    """The repository routes, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    store = engine.store

    def task_for(who: Principal, ref: str, action: str) -> Task:
        return task_to_act_on(store, who, ref, action)

    def live_or_kept(who: Principal, ref: str, action: str) -> Task | KeptRecord:
        """The task `ref` names; or, once it was deleted or its workspace removed, the copy
        of its branch the server kept (TaskNotFound when there is none)."""
        try:
            task = task_for(who, ref, action)
        except TaskNotFound as exc:
            kept = _kept_for(who, ref, action)
            if kept is None:
                raise _not_kept(exc) from exc
            return kept
        return _kept_of_removed(task) if _workspace_gone(task) else task

    @r.get("/tasks/{ref}/diff")
    def diff(
        ref: str,
        stat: bool = Query(False, description="Files and counts only, no diff text"),
        since_checkpoint: bool = Query(
            False, description="Against the last checkpoint instead of the base commit"
        ),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        task = live_or_kept(who, ref, "task.diff")
        if isinstance(task, KeptRecord):
            return _kept_diff(task, since_checkpoint=since_checkpoint, stat=stat)
        found = engine.gitwork.diff(task, since_checkpoint=since_checkpoint, full=not stat)
        return _diff_view(found, task)

    @r.get(
        "/tasks/{ref}/bundle",
        responses={200: {"content": {BUNDLE_TYPE: {}}}, 204: {"description": "no commits"}},
    )
    def bundle(ref: str, who: Principal = Depends(caller)) -> Response:
        task = live_or_kept(who, ref, "task.pull")
        if isinstance(task, KeptRecord):
            return _kept_bundle(task)
        branch, base, held, data = engine.gitwork.bundle(task, actor=who.actor)
        headers = {"X-Dockyard-Branch": branch, "X-Dockyard-Base": base, "X-Dockyard-Ref": held}
        if data is None:
            return Response(status_code=204, headers=headers)
        return Response(content=data, media_type=BUNDLE_TYPE, headers=headers)

    @r.post("/tasks/{ref}/push")
    def push(ref: str, body: PushInput, who: Principal = Depends(caller)) -> dict[str, Any]:
        check_strings(body.remote, "remote")
        check_strings(body.branch, "branch")
        task = task_for(who, ref, "task.push")
        allowed = list(_template_of(task).config.repo.allowed_hosts)
        return engine.gitwork.push(
            task, remote=body.remote, branch=body.branch, allowed_hosts=allowed, actor=who.actor
        )

    @r.post("/tasks/{ref}/pr")
    def pull_request(
        ref: str, body: PullRequestInput, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        check_strings([body.title, body.body, body.base], "body")
        task = task_for(who, ref, "task.pr")
        rules = _template_of(task).config.repo
        return engine.gitwork.pull_request(
            task,
            forge_kind=rules.forge,
            api_url=rules.api_url,
            base=body.base,
            title=body.title or task.title or task.name,
            body=body.body or f"Made by Dockyard task {task.name}.",
            actor=who.actor,
        )

    def _kept_for(who: Principal, ref: str, action: str) -> KeptRecord | None:
        """The copy kept when the task `ref` names was deleted, as `who` may see it
        (members their own; a task's token none; admins anyone's, audited)."""
        if engine.kept is None or who.task_id is not None:
            return None
        kept = engine.kept.find(ref, owner=who.user)
        if kept is None and who.is_admin:
            kept = engine.kept.find(ref, owner=None)
        if kept is not None and kept.owner != who.user:
            store.record_audit(who.actor, action, f"{kept.owner}/{kept.name}", kept.task_id)
        return kept

    def _not_kept(exc: TaskNotFound) -> TaskNotFound:
        return TaskNotFound(
            exc.message,
            hint="no task of that name exists, and no copy of a deleted one's branch is "
            "kept (kept_bundles: in config.yaml; see docs/kept-bundles.md); "
            "list tasks: dockyard task list",
        )

    def _workspace_gone(task: Task) -> bool:
        """Whether the task's workspace (its disk) no longer exists: retention removed
        it, or it is gone otherwise. A backend that cannot say counts as present (the
        git call then says what is wrong)."""
        if not has_repo(task):
            return False  # the usual "has no repository" answer follows
        if workspace_removed(task):
            return True
        try:
            return not engine.backend.observe(task.id).exists
        except DockyardError:
            return False

    def _kept_of_removed(task: Task) -> KeptRecord:
        kept = engine.kept.find(task.id, owner=None) if engine.kept is not None else None
        if kept is None:
            why = (task.workspace or {}).get("reason") or "it no longer exists"
            raise TaskConflict(
                f"{task.name}'s workspace is gone ({why}) and no copy of its branch was "
                "kept, so its work cannot be read any more",
                hint="the task's events say why nothing was kept (dockyard task events "
                f"{task.name}); keep workspaces longer with `retention:` in config.yaml "
                "or the template's lifecycle.retention",
            )
        return kept

    def _kept_diff(kept: KeptRecord, *, since_checkpoint: bool, stat: bool) -> dict[str, Any]:
        assert engine.kept is not None  # a record was found in it
        found = engine.kept.diff(kept, "checkpoint" if since_checkpoint else "base")
        if found is None:
            raise TaskConflict(
                f"only the branch of {kept.name} was kept, not its diff",
                hint=f"dockyard task pull {kept.name}, then git diff {kept.base[:12]} "
                f"{kept.branch}",
            )
        found = {**found, "task": kept.name, "kept_at": kept.kept_at}
        if stat:
            found["diff"] = None
        return found

    def _kept_bundle(kept: KeptRecord) -> Response:
        assert engine.kept is not None
        try:
            data = engine.kept.read(kept)
        except OSError as exc:
            raise TaskNotFound(
                f"the kept branch of {kept.name} was removed meanwhile (retention)"
            ) from exc
        headers = {
            "X-Dockyard-Branch": kept.branch,
            "X-Dockyard-Base": kept.base,
            "X-Dockyard-Ref": kept.ref,
            "X-Dockyard-Kept": kept.kept_at,
        }
        return Response(content=data, media_type=BUNDLE_TYPE, headers=headers)

    def _template_of(task: Task) -> Template:
        try:
            return engine.catalog.get(task.template, task.template_version)
        except DockyardError as exc:
            raise TaskConflict(
                f"{task.name}'s template {task.template} {task.template_version} is gone: "
                "its repository rules are unknown"
            ) from exc

    return r
