"""`dockyard task diff|pull|apply|push`: a task's work out of its workspace, as git.

The server runs git on the workspace's disk (a paused task's too, without starting its
agent); these commands show the diff, fetch a git bundle of the task branch into a local
clone, apply the diff to the current branch, or ask the server to push the branch."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any
from urllib.parse import quote

import click

from cli.client import JSON, Client, CliError, current_client
from cli.options import output_option
from provisioner.gitwork.parse import bundle_ref, unsafe_diff_paths
from provisioner.gitwork.urls import TASK_BRANCH_PREFIX, check_ref

BUNDLE_TIMEOUT_S = 900.0
GIT_TIMEOUT_S = 600.0


def _path(task: str, what: str) -> str:
    return f"/tasks/{quote(task, safe='')}/{what}"


def _git(repo: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """git in the local clone `repo` (its messages kept for errors)."""
    try:
        return subprocess.run(
            ["git", "-C", repo, *args],
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CliError("git is not installed here", hint="install git, then try again") from exc
    except subprocess.TimeoutExpired as exc:
        raise CliError(f"git {args[0]} ran past {GIT_TIMEOUT_S:g}s in {repo}") from exc


def _said(done: subprocess.CompletedProcess[bytes]) -> str:
    return " ".join(done.stderr.decode(errors="replace").split())[-600:] or "no message"


def _clone(into: str) -> str:
    """The top of the local clone at `into`; CliError when it is not one."""
    done = _git(into, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise CliError(
            f"{into} is not inside a git clone",
            hint="run this in a clone of the task's repository, or give --into DIR",
        )
    return done.stdout.decode().strip()


def _diff(client: Client, task: str, *, stat: bool, since_checkpoint: bool) -> JSON:
    params = {"stat": str(stat).lower(), "since_checkpoint": str(since_checkpoint).lower()}
    result: JSON = client.request("GET", _path(task, "diff"), params=params, timeout=300.0)
    return result


def _print_diff(found: JSON) -> None:
    base = str(found.get("base_commit", ""))
    start = str(found.get("from_commit", ""))
    since = "base" if start == base else f"checkpoint {start[:12]}"
    click.echo(
        f"{found.get('task')}: {found.get('branch')} at {str(found.get('head_commit'))[:12]}, "
        f"against the {since} (base {base[:12]})"
    )
    commits = found.get("commits") or []
    click.echo(f"commits: {len(commits)}")
    for commit in commits:
        click.echo(f"  {commit['commit'][:12]} {commit['author']}: {commit['subject']}")
    files = found.get("files") or []
    click.echo(f"files: {len(files)} changed, +{found.get('added', 0)} -{found.get('deleted', 0)}")
    for item in files:
        added = "bin" if item.get("added") is None else f"+{item['added']}"
        deleted = "" if item.get("deleted") is None else f" -{item['deleted']}"
        click.echo(f"  {item['path']}  {added}{deleted}")
    text = found.get("diff")
    if text:
        click.echo("")
        click.echo(text, nl=not text.endswith("\n"))


@click.command("diff")
@click.argument("task")
@click.option("--stat", is_flag=True, help="Only the commits and files changed, no diff text.")
@click.option(
    "--since-checkpoint", is_flag=True, help="Against the last checkpoint, not the base commit."
)
@output_option
def diff(task: str, stat: bool, since_checkpoint: bool, output: str) -> None:
    """The task's changes against the commit its branch started from: commits, then
    committed and uncommitted files (untracked ones too). A paused task's too."""
    found = _diff(current_client(), task, stat=stat, since_checkpoint=since_checkpoint)
    if output == "json":
        click.echo(json.dumps(found, indent=2))
        return
    _print_diff(found)


def _branch_from(headers: dict[str, str]) -> tuple[str, str, str]:
    """(the local branch to make, the base commit, the ref the bundle holds), checked: a
    server's answer must never become an option of git."""
    branch = headers.get("x-dockyard-branch", "")
    base = headers.get("x-dockyard-base", "")
    try:
        check_ref(branch, "the server's branch")
        held = bundle_ref(headers.get("x-dockyard-ref", f"refs/heads/{branch}"))
    except ValueError as exc:
        raise CliError(f"the server's answer: {exc}") from exc
    if not branch.startswith(TASK_BRANCH_PREFIX) or not base.isalnum():
        raise CliError("the server answered no task branch for the bundle")
    return branch, base, held


