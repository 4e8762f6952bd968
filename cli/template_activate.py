"""`dockyard template activate NAME VERSION`: make a stored version the one new tasks get.

Kept apart from cli/catalog.py (loaded lazily by the template group) so the read-only
catalog commands stay as they are.
"""

from __future__ import annotations

import click

from cli.client import ApiError, CliError, current_client
from cli.options import output_option
from cli.render import to_json


@click.command("activate")
@click.argument("name")
@click.argument("version")
@output_option
def activate(name: str, version: str, output: str) -> None:
    """Make VERSION of template NAME the active one (admins): new tasks get it, running
    tasks keep the version they pinned. VERSION: a hash, a unique prefix of one, or a
    label, as `dockyard template versions NAME` lists them."""
    if not version.strip():
        raise CliError(
            "Give the version to activate: a hash, a unique prefix of one, or a label",
            hint=f"list them with: dockyard template versions {name}",
        )
    client = current_client()
    # Read first: an unknown template is a 404 naming the known ones, and the version that
    # was active is shown, so going back is one command.
    before = next((v for v in client.template_versions(name) if v.get("active")), None)
    try:
        activated = client.activate_template(name, version)
    except ApiError as exc:
        if exc.status_code == 403:
            exc.hint = (
                "only an admin may activate a template version; ask one to run: "
                f"dockyard template activate {name} {version}"
            )
        raise
    if output == "json":
        click.echo(to_json(activated))
        return
    now = str(activated["version"])
    label = f" ({activated['label']})" if activated.get("label") else ""
    was = str(before["version"]) if before else None
    if activated.get("already", was == now):
        click.echo(f"Template {activated['name']} version {now}{label} is active (it already was)")
        return
    click.echo(f"Activated template {activated['name']} version {now}{label}")
    click.echo("New tasks get it; running tasks keep the version they were created from.")
    if was:
        click.echo(f"It replaces version {was}: dockyard template activate {name} {was} goes back.")
