"""`dockyard task ...`: create, list, watch, steer and delete tasks."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from cli.client import JSON, Client, CliError, ServerUnreachable, current_client
from cli.options import output_option
from cli.render import (
    MESSAGE_WIDTH,
    STOPPED_STATUSES,
    TASK_HEADERS,
    TERMINAL_STATUSES,
    events_table,
    log_entry,
    log_text,
    phases_line,
    render_table,
    status_line,
    task_row,
    tasks_table,
    to_json,
)
from provisioner.bridge.runtime.wire import DELIVERED, FAILED, QUEUED, TAKEN

STATUSES = (
    "backlog",
    "pending",
    "initializing",
    "active",
    "paused",
    "error",
    "completed",
    "failed",
    "cancelled",
)
# how often a server without the long-polls (it sends no ETag) is polled
WAIT_POLL_INTERVAL = 0.3
WATCH_POLL_INTERVAL = 0.5
FOLLOW_WAIT = 10.0
# the longest a status or prompt long-poll asks the server to hold (it allows 30 s)
LONG_POLL = 25.0
# a task that reaches one of these will not become idle without someone acting
WAIT_FAILURES = frozenset({"error", "failed", "cancelled", "paused"})
INTERRUPTED = 130  # the shell's exit status for Ctrl-C


def parse_params(items: Iterable[str]) -> dict[str, str]:
    """`K=V` strings as a dict (the last value of a repeated key wins); ValueError if malformed."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected K=V, got {item!r}")
        params[key.strip()] = value
    return params


