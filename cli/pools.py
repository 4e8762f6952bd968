"""`dockyard pool list`: the warm workspaces kept ready for presets with prebuilds."""

from __future__ import annotations

import click

from cli.client import current_client
from cli.options import output_option
from cli.render import cell, relative_time, render_table, short_version, to_json


@click.group("pool")
def pool_group() -> None:
    """Inspect warm pools (presets with `prebuilds: N`)."""


@pool_group.command("list")
@output_option
def list_pool(output: str) -> None:
    """List warm workspaces: ready ones are active and idle, waiting for a task."""
    members = current_client().request("GET", "/pools")["members"]
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