@click.command("pull")
@click.argument("task")
@click.option(
    "--into",
    "into",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="The local clone of the task's repository to fetch into.",
)
def pull(task: str, into: str) -> None:
    """Fetch the task branch into a local clone as dockyard/<task> (a git bundle through
    the API: no remote needed). A running task is checkpointed first."""
    top = _clone(into)
    reply = current_client().exchange("GET", _path(task, "bundle"), timeout=BUNDLE_TIMEOUT_S)
    if reply.is_error:
        current_client().decode(reply)  # raises the server's error
    branch, base, held = _branch_from(reply.headers)
    if _git(top, "cat-file", "-e", f"{base}^{{commit}}").returncode != 0:
        raise CliError(
            f"the task's base commit {base[:12]} is not in {top}",
            hint="fetch the repository's history first (git fetch origin), then pull again",
        )
    if reply.status_code == 204:
        done = _git(top, "branch", "-f", "--", branch, base)
        if done.returncode != 0:
            raise CliError(f"git branch {branch} failed: {_said(done)}")
        click.echo(f"{branch}: no commits beyond the base {base[:12]}")
        return
    fd, bundle = tempfile.mkstemp(prefix="dockyard-", suffix=".bundle")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(reply.content)
        refspec = f"+{held}:refs/heads/{branch}"
        done = _git(top, "fetch", "--quiet", "--no-tags", "--", bundle, refspec)
    finally:
        os.unlink(bundle)
    if done.returncode != 0:
        raise CliError(f"git fetch of the task's bundle failed: {_said(done)}")
    head = _git(top, "rev-parse", "--short=12", branch).stdout.decode().strip()
    click.echo(f"{branch} at {head} in {top}")


@click.command("apply")
@click.argument("task")
@click.option(
    "--into",
    "into",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="The local clone to apply the changes in.",
)
def apply(task: str, into: str) -> None:
    """Apply the task's changes (against its base commit) to the current branch of a local
    clone, staged. Refuses a clone with changes of its own."""
    top = _clone(into)
    status = _git(top, "status", "--porcelain")
    if status.returncode != 0:
        raise CliError(f"git status failed in {top}: {_said(status)}")
    if status.stdout.strip():
        raise CliError(
            f"{top} has uncommitted changes: apply would mix them with the task's",
            hint="commit or stash them first",
        )
    found = _diff(current_client(), task, stat=False, since_checkpoint=False)
    text = found.get("diff") or ""
    if not text.strip():
        click.echo(f"{task}: no changes to apply")
        return
    bad = unsafe_diff_paths(text)
    if bad:
        raise CliError(f"the task's diff writes outside the work tree: {', '.join(bad[:5])}")
    done = _git(top, "apply", "--3way", "--whitespace=nowarn", "-", stdin=text.encode())
    if done.returncode != 0:
        raise CliError(f"git apply failed: {_said(done)}")
    files = found.get("files") or []
    click.echo(f"applied {len(files)} files of {task} to {top} (staged)")


@click.command("push")
@click.argument("task")
@click.option("--remote", default=None, help="Repository URL (default: the one cloned).")
@click.option("--branch", default=None, help="Branch to create there (default: dockyard/TASK).")
@output_option
def push(task: str, remote: str | None, branch: str | None, output: str) -> None:
    """Push the task branch (checkpointed first when it runs), from the workspace, with
    the repository's token (sent only to the host it was cloned from)."""
    body: dict[str, Any] = {"remote": remote, "branch": branch}
    result: JSON = current_client().request(
        "POST", _path(task, "push"), json=body, timeout=BUNDLE_TIMEOUT_S
    )
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(str(result.get("output", "")))


@click.command("pr")
@click.argument("task")
@click.option("--base", default=None, help="Branch to merge into (default: the task's ref).")
@click.option("--title", default=None, help="Title (default: the task's title).")
@click.option("--body", default=None, help="Description.")
@output_option
def pr(task: str, base: str | None, title: str | None, body: str | None, output: str) -> None:
    """Push the task branch, then open a pull request (GitHub) or merge request (GitLab)
    of it with the repository's token; its URL goes into the task's output."""
    payload: dict[str, Any] = {"base": base, "title": title, "body": body}
    result: JSON = current_client().request(
        "POST", _path(task, "pr"), json=payload, timeout=BUNDLE_TIMEOUT_S
    )
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(str(result.get("url", "")))


COMMANDS = (diff, pull, apply, push, pr)