def _params_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> JSON:
    """Click callback validating repeated `--param K=V`."""
    try:
        return parse_params(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def read_text(argument: str | None, from_stdin: bool, what: str) -> str:
    """The text given as an argument or on stdin (exactly one of the two), stripped."""
    if argument is not None and from_stdin:
        raise click.UsageError(f"give the {what} as an argument or with --stdin, not both")
    if from_stdin:
        text = sys.stdin.read()  # click's CliRunner swaps sys.stdin too
    elif argument is None:
        raise click.UsageError(f"missing {what}: give it as an argument or pipe it in with --stdin")
    else:
        text = argument
    if not text.strip():
        raise click.UsageError(f"the {what} is empty")
    return text.strip()


def _next_task(
    client: Client, task: JSON, etag: str | None, wait: float, interval: float
) -> tuple[JSON, str | None]:
    """The task once it differs from `etag` (the server holds the answer up to `wait` s);
    without an ETag (a server older than the long-poll) after `interval` s of sleep."""
    if etag is None:
        time.sleep(interval)
    return client.watch_task(task["id"], etag, max(wait, 0.0))


def wait_until_idle(
    client: Client,
    task: JSON,
    timeout: float,
    echo: Callable[[str], None],
    etag: str | None = None,
) -> JSON:
    """Follow the task, echoing each new status line, until it is idle; CliError if it fails.

    The server holds each request until the task changed (a long-poll), so a change shows
    as soon as it happens; `etag` is the task's as last fetched, if it was."""
    start = time.monotonic()
    name = task.get("name") or task["id"]
    last_line = None
    first = etag is None
    while True:
        elapsed = time.monotonic() - start
        line = status_line(task)
        if task.get("status") == "initializing" and task.get("message"):
            line = f"{line}  {task['message']}"  # build progress, while there is any
        if line != last_line:
            echo(f"{elapsed:6.1f}s  {line}")
            last_line = line
        status = task.get("status")
        if (status == "active" and task.get("state") == "idle") or status == "completed":
            echo(f"ready in {elapsed:.1f}s")
            return task
        if status in WAIT_FAILURES:
            raise CliError(
                f"task {name} ended in {status}: {task.get('message') or 'no message'}",
                hint=f"see what happened with: dockyard task logs {name}",
            )
        if elapsed >= timeout:
            raise CliError(
                f"task {name} is still {line} after {timeout:g} s",
                hint=f"keep watching with: dockyard task status {name} --watch",
            )
        if first:
            # the task as created carries no ETag: fetch it once at once to get one
            task, etag = client.watch_task(task["id"], None, 0)
            first = False
            continue
        wait = min(LONG_POLL, timeout - (time.monotonic() - start))
        task, etag = _next_task(client, task, etag, wait, WAIT_POLL_INTERVAL)


@click.group("task")
def task_group() -> None:
    """Create, inspect, steer and delete tasks."""


@task_group.command("create")
@click.argument("prompt", required=False)
@click.option("-t", "--template", required=True, help="Template to create the workspace from.")
@click.option("-p", "--preset", help="Preset of parameter values (default: the template's).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    callback=_params_option,
    help="Parameter value overriding the preset; repeatable.",
)
@click.option("--name", help="Task name (default: derived from the prompt).")
@click.option(
    "--template-version", help="A stored version (hash, prefix or label) to pin; default: active."
)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the prompt from stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the task id.")
@click.option("--wait", is_flag=True, help="Follow start-up until the agent is idle.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    default=600,
    show_default=True,
    help="Seconds --wait waits before giving up.",
)
@click.option("--owner", metavar="USER", help="Create the task for this user (admins).")
def create(
    prompt: str | None,
    template: str,
    preset: str | None,
    params: dict[str, str],
    name: str | None,
    template_version: str | None,
    from_stdin: bool,
    quiet: bool,
    wait: bool,
    timeout: float,
    owner: str | None,
) -> None:
    """Create a task from a template (and preset) with PROMPT."""
    text = read_text(prompt, from_stdin, "prompt")
    client = current_client()
    task = client.create_task(
        template=template,
        preset=preset,
        prompt=text,
        parameters=params,
        name=name,
        template_version=template_version,
        owner=owner,
    )
    if not quiet:
        source = "/".join(p for p in (task.get("template"), task.get("preset")) if p)
        click.echo(f"Created task {task.get('name')} ({task['id']}) from {source}")
        if task.get("status") == "pending" and "capacity" in str(task.get("message")):
            click.echo(f"It is {task['message']}")
    try:
        if wait:
            wait_until_idle(client, task, timeout, (lambda _: None) if quiet else click.echo)
    finally:
        # scripts capture the id even when --wait fails, so they can inspect or delete the task
        if quiet:
            click.echo(task["id"])


@task_group.command("list")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only this one.")
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's tasks (admins).")
@output_option
@click.option("-q", "--quiet", is_flag=True, help="Print only task ids.")
def list_tasks(status: str | None, all_users: bool, output: str, quiet: bool) -> None:
    """List your tasks (-a: everyone's)."""
    tasks = current_client().list_tasks(status, all_users=all_users)
    if quiet:
        for task in tasks:
            click.echo(task["id"])
    elif output == "json":
        click.echo(to_json(tasks))
    else:
        click.echo(tasks_table(tasks, owners=all_users))


def _watch(client: Client, task: JSON, output: str, etag: str | None) -> None:
    """Print a row (or JSON line) per change of the task until it reaches a terminal status."""
    seen = None
    while True:
        key = tuple(task.get(k) for k in ("status", "phase", "state", "message"))
        if key != seen:
            if output == "json":
                click.echo(json.dumps(task))
            else:
                lines = render_table(TASK_HEADERS, [task_row(task)]).splitlines()
                # the header once, like the plain table; then only rows
                click.echo("\n".join(lines if seen is None else lines[1:]))
            seen = key
        if task.get("status") in TERMINAL_STATUSES:
            return
        task, etag = _next_task(client, task, etag, LONG_POLL, WATCH_POLL_INTERVAL)


@task_group.command("status")
@click.argument("task")
@output_option
@click.option("-w", "--watch", is_flag=True, help="Print a line per change until the task ends.")
@click.pass_context
def status(ctx: click.Context, task: str, output: str, watch: bool) -> None:
    """Show a task's status (row 2: field 2 is the status, field 4 the state)."""
    client = current_client()
    found, etag = client.watch_task(task, None, 0)
    if not watch:
        if output == "json":
            click.echo(to_json(found))
            return
        click.echo(tasks_table([found]))
        message = str(found.get("message") or "")
        if found.get("status") == "pending" and len(message) > MESSAGE_WIDTH:
            click.echo(f"message: {message}")  # the table cut it; why it waits matters
        # Below the two awk-able lines: how long each startup phase took.
        if found.get("phases"):
            click.echo(phases_line(found["phases"]))
        return
    try:
        _watch(client, found, output, etag)
    except KeyboardInterrupt:
        ctx.exit(INTERRUPTED)


def _new_entries(page: JSON, after: int | None) -> list[JSON]:
    """Entries of a logs page after `after` (a server that ignored it cannot loop us)."""
    entries: list[JSON] = page.get("logs") or []
    return [e for e in entries if after is None or int(e.get("id", 0)) > after]


def _read_logs(client: Client, task: str, follow: bool) -> Iterable[JSON]:
    """Yield the task's log entries; with `follow`, long-poll until its agent has stopped."""
    after: int | None = None
    wait = 0.0
    while True:
        page = client.task_logs(task, after=after, wait=wait)
        entries = _new_entries(page, after)
        yield from entries
        if entries:
            after = int(entries[-1]["id"])
        stopped = page.get("status") in STOPPED_STATUSES
        if not entries and (stopped or not follow):
            if not follow:
                # Sent but not yet typed into the agent: shown last, marked queued.
                for prompt in page.get("pending_prompts") or []:
                    yield {
                        "id": None,
                        "type": "input",
                        "content": prompt["content"],
                        "time": prompt["created_at"],
                        "prompt_id": prompt["id"],
                        "delivery": QUEUED,
                    }
            return
        # a stopped task is drained without waiting; a running one is long-polled
        wait = FOLLOW_WAIT if follow and not stopped else 0.0


def _shown(entries: Iterable[JSON], screen: bool, hidden: list[int]) -> Iterable[JSON]:
    """The entries to show: without `screen`, lines cut from the screen of an agent whose
    hooks report what it says (source "screen": a TUI's chrome) are counted, not shown."""
    for entry in entries:
        if not screen and entry.get("source") == "screen":
            hidden[0] += 1
            continue
        yield entry


@task_group.command("logs")
@click.argument("task")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new logs until the agent stops.")
@click.option(
    "--screen",
    is_flag=True,
    help="Also show the lines cut from the agent's screen when its hooks report what it "
    "says (Claude Code): its TUI's redraws, mostly chrome.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text, or JSON (a list; one object per line with --follow).",
)
@click.pass_context
def logs(ctx: click.Context, task: str, follow: bool, screen: bool, output: str) -> None:
    """Show a task's agent output, inputs and system messages."""
    hidden = [0]
    entries = _shown(_read_logs(current_client(), task, follow), screen, hidden)
    if output == "json" and not follow:
        click.echo(to_json([log_entry(e) for e in entries]))
        return
    try:
        for entry in entries:
            click.echo(json.dumps(log_entry(entry)) if output == "json" else log_text(entry))
    except KeyboardInterrupt:
        ctx.exit(INTERRUPTED)
    if hidden[0] and output == "text":
        lines = "line" if hidden[0] == 1 else "lines"
        click.echo(
            f"({hidden[0]} {lines} of the agent's screen hidden; --screen shows them)", err=True
        )


@task_group.command("events")
@click.argument("task")
@output_option
def events(task: str, output: str) -> None:
    """Show a task's history: every status, phase and state change, who made it and why."""
    history = current_client().task_events(task)
    if output == "json":
        click.echo(to_json(history))
        return
    click.echo(events_table(history))


@task_group.command("send")
@click.argument("task")
@click.argument("text", required=False)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the text from stdin.")
@click.option("--no-wait", is_flag=True, help="Return once queued, not once the agent took it.")
@click.option("--wait", is_flag=True, help="Block until the agent has answered and is idle.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
def send(
    task: str, text: str | None, from_stdin: bool, no_wait: bool, wait: bool, timeout: float
) -> None:
    """Send TEXT to the task's agent as a follow-up prompt.

    A paused task is resumed first, a starting one gets it once active, a working agent
    once it is idle again. By default this returns when the agent has taken the prompt.
    """
    message = read_text(text, from_stdin, "text to send")
    client = current_client()
    result = client.send(task, message)
    prompt_id = str(result.get("prompt_id"))
    click.echo(f"Sent to {task} (prompt {prompt_id})")
    if not no_wait:
        _wait_until_taken(client, task, prompt_id, timeout, result.get("state"))
    if wait:
        # The server marks the task working as it accepts the prompt, so idle means answered.
        current, etag = client.watch_task(task, None, 0)
        wait_until_idle(client, current, timeout, click.echo, etag or None)


def _wait_until_taken(
    client: Client, task: str, prompt_id: str, timeout: float, sent: Any = None
) -> None:
    """Follow the prompt until the agent has taken it, each request held by the server until
    the prompt moves on or its task stops (a long-poll). `sent`: its state as the send
    answered it (the first look is then a long-poll too; without it, a plain read)."""
    deadline = time.monotonic() + timeout
    state = ""
    wait = 0.0
    if sent in (QUEUED, DELIVERED):
        state = str(sent)
        click.echo(f"prompt {state}")
        wait = max(min(LONG_POLL, timeout), 0.001)
    while True:
        asked = time.monotonic()
        prompt = client.get_prompt(task, prompt_id, wait=wait)
        answered = time.monotonic() - asked
        if prompt.get("state") != state:
            state = str(prompt.get("state"))
            if state != TAKEN:
                click.echo(f"prompt {state}")
        if state == TAKEN:
            click.echo("prompt taken by the agent")
            return
        if state == FAILED:
            # final: it will never reach the agent, waiting longer changes nothing
            raise CliError(f"the prompt failed: {prompt.get('reason') or 'no reason given'}")
        current = client.get_task(task)
        if current.get("status") in WAIT_FAILURES:
            if client.get_prompt(task, prompt_id).get("state") == TAKEN:
                continue  # taken just before the task stopped: report that, not a failure
            raise CliError(
                f"task {task} is {current.get('status')}: {current.get('message') or ''}".strip(),
                hint=f"the prompt stays queued; resume the task: dockyard task resume {task}",
            )
        remaining = deadline - time.monotonic()
        if remaining < 0:
            raise CliError(
                f"the agent has not taken the prompt after {timeout:g} s (it is {state})",
                hint=f"it stays queued; watch it with: dockyard task logs {task} -f",
            )
        if wait and answered < wait / 2:
            # answered early with nothing new: a server without the long-poll
            time.sleep(WAIT_POLL_INTERVAL)
        wait = max(min(LONG_POLL, remaining), 0.001)


def _print_status(task: dict[str, Any]) -> None:
    """`NAME: status line`."""
    click.echo(f"{task.get('name')}: {status_line(task)}")


@task_group.command("pause")
@click.argument("task")
def pause(task: str) -> None:
    """Stop the task's workspace, keeping its disk and logs."""
    _print_status(current_client().pause(task))


@task_group.command("resume")
@click.argument("task")
def resume(task: str) -> None:
    """Start a paused or errored task's workspace again."""
    _print_status(current_client().resume(task))


@task_group.command("delete")
@click.argument("tasks", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, tasks: tuple[str, ...], yes: bool) -> None:
    """Delete tasks and their workspaces."""
    if not yes:
        if len(tasks) == 1:
            question = f"Delete task {tasks[0]} and its workspace?"
        else:
            question = f"Delete {len(tasks)} tasks ({', '.join(tasks)}) and their workspaces?"
        click.confirm(question, abort=True)
    client = current_client()
    failed = 0
    for task in tasks:
        try:
            client.delete(task)
        except ServerUnreachable:
            raise  # the next ones would fail the same way
        except CliError as exc:
            exc.show()
            failed += 1
        else:
            click.echo(f"Deleted {task}")
    if failed:
        ctx.exit(1)
