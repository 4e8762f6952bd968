"""`dockyard cost`: what tasks cost (tokens and dollars), totalled and grouped."""

from __future__ import annotations

import click

from cli.client import JSON, current_client
from cli.options import output_option
from cli.render import cell, render_table, to_json, truncate

GROUPINGS = ("template", "owner", "model", "target", "day")


def dollars(value: object) -> str:
    """`$12.34`; small sums keep their cents' fractions (`$0.0042`)."""
    amount = float(value or 0)  # type: ignore[arg-type]
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


def _row(key: str, sums: JSON) -> list[str]:
    return [
        key,
        str(sums.get("tasks", 0)),
        f"{int(sums.get('tokens_in') or 0):,}",
        f"{int(sums.get('tokens_out') or 0):,}",
        dollars(sums.get("cost_usd")),
    ]


def cost_table(found: JSON) -> str:
    """One row per group, then the total."""
    first = str(found.get("by") or "all").upper()
    rows = [_row(truncate(cell(g.get("key")), 60), g) for g in found.get("groups") or []]
    rows.append(_row("total", found.get("total") or {}))
    return render_table([first, "TASKS", "TOKENS IN", "TOKENS OUT", "COST"], rows)


@click.command("cost")
@click.option("--by", type=click.Choice(GROUPINGS), help="Group the totals.")
@click.option(
    "--since", metavar="7d|2026-11-01", help="Only tasks created since a span ago or a date."
)
@output_option
def cost(by: str | None, since: str | None, output: str) -> None:
    """Show what tasks cost: tasks, tokens in and out, dollars (your own; admins: all).

    A task's figures are summed over its turns and attempts; dollars are what agents
    reported, or priced from the server's `pricing:` table when they gave tokens only.
    """
    found = current_client().cost(by=by, since=since)
    if output == "json":
        click.echo(to_json(found))
        return
    click.echo(cost_table(found))
    scope = found.get("scope")
    since_note = f" created since {found['since']}" if found.get("since") else ""
    click.echo(f"tasks of {'every user' if scope == 'all' else scope}{since_note}")
