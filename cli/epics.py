"""`dockyard epic status NAME`: an epic's tasks in sprint order, its progress and cost."""

from __future__ import annotations

import click

from cli.client import JSON, current_client
from cli.options import output_option
from cli.render import cell, render_table, to_json, truncate


@click.group("epic")
def epic_group() -> None:
    """Follow epics: the tasks created with --epic NAME."""


def epic_text(epic: JSON) -> str:
    """The tasks table, then `progress: 2 of 5 completed` and the summed cost."""
    rows = [
        [
            cell(t.get("name")),
            cell(t.get("status")),
            str(t.get("priority")),
            cell(t.get("action")),
            cell(t.get("depends_on")),
            truncate(cell(t.get("progress")), 50),
        ]
        for t in epic.get("tasks") or []
    ]
    table = render_table(["NAME", "STATUS", "PRI", "ACTION", "AFTER", "PROGRESS"], rows)
    cost = (
        f"cost: {epic.get('tokens_in') or 0} tokens in, {epic.get('tokens_out') or 0} out, "
        f"${float(epic.get('cost_usd') or 0):.4f}"
    )
    return f"{table}\nprogress: {epic.get('progress')}\n{cost}"


@epic_group.command("status")
@click.argument("name")
@output_option
def status(name: str, output: str) -> None:
    """Show epic NAME: its tasks in the order they run, progress and total cost."""
    found = current_client().epic(name)
    click.echo(to_json(found) if output == "json" else epic_text(found))
