"""The task's repository, from the server: checkpoints before a workspace stops, and the
work out (diff, bundle, push), run on the workspace's disk (in it while it runs, else in a
helper beside its volumes, the agent not started). The scripts and their parsing are
pure (provisioner.gitwork); this module runs them, bounded, and records what happened."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from provisioner.engine.workspace import REPO_POLICY
from provisioner.errors import BackendError, DockyardError, ParameterError, TaskConflict
from provisioner.gitwork import parse, scripts
from provisioner.gitwork.forges import Forge, ForgeRequest, check_title, forge_for
from provisioner.gitwork.kept import KeptError, KeptRecord, too_big
from provisioner.gitwork.urls import check_ref, check_repo_url, redact_url, task_branch
from provisioner.model import Task, utcnow

if TYPE_CHECKING:
    from provisioner.backends.base import Backend
    from provisioner.engine.kept import KeptBundles
    from provisioner.store.store import Store
    from provisioner.templating.catalog import Catalog

log = logging.getLogger(__name__)

# A checkpoint holds up a pause or a delete at most this long (git's own time, plus
# a margin for Docker's answer); past it, the stop goes on and the failure is recorded.
CHECKPOINT_S = 30
DIFF_S = 120
BUNDLE_S = 600
PUSH_S = 300
# the copy of the branch kept at delete holds the delete up at most this long
KEEP_S = 120
FORGE_S = 30.0
MARGIN_S = 15.0
DEFAULT_WORKDIR = "/workspace"
MAX_OUTPUT_LINE = 300


def has_repo(task: Task) -> bool:
    """Whether the task's workspace was started from a repository."""
    return bool(task.policy.get(REPO_POLICY)) and bool(task.resolved.get("repo"))


