"""`dockyard task claim|renew|start` and `dockyard worker register|list|heartbeat|next`:
workers that claim queue-only tasks (the tasks of a target with `workers: true`)."""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import quote

import click

from cli.client import JSON, current_client
from cli.options import output_option
from cli.render import render_table, status_line, to_json


def default_session() -> str:
    """A session name for this process when none is given: `cli-HOST-PID`."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:64]
    return f"cli-{host or 'host'}-{os.getpid()}"


session_option = click.option(
    "--session", help="The session holding the claim (default: cli-HOST-PID)."
)
lease_option = click.option(
    "--lease", "lease_s", type=float, help="Seconds the claim lasts unless renewed (default 300)."
)


def _claimed(task: JSON, output: str) -> None:
    if output == "json":
        click.echo(to_json(task))
        return
    click.echo(f"{task.get('name')}: {status_line(task)}")
    click.echo(
        f"claimed by {task.get('claimed_by')} (session {task.get('session_id')}) "
        f"until {task.get('claim_until')}"
    )
    if task.get("prompt"):
        click.echo(f"prompt: {task['prompt']}")


@click.command("claim")
@click.argument("task")
@session_option
@lease_option
@output_option
def claim(task: str, session: str | None, lease_s: float | None, output: str) -> None:
    """Claim TASK, a queue-only task: do its work, then `dockyard task complete`."""
    _claimed(current_client().claim(task, session or default_session(), lease_s), output)


@click.command("renew")
@click.argument("task")
@session_option
@lease_option
@output_option
def renew(task: str, session: str | None, lease_s: float | None, output: str) -> None:
    """Extend the lease of your claim on TASK."""
    _claimed(current_client().renew_claim(task, session or default_session(), lease_s), output)


@click.command("start")
@click.argument("task")
@session_option
@output_option
def start(task: str, session: str | None, output: str) -> None:
    """Mark the TASK you claimed as started (active, working)."""
    _claimed(current_client().start_claimed(task, session or default_session()), output)


@click.command("accept")
@click.argument("task")
@session_option
@lease_option
@output_option
def accept(task: str, session: str | None, lease_s: float | None, output: str) -> None:
    """Accept TASK, offered to one of your workers: it becomes claimed by your session."""
    _claimed(current_client().accept_offer(task, session or default_session(), lease_s), output)


@click.command("reject")
@click.argument("task")
@click.option("--reason", help="Why, for the task's history.")
def reject(task: str, reason: str | None) -> None:
    """Decline TASK, offered to one of your workers: any worker may claim it then."""
    back = current_client().reject_offer(task, reason)
    click.echo(f"{back.get('name')}: {status_line(back)} ({back.get('message')})")


@click.group("worker")
def worker_group() -> None:
    """Workers: named programs that claim queue-only tasks by codebase."""


def _worker_rows(workers: list[dict[str, Any]]) -> str:
    rows = [
        [
            w["name"],
            w["owner"],
            ",".join(w["codebases"]) or "-",
            ",".join(w["targets"]) or "(all)",
            "alive" if w["alive"] else "dead",
            w["last_seen"],
        ]
        for w in workers
    ]
    return render_table(["NAME", "OWNER", "CODEBASES", "TARGETS", "LIVENESS", "LAST SEEN"], rows)


@worker_group.command("register")
@click.argument("name")
@click.option("--codebase", "codebases", multiple=True, help="A codebase it serves (repeatable).")
@click.option("--target", "targets", multiple=True, help="A workers target (repeatable).")
@output_option
def register(name: str, codebases: tuple[str, ...], targets: tuple[str, ...], output: str) -> None:
    """Register worker NAME (or update yours) with the codebases and targets it serves."""
    body = {"name": name, "codebases": list(codebases), "targets": list(targets)}
    worker: JSON = current_client().request("POST", "/workers", json=body)
    click.echo(to_json(worker) if output == "json" else _worker_rows([worker]))


@worker_group.command("list")
@output_option
def list_workers(output: str) -> None:
    """Your workers (an admin: everyone's), alive or dead."""
    found: JSON = current_client().request("GET", "/workers")
    click.echo(to_json(found) if output == "json" else _worker_rows(found["workers"]))


@worker_group.command("heartbeat")
@click.argument("name")
def heartbeat(name: str) -> None:
    """Tell the server worker NAME is alive."""
    worker: JSON = current_client().request("POST", f"/workers/{quote(name, safe='')}/heartbeat")
    click.echo(f"{worker['name']}: alive as of {worker['last_seen']}")


@worker_group.command("next")
@click.argument("name")
@session_option
@lease_option
@output_option
def claim_next(name: str, session: str | None, lease_s: float | None, output: str) -> None:
    """Claim the best waiting task worker NAME serves (nothing when none waits)."""
    body = {"session_id": session or default_session(), "lease_s": lease_s}
    got: JSON = current_client().request("POST", f"/workers/{quote(name, safe='')}/next", json=body)
    if got.get("task") is None:
        click.echo(to_json(got) if output == "json" else "nothing to claim")
        return
    _claimed(got["task"], output)
