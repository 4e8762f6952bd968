"""`dockyard template ...` and `dockyard preset ...`: what tasks can be created from."""

from __future__ import annotations

import click

from cli.client import current_client
from cli.render import presets_table, template_text, templates_table, to_json

table_or_json = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Table for people, JSON for scripts.",
)


@click.group("template")
def template_group() -> None:
    """Inspect templates."""


@template_group.command("list")
@table_or_json
def list_templates(output: str) -> None:
    """List templates."""
    templates = current_client().list_templates()
    click.echo(to_json(templates) if output == "json" else templates_table(templates))


@template_group.command("show")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)
def show_template(name: str, output: str) -> None:
    """Show a template, its presets and its parameters."""
    template = current_client().get_template(name)
    click.echo(to_json(template) if output == "json" else template_text(template))


@click.group("preset")
def preset_group() -> None:
    """Inspect presets (named sets of parameter values)."""


@preset_group.command("list")
@click.option("-t", "--template", help="Only the presets of this template.")
@table_or_json
def list_presets(template: str | None, output: str) -> None:
    """List presets."""
    presets = current_client().list_presets(template)
    click.echo(to_json(presets) if output == "json" else presets_table(presets))