class GitWork:
    """Git on tasks' workspaces for one engine."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        catalog: Callable[[], Catalog],
        secrets: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.catalog = catalog  # the engine's current one (it may be replaced)
        self.secrets = secrets or (lambda task_id: {})  # a task's secret values

    def _workdir(self, task: Task) -> str:
        try:
            template = self.catalog().get(task.template, task.template_version)
        except DockyardError:
            return DEFAULT_WORKDIR  # a template deleted since: its default
        return template.config.workspace.workdir or DEFAULT_WORKDIR

    def _run(
        self, task: Task, argv: list[str], seconds: int, *, network: bool = False
    ) -> tuple[int, str]:
        """Run a git script on the task's disk, bounded twice: `timeout` in the
        workspace, and a wait here (the backend itself may hang)."""
        result: list[tuple[int, str]] = []
        failure: list[BaseException] = []

        def call() -> None:
            try:
                result.append(
                    self.backend.exec_on_disk(
                        task.id,
                        scripts.bounded(argv, seconds),
                        timeout=seconds + MARGIN_S,
                        network=network,
                    )
                )
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=call, name=f"git-{task.name}", daemon=True)
        worker.start()
        worker.join(seconds + 2 * MARGIN_S)
        if worker.is_alive():
            raise BackendError(f"git on {task.name}'s workspace did not end within {seconds}s")
        if failure:
            raise failure[0]
        return result[0]

    # checkpoints ----------------------------------------------------------------------
    def checkpoint(self, task: Task, why: str, *, actor: str) -> str | None:
        """Commit everything in the workspace (untracked files too, .gitignore kept) on
        its branch, as Dockyard, before `why` (pause, delete...). Never raises, and ends
        within CHECKPOINT_S: a failure is an event, never a reason to keep a workspace
        running. The new commit, or None."""
        if not has_repo(task):
            return None
        message = f"Dockyard checkpoint: {why}\n\nTask {task.name} ({task.id})"
        try:
            if not self.backend.observe(task.id).running:
                return None  # a stopped workspace was checkpointed as it stopped
            code, out = self._run(
                task, scripts.checkpoint_argv(self._workdir(task), message), CHECKPOINT_S
            )
        except (DockyardError, OSError) as exc:
            self._record(task, actor, f"checkpoint before {why} failed: {exc}", None)
            return None
        found = parse.read_output(out)
        if code != 0:
            detail = parse.error_of(out)
            self._record(task, actor, f"checkpoint before {why} failed ({code}): {detail}", None)
            return None
        commit = found.keys.get("commit")
        if commit is None:
            self._record(task, actor, f"checkpoint before {why}: nothing changed", None)
            return None
        self.store.update(task.id, task.status, actor=actor, checkpoint_commit=commit)
        self._record(task, actor, f"checkpoint before {why}", commit)
        return commit

    def _record(self, task: Task, actor: str, reason: str, commit: str | None) -> None:
        try:
            self.store.record(
                task.id, "checkpoint", actor=actor, reason=reason[:1000], to_value=commit
            )
        except DockyardError as exc:  # the task went away meanwhile
            log.info("no checkpoint event for %s: %s", task.id, exc)

    # the branch kept past a delete ----------------------------------------------------
    def keep(self, task: Task, kept: KeptBundles, *, actor: str) -> KeptRecord | None:
        """Keep a bundle of the task branch (from the base commit on) in `kept`, for
        `task pull` after the workspace is gone. Never raises, bounded by KEEP_S: a
        failure, or a bundle over the size limit, is a `kept` event and the delete goes
        on. Run after the delete's checkpoint, before the workspace is removed."""
        return self._keep(task, kept, actor)[0]

    def keep_before_removal(self, task: Task, kept: KeptBundles, *, actor: str) -> bool:
        """`keep` for retention: True when the workspace may go (its branch kept, or
        nothing to keep: no repository, no commit beyond the base, over the size limit);
        False when git or the write failed (a `kept` event says why), so the work is not
        lost to a passing failure."""
        return not self._keep(task, kept, actor)[1]

    def _keep(self, task: Task, kept: KeptBundles, actor: str) -> tuple[KeptRecord | None, bool]:
        """(the record kept or None, whether keeping failed rather than had nothing to
        keep)."""
        if not has_repo(task):
            return None, False
        branch = task_branch(task.name)
        try:
            code, out = self._run(task, scripts.bundle_argv(self._workdir(task), branch), KEEP_S)
            if code != 0:
                self._kept(task, actor, f"branch not kept ({code}): {parse.error_of(out)}")
                return None, True
            base, ref, data = parse.bundle_of(out)
        except (DockyardError, OSError, parse.GitOutputError) as exc:
            self._kept(task, actor, f"branch not kept: {exc}")
            return None, True
        if data is None:
            self._kept(task, actor, "branch not kept: no commit beyond the base")
            return None, False
        if too_big(len(data), kept.max_bytes):
            self._kept(
                task,
                actor,
                f"branch not kept: its bundle is {len(data)} bytes, over kept_bundles.max_mb "
                f"({kept.max_bytes // (1024 * 1024)} MB); raise it in config.yaml",
            )
            return None, False
        diffs = self._diffs_to_keep(task, actor)
        record = KeptRecord(
            task_id=task.id,
            name=task.name,
            owner=task.owner,
            branch=branch,
            base=base,
            ref=ref,
            kept_at=utcnow(),
            size=len(data),
        )
        try:
            kept.keep(record, data, diffs)
        except (OSError, KeptError) as exc:
            self._kept(task, actor, f"branch not kept: writing it failed: {exc}")
            return None, True
        self._kept(task, actor, f"branch {branch} kept ({len(data)} bytes) for task pull")
        return record, False

    def _diffs_to_keep(self, task: Task, actor: str) -> dict[str, dict[str, Any]] | None:
        """The diffs `task diff` answers once the workspace is gone (against the base and
        the last checkpoint); the bundle alone cannot give them, as it holds only the
        commits after the base. None (an event says why) when git fails: the bundle is
        kept anyway."""
        try:
            code, out = self._run(task, scripts.kept_diffs_argv(self._workdir(task)), KEEP_S)
            if code != 0:
                raise parse.GitOutputError(parse.error_of(out))
            return parse.kept_diffs(out, scripts.KEPT_DIFFS_SEPARATOR)
        except (DockyardError, OSError, parse.GitOutputError) as exc:
            self._kept(task, actor, f"diff not kept (task diff will not answer): {exc}")
            return None

    def _kept(self, task: Task, actor: str, reason: str) -> None:
        log.info("%s: %s", task.name, reason)
        try:
            self.store.record(task.id, "kept", actor=actor, reason=reason[:1000])
        except DockyardError as exc:
            log.info("no kept event for %s: %s", task.id, exc)

    # the work out ---------------------------------------------------------------------
    def _need_repo(self, task: Task) -> None:
        if not has_repo(task):
            raise TaskConflict(
                f"{task.name} has no repository",
                hint="create the task with --param repo=URL to have its work in git",
            )

    def _failed(self, task: Task, what: str, code: int, out: str) -> TaskConflict:
        return TaskConflict(
            f"{what} on {task.name}'s workspace failed (exit code {code}): {parse.error_of(out)}"
        )

    def diff(self, task: Task, *, since_checkpoint: bool, full: bool) -> dict[str, Any]:
        """The work against the base commit (or the last checkpoint): commits, files and
        (when `full`) the diff, committed and uncommitted alike."""
        self._need_repo(task)
        argv = scripts.diff_argv(self._workdir(task), since_checkpoint=since_checkpoint, full=full)
        code, out = self._run(task, argv, DIFF_S)
        if code != 0:
            raise self._failed(task, "git diff", code, out)
        try:
            return parse.diff_result(out)
        except parse.GitOutputError as exc:
            raise TaskConflict(f"{task.name}'s workspace: {exc}") from exc

    def bundle(self, task: Task, *, actor: str) -> tuple[str, str, str, bytes | None]:
        """(branch, base commit, the ref the bundle holds, a git bundle of the task branch
        from the base on; None when nothing was committed). A running workspace is
        checkpointed first, so the bundle holds all the work."""
        self._need_repo(task)
        if self.backend.observe(task.id).running:
            self.checkpoint(task, "pull", actor=actor)
        branch = task_branch(task.name)
        code, out = self._run(task, scripts.bundle_argv(self._workdir(task), branch), BUNDLE_S)
        if code != 0:
            raise self._failed(task, "git bundle", code, out)
        try:
            base, ref, data = parse.bundle_of(out)
        except parse.GitOutputError as exc:
            raise TaskConflict(f"{task.name}'s workspace: {exc}") from exc
        return branch, base, ref, data

    def push(
        self,
        task: Task,
        *,
        remote: str | None,
        branch: str | None,
        allowed_hosts: list[str],
        actor: str,
    ) -> dict[str, Any]:
        """Push the task branch (checkpointed first when the workspace runs) to `remote`
        (default: the repository it was cloned from) as `branch` (default: the task
        branch). The repository's token is only ever sent to the host it came from. The
        pushed branch is added to the task's output."""
        self._need_repo(task)
        if remote:
            try:
                check_repo_url(remote, allowed_hosts)
            except ParameterError as exc:
                raise ParameterError(exc.message.replace("Parameter repo", "--remote")) from exc
        target = check_ref(branch or task_branch(task.name), "--branch")
        if self.backend.observe(task.id).running:
            self.checkpoint(task, "push", actor=actor)
        local = task_branch(task.name)
        argv = scripts.push_argv(self._workdir(task), remote or "", local, target)
        code, out = self._run(task, argv, PUSH_S, network=True)
        if code != 0:
            raise self._failed(task, "git push", code, out)
        commit = parse.read_output(out).keys.get("pushed", "")
        where = redact_url(remote or str(task.resolved.get("repo", "")))
        line = f"pushed {local} to {where} as branch {target} ({commit[:12]})"
        self._output(task, "push", line, commit, actor)
        return {"remote": where, "branch": target, "commit": commit, "output": line}

    def _output(self, task: Task, kind: str, line: str, value: str, actor: str) -> None:
        """`line` added to the task's output, and an event of `kind`."""
        current = self.store.get(task.id)
        output = "\n".join(x for x in (current.output, line) if x)
        self.store.update(task.id, current.status, actor=actor, output=output[-20000:])
        self.store.record(task.id, kind, actor=actor, reason=line[:MAX_OUTPUT_LINE], to_value=value)

    def pull_request(
        self,
        task: Task,
        *,
        forge_kind: str | None,
        api_url: str | None,
        base: str | None,
        title: str,
        body: str,
        actor: str,
    ) -> dict[str, Any]:
        """Push the task branch to its repository, then open a pull request (GitHub) or
        merge request (GitLab) of it with the repository's token; its URL is added to
        the task's output."""
        self._need_repo(task)
        check_title(title, body)
        forge = forge_for(str(task.resolved["repo"]), forge_kind, api_url)
        token = self.secrets(task.id).get("repo_credential")
        if not isinstance(token, str) or not token:
            raise TaskConflict(
                f"{task.name} has no repo_credential: a pull request needs the token",
                hint="create the task with --param repo_credential=TOKEN (or configure "
                "DOCKYARD_SECRET_REPO_CREDENTIAL on the server)",
            )
        if base is not None:
            check_ref(base, "--base")
        pushed = self.push(task, remote=None, branch=None, allowed_hosts=[], actor=actor)
        with httpx.Client(timeout=FORGE_S, follow_redirects=False, trust_env=True) as http:
            if base is None:
                base = check_ref(str(task.resolved.get("ref") or ""), "ref") or None
            if base is None:
                answer = self._call(http, forge, forge.repository(), token, task)
                base = forge.default_branch(answer)
                if base is None:
                    raise TaskConflict(f"{forge.kind} named no default branch: give --base")
            request = forge.open_request(pushed["branch"], base, title, body)
            answer = self._call(http, forge, request, token, task)
        url = forge.request_url(answer)
        if url is None:
            raise TaskConflict(f"{forge.kind} answered without the request's URL")
        line = f"pull request: {url} ({pushed['branch']} into {base})"
        self._output(task, "pr", line, url[:MAX_OUTPUT_LINE], actor)
        return {"url": url, "branch": pushed["branch"], "base": base, "output": line}

    @staticmethod
    def _call(
        http: httpx.Client, forge: Forge, request: ForgeRequest, token: str, task: Task
    ) -> Any:
        headers = {**request.headers, **forge.auth_headers(token)}
        try:
            reply = http.request(request.method, request.url, json=request.json, headers=headers)
        except httpx.HTTPError as exc:
            raise TaskConflict(f"cannot reach {forge.kind} at {forge.api}: {exc}") from exc
        if reply.is_error:
            said = " ".join(reply.text.split())[:400].replace(token, "********")
            raise TaskConflict(
                f"{forge.kind} refused the request for {task.name} "
                f"(HTTP {reply.status_code}): {said}"
            )
        try:
            return reply.json()
        except ValueError as exc:
            raise TaskConflict(f"{forge.kind} answered something that is not JSON") from exc
