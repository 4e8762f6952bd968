"""`dockyard pool list` (the warm workspaces kept ready for presets with prebuilds) and
`dockyard capacity` (live workspaces against the server's limit, and who waits)."""

from __future__ import annotations

import click

from cli.client import JSON, current_client
from cli.options import output_option
from cli.render import cell, relative_time, render_table, short_version, to_json, truncate


@click.group("pool")
def pool_group() -> None:
    """Inspect warm pools (presets with `prebuilds: N`)."""


@pool_group.command("list")
@output_option
def list_pool(output: str) -> None:
    """List warm workspaces: ready ones are active and idle, waiting for a task."""
    reply = current_client().request("GET", "/pools")
    members = reply["members"]
    if output == "json":
        click.echo(to_json(members))
        return
    rows = [
        [
            cell(m.get("template")),
            cell(m.get("preset")),
            cell(m.get("name")),
            cell(m.get("status")),
            cell(m.get("state")),
            short_version(m.get("template_version")),
            relative_time(m.get("created_at")),
        ]
        for m in members
    ]
    click.echo(
        render_table(["TEMPLATE", "PRESET", "NAME", "STATUS", "STATE", "VERSION", "CREATED"], rows)
    )
    if reply.get("capacity"):
        click.echo(capacity_line(reply["capacity"]))


def capacity_line(capacity: JSON) -> str:
    """`capacity: 3 of 4 workspaces in use (1 warm); 2 tasks waiting`."""
    line = f"capacity: {capacity['summary']}"
    if capacity.get("pool"):
        line += f" ({capacity['pool']} warm)"
    waiting = capacity.get("waiting") or 0
    if waiting:
        line += f"; {waiting} task{'s' if waiting != 1 else ''} waiting"
    return line


@click.command("capacity")
@output_option
def capacity(output: str) -> None:
    """Show live workspaces against the server's limit, and the tasks waiting for a slot."""
    found = current_client().request("GET", "/capacity")
    if output == "json":
        click.echo(to_json(found))
        return
    click.echo(capacity_line(found))
    if found.get("draining"):
        click.echo("draining: nothing is admitted until `dockyard undrain`")
    if found.get("queue"):
        rows = [
            [
                str(place),
                cell(q.get("name")),
                cell(q.get("kind")),
                relative_time(q.get("waiting_since")),
                truncate(cell(q.get("message"))),
            ]
            for place, q in enumerate(found["queue"], start=1)
        ]
        click.echo(render_table(["#", "NAME", "KIND", "WAITING", "MESSAGE"], rows))
