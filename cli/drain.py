"""`dockyard drain` and `dockyard undrain`: the server's graceful shutdown (admins).

Drain stops admitting (new tasks are still accepted and wait), gives working tasks a
grace to go idle, then pauses every active task with its context; undrain resumes those
where they were. Both act on the server's stored state, shared by every server on its
database; `drain` waits (unless --no-wait) until nothing runs any more.
"""

from __future__ import annotations

import time

import click

from cli.client import JSON, CliError, current_client
from cli.options import output_option
from cli.render import to_json

POLL_S = 0.5


def drain_line(drain: JSON) -> str:
    """`draining since ...: 2 active, 1 starting, 3 paused by the drain`."""
    if not drain.get("draining"):
        return "not draining: tasks are admitted"
    parts = [
        f"{drain.get('active', 0)} active",
        f"{drain.get('initializing', 0)} starting",
        f"{drain.get('paused_by_drain', 0)} paused by the drain",
    ]
    state = "drained" if drain.get("done") else "draining"
    return f"{state} (by {drain.get('by')}, since {drain.get('since')}): {', '.join(parts)}"


@click.command("drain")
@click.option(
    "--grace",
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="How long working tasks may take to go idle before they are paused anyway.",
)
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting until drained.")
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait at most."
)
@output_option
def drain(grace: str, no_wait: bool, timeout: float, output: str) -> None:
    """Stop admitting tasks and pause every active one (its context kept) after GRACE.

    New tasks are still accepted: they wait as pending until `dockyard undrain`.
    """
    client = current_client()
    state: JSON = client.request("POST", "/drain", json={"grace": grace})
    deadline = time.monotonic() + timeout
    last = ""
    while not no_wait and not state.get("done"):
        if output != "json" and drain_line(state) != last:
            last = drain_line(state)
            click.echo(last)
        if time.monotonic() > deadline:
            raise CliError(
                f"still draining after {timeout:g}s: {drain_line(state)}",
                hint="see it with: dockyard capacity (or run dockyard drain again)",
            )
        time.sleep(POLL_S)
        state = client.health()["drain"]
    if output == "json":
        click.echo(to_json(state))
        return
    click.echo(drain_line(state))
    if state.get("done"):
        click.echo("Nothing runs now; new tasks wait until: dockyard undrain")


@click.command("undrain")
@output_option
def undrain(output: str) -> None:
    """Admit tasks again and resume the ones the drain paused, where they were."""
    state: JSON = current_client().request("POST", "/undrain")
    if output == "json":
        click.echo(to_json(state))
        return
    names = [str(t.get("name")) for t in state.get("resumed") or []]
    click.echo(f"undrained: resumed {len(names)} task{'s' if len(names) != 1 else ''}")
    for name in names:
        click.echo(f"  {name}")
