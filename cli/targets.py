"""`dockyard target list`: the named routes of the server's config, with their load."""

from __future__ import annotations

import click

from cli.client import current_client
from cli.options import output_option
from cli.render import cell, render_table, to_json


@click.group("target")
def target_group() -> None:
    """Inspect targets: named routes of the server's config (template, limit, codebases)."""


@target_group.command("list")
@output_option
def list_targets(output: str) -> None:
    """List targets with their running and waiting tasks."""
    reply = current_client().request("GET", "/targets")
    if output == "json":
        click.echo(to_json(reply))
        return
    if not reply["targets"]:
        click.echo("no targets: name routes under targets: in the server's config.yaml")
    rows = [
        [
            cell(t.get("name")),
            "/".join(p for p in (t.get("template"), t.get("preset")) if p)
            or ("(workers)" if t.get("workers") else ""),
            "-" if t.get("max_concurrent") is None else str(t["max_concurrent"]),
            str(t.get("running", 0)),
            str(t.get("waiting", 0)),
            ",".join(t.get("codebases") or []) or "-",
        ]
        for t in reply["targets"]
    ]
    if rows:
        headers = ["TARGET", "RUNS", "LIMIT", "RUNNING", "WAITING", "CODEBASES"]
        click.echo(render_table(headers, rows))
    for lost in reply.get("unserved") or []:
        click.echo(
            f"{lost['waiting']} task{'s' if lost['waiting'] != 1 else ''} wait for codebase "
            f"{lost['codebase']}, which no target serves"
        )
