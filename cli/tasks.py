"""`dockyard task ...`: create, list, watch, steer and delete tasks."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from cli.client import JSON, ApiError, Client, CliError, ServerUnreachable, current_client
from cli.columns import column_option, column_table
from cli.lazy import lazy_group
from cli.options import output_option
from cli.render import (
    MESSAGE_WIDTH,
    STOPPED_STATUSES,
    TASK_HEADERS,
    TERMINAL_STATUSES,
    app_lines,
    events_table,
    log_entry,
    log_text,
    phases_line,
    queue_lines,
    queue_table,
    render_table,
    status_line,
    task_row,
    tasks_table,
    to_json,
    workspace_lines,
)
from provisioner.bridge.runtime.wire import DELIVERED, FAILED, QUEUED, TAKEN

PRIORITY_NAMES = ("low", "normal", "high")
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
        if status == "active" and task.get("state") == "input_required":
            # the agent waits for the user: as ready as it gets until someone answers
            echo(f"the agent asks: {task.get('question') or ''}".rstrip())
            echo(f"answer with: dockyard task send {name} ANSWER")
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


# commands of their own modules, imported when used: `task create` and the others here
# do not pay for git's helpers or the workers' (~10 ms of a command's start)
TASK_COMMANDS = {
    "exec": "cli.shell:exec_command",
    "shell": "cli.shell:shell_command",
    "cp": "cli.files:cp_command",
    "download": "cli.files:download_command",
    "port-forward": "cli.forward:port_forward_command",
    # a task's work out as git (cli.work)
    "diff": "cli.work:diff",
    "pull": "cli.work:pull",
    "apply": "cli.work:apply",
    "push": "cli.work:push",
    "pr": "cli.work:pr",
    # queue-only tasks a worker claims (cli.workers)
    "claim": "cli.workers:claim",
    "renew": "cli.workers:renew",
    "start": "cli.workers:start",
    "accept": "cli.workers:accept",
    "reject": "cli.workers:reject",
}


@click.group("task", cls=lazy_group(TASK_COMMANDS))
def task_group() -> None:
    """Create, inspect, steer and delete tasks."""


def _priority(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback: 0-100 or low/normal/high, sent as the server takes it."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in PRIORITY_NAMES:
        return text
    if text.isdigit() and 0 <= int(text) <= 100:
        return int(text)
    raise click.BadParameter("use 0-100 or low, normal, high", ctx, param)


@task_group.command("create")
@click.argument("prompt", required=False)
@click.option("-t", "--template", help="Template to create the workspace from (or give --target).")
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
@click.option("--title", help="Short title (default: the prompt's first line).")
@click.option(
    "--priority",
    callback=_priority,
    metavar="0-100|low|normal|high",
    help="Higher starts first [default: normal = 50].",
)
@click.option("--tag", "tags", multiple=True, help="A tag; repeatable.")
@click.option("--type", "task_type", metavar="TYPE", help="bug, feature, review...")
@click.option("--epic", metavar="NAME", help="The epic it belongs to.")
@click.option(
    "--depends-on",
    "depends_on",
    multiple=True,
    metavar="TASK",
    help="A task that must complete first; repeatable.",
)
@click.option(
    "--on-dependency-failure",
    type=click.Choice(["fail", "wait"]),
    default="fail",
    show_default=True,
    help="When a dependency fails or is cancelled: fail too, or keep waiting.",
)
@click.option(
    "--action",
    type=click.Choice(["queue", "interrupt", "backlog", "parallel", "sprint"]),
    default="queue",
    show_default=True,
    help="How it enters the queue.",
)
@click.option("--target", metavar="NAME", help="A route of the server's config (no --template).")
@click.option("--codebase", metavar="ID", help="Route to the target serving this codebase.")
@click.option("--parent", metavar="TASK", help="Fork from this task: its disk and session.")
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=None,
    help="Automatic retries on TRANSIENT and TIMEOUT errors [default: the template's].",
)
@click.option(
    "--offer-to",
    metavar="WORKER",
    help="Offer it (a queue-only task) to this worker, who accepts or rejects it.",
)
def create(
    prompt: str | None,
    template: str | None,
    preset: str | None,
    params: dict[str, str],
    name: str | None,
    template_version: str | None,
    from_stdin: bool,
    quiet: bool,
    wait: bool,
    timeout: float,
    owner: str | None,
    title: str | None,
    priority: Any,
    tags: tuple[str, ...],
    task_type: str | None,
    epic: str | None,
    depends_on: tuple[str, ...],
    on_dependency_failure: str,
    action: str,
    target: str | None,
    codebase: str | None,
    parent: str | None,
    retries: int | None,
    offer_to: str | None,
) -> None:
    """Create a task from a template (and preset) with PROMPT."""
    text = read_text(prompt, from_stdin, "prompt")
    if template is None and target is None and codebase is None and parent is None:
        raise click.UsageError(
            "give a --template (or a --target or --codebase to route to, or a --parent to fork)"
        )
    client = current_client()
    task, etag = client.create_task_tagged(
        title=title,
        priority=priority,
        tags=list(tags),
        task_type=task_type,
        epic=epic,
        depends_on=list(depends_on),
        on_dependency_failure=None if on_dependency_failure == "fail" else on_dependency_failure,
        action=None if action == "queue" else action,
        target=target,
        codebase=codebase,
        parent=parent,
        retries=retries,
        offer_to=offer_to,
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
        # routed: say where; unrouted (its codebase unserved): no template yet
        route = f" on target {task['target']}" if task.get("target") else ""
        shown = source or "no template yet"
        click.echo(f"Created task {task.get('name')} ({task['id']}) from {shown}{route}")
        if task.get("status") in ("pending", "backlog") and task.get("message") not in (
            None,
            "",
            "waiting to be provisioned",
        ):
            click.echo(f"It is {task['message']}")
    try:
        if wait:
            echo = (lambda _: None) if quiet else click.echo
            wait_until_idle(client, task, timeout, echo, etag)
    finally:
        # scripts capture the id even when --wait fails, so they can inspect or delete the task
        if quiet:
            click.echo(task["id"])


def _statuses(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: one status or several, comma-separated."""
    if value is None:
        return None
    wanted = [s.strip().lower() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        raise click.BadParameter(f"one or more of {', '.join(STATUSES)}", ctx, param)
    return ",".join(wanted)


@task_group.command("list")
@click.option(
    "--status", callback=_statuses, metavar="STATUS[,STATUS]", help="Only these statuses."
)
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's tasks (admins).")
@click.option("--tag", help="Only tasks with this tag.")
@click.option("--target", help="Only tasks routed to this target.")
@click.option("--epic", help="Only tasks of this epic.")
@click.option("--owner", metavar="USER", help="Only this user's tasks (admins).")
@click.option(
    "--queue",
    "queue_view",
    is_flag=True,
    help="Waiting tasks in the order they will start, with what each waits for "
    "(every user's; others' unnamed).",
)
@output_option
@column_option
@click.option("-q", "--quiet", is_flag=True, help="Print only task ids.")
def list_tasks(
    status: str | None,
    all_users: bool,
    tag: str | None,
    target: str | None,
    epic: str | None,
    owner: str | None,
    queue_view: bool,
    output: str,
    columns: list[str],
    quiet: bool,
) -> None:
    """List your tasks (-a: everyone's); --queue: every waiting task in admission order."""
    if queue_view:
        mixed = [flag for flag, given in (("--status", status), ("--owner", owner)) if given]
        if mixed or all_users:
            # the line is one for everyone: filtering it by owner or status would hide the
            # places that explain a task's own
            raise click.UsageError(
                f"--queue shows every user's waiting tasks in line; it does not take "
                f"{', '.join(mixed + (['-a'] if all_users else []))} "
                "(filter it by --target, --tag or --epic)"
            )
        # the server decides the order and why each waits: it shows every user's waiting
        # tasks (others' without their names), so each place in line is the real one
        params = {"target": target, "tag": tag, "epic": epic}
        entries = current_client().request("GET", "/queue", params=params)["queue"]
        if quiet:
            for entry in entries:
                click.echo(entry["id"])
        elif output == "json":
            click.echo(to_json(entries))
        else:
            click.echo(queue_table(entries))
        return
    tasks = current_client().list_tasks(
        status, all_users=all_users, tag=tag, target=target, epic=epic, owner=owner
    )
    if quiet:
        for task in tasks:
            click.echo(task["id"])
    elif output == "json":
        click.echo(to_json(tasks))
    elif columns:
        click.echo(column_table(tasks, columns))
    else:
        click.echo(tasks_table(tasks, owners=all_users or owner is not None))


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
@column_option
@click.option("-w", "--watch", is_flag=True, help="Print a line per change until the task ends.")
@click.pass_context
def status(ctx: click.Context, task: str, output: str, columns: list[str], watch: bool) -> None:
    """Show a task's status (row 2: field 2 is the status, field 4 the state)."""
    client = current_client()
    found, etag = client.watch_task(task, None, 0)
    if not watch:
        if output == "json":
            click.echo(to_json(found))
            return
        if columns:  # only what was asked for: nothing below the table
            click.echo(column_table([found], columns))
            return
        click.echo(tasks_table([found]))
        message = str(found.get("message") or "")
        if found.get("status") == "pending" and len(message) > MESSAGE_WIDTH:
            click.echo(f"message: {message}")  # the table cut it; why it waits matters
        # Below the two awk-able lines: how long each startup phase took.
        if found.get("phases"):
            click.echo(phases_line(found["phases"]))
        apps = None
        if (found.get("policy") or {}).get("apps"):
            try:
                apps = client.task_apps(task)
            except ApiError:  # an older server: the apps are shown without their health
                apps = None
        for line in [*queue_lines(found), *workspace_lines(found), *app_lines(found, apps)]:
            click.echo(line)
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
@click.argument("task", required=False)
@click.option("--actor", help="Only this actor's events (user:NAME, agent, engine...).")
@click.option("--since", type=click.IntRange(min=0), default=0, help="Only after this event id.")
@output_option
def events(task: str | None, actor: str | None, since: int, output: str) -> None:
    """Show a task's history (or every task's, without TASK): every change, who made it
    and why."""
    client = current_client()
    if task is None or actor is not None or since:
        history = _all_events(client, task, actor, since)
    else:
        history = client.task_events(task)
    if output == "json":
        click.echo(to_json(history))
        return
    click.echo(events_table(history, tasks=task is None))


def _all_events(client: Client, task: str | None, actor: str | None, since: int) -> list[JSON]:
    """Every page of GET /events after `since`."""
    found: list[JSON] = []
    while True:
        page = client.all_events(since=since, task=task, actor=actor)
        found += page.get("events") or []
        after = int(page.get("next_since") or since)
        if not page.get("events") or after <= since:
            return found
        since = after


@task_group.command("complete")
@click.argument("task")
@click.option(
    "--outcome",
    type=click.Choice(["SUCCESS", "FAILED", "SKIPPED", "CANCELLED"], case_sensitive=False),
    required=True,
    help="SUCCESS -> completed, FAILED -> failed, SKIPPED and CANCELLED -> cancelled.",
)
@click.option("--error-code", metavar="CODE", help="A short machine-readable code.")
@click.option(
    "--error-class",
    type=click.Choice(
        ["TRANSIENT", "PERMANENT", "DEPENDENCY", "POLICY", "TIMEOUT", "UNKNOWN"],
        case_sensitive=False,
    ),
    help="Why it failed (TRANSIENT and TIMEOUT may be retried).",
)
@click.option("--output", "result", metavar="TEXT", help="The result, in words.")
@click.option("--tokens-in", type=click.IntRange(min=0), help="Input tokens spent.")
@click.option("--tokens-out", type=click.IntRange(min=0), help="Output tokens spent.")
@click.option("--cost-usd", type=click.FloatRange(min=0), help="Dollars spent.")
@click.option("--model", help="The model that did the work.")
def complete(
    task: str,
    outcome: str,
    error_code: str | None,
    error_class: str | None,
    result: str | None,
    tokens_in: int | None,
    tokens_out: int | None,
    cost_usd: float | None,
    model: str | None,
) -> None:
    """End TASK with an outcome; its workspace stops (disk and logs are kept)."""
    done = current_client().complete(
        task,
        outcome=outcome.upper(),
        error_code=error_code,
        error_class=error_class.upper() if error_class else None,
        output=result,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
        model=model,
    )
    _print_status(done)


@task_group.command("progress")
@click.argument("task")
@click.argument("note")
def progress(task: str, note: str) -> None:
    """Record a progress NOTE on TASK (the latest shows in `task status`)."""
    current_client().progress(task, note)
    click.echo(f"Noted on {task}")


@task_group.command("priority")
@click.argument("task")
@click.argument("priority", metavar="0-100|low|normal|high", callback=_priority)
@click.option("--reason", help="Why, for the task's history.")
def priority(task: str, priority: Any, reason: str | None) -> None:
    """Change TASK's PRIORITY; waiting tasks start in the new order."""
    changed = current_client().set_priority(task, priority, reason)
    click.echo(f"{changed.get('name')}: priority {changed.get('priority')}")


@task_group.command("promote")
@click.argument("task")
@click.option("--reason", help="Why, for the task's history.")
def promote(task: str, reason: str | None) -> None:
    """Move TASK out of the backlog: it waits in line like any pending task."""
    moved = current_client().promote(task, reason)
    _print_status(moved)
    if moved.get("message"):
        click.echo(f"It is {moved['message']}")


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


@task_group.command("retry")
@click.argument("task")
def retry(task: str) -> None:
    """Queue a failed or errored TASK again, at once, as its next attempt (its workspace
    and session are kept: the agent resumes)."""
    done = current_client().retry(task)
    click.echo(f"{done.get('name')}: attempt {done.get('attempt')}, {status_line(done)}")


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
