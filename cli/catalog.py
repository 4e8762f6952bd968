"""`dockyard template ...` and `dockyard preset ...`: what tasks can be created from."""

from __future__ import annotations

from pathlib import Path

import click

from cli.client import CliError, current_client
from cli.lazy import lazy_group
from cli.options import output_option
from cli.render import presets_table, render_table, template_text, templates_table, to_json

# commands in modules of their own, imported when used
TEMPLATE_COMMANDS = {"activate": "cli.template_activate:activate"}


@click.group("template", cls=lazy_group(TEMPLATE_COMMANDS))
def template_group() -> None:
    """Inspect, validate, push and activate templates."""


@template_group.command("list")
@output_option
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


@template_group.command("versions")
@click.argument("name")
@output_option
def template_versions(name: str, output: str) -> None:
    """List a template's versions (stored ones, and its folder on disk); `*` marks the
    active one, which `dockyard template activate` changes."""
    versions = current_client().template_versions(name)
    if output == "json":
        click.echo(to_json(versions))
        return
    rows = [
        [
            ("* " if v.get("active") else "  ") + str(v["version"]),
            v.get("label") or "-",
            "pushed" if v.get("pushed") else "on disk",
            v.get("created_at") or "-",
        ]
        for v in versions
    ]
    click.echo(render_table(["VERSION", "LABEL", "SOURCE", "STORED"], rows))


@template_group.command("validate")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def validate(folder: Path) -> None:
    """Check a template folder: schema, every preset rendered; builds nothing."""
    from provisioner.errors import TemplateError
    from provisioner.templating.validate import validate_template

    try:
        report = validate_template(folder)
    except TemplateError as exc:
        raise CliError(str(exc)) from exc
    tpl = report.template
    for line in report.errors:
        click.echo(f"error: {line}", err=True)
    if not report.ok:
        raise click.exceptions.Exit(1)
    rendered = ", ".join(report.rendered) or "none"
    click.echo(f"ok: template {tpl.name} version {tpl.version}; presets rendered: {rendered}")


@template_group.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--label", help="A human label for this version (e.g. v2).")
def push(folder: Path, label: str | None) -> None:
    """Validate FOLDER and register it with the server as the template's active version."""
    from provisioner.errors import TemplateError
    from provisioner.templating.push import pack_folder

    try:
        archive = pack_folder(folder)
    except TemplateError as exc:
        raise CliError(str(exc)) from exc
    pushed = current_client().push_template(archive, label)
    suffix = f" ({pushed['label']})" if pushed.get("label") else ""
    click.echo(f"Pushed template {pushed['name']} version {pushed['version']}{suffix}")


@template_group.command("delete")
@click.argument("name")
@click.option("--version", help="Only this version (hash, prefix or label).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, version: str | None, yes: bool) -> None:
    """Delete the stored versions of template NAME (a folder on disk stays); refused while
    a live task uses one."""
    if not yes:
        what = f"version {version} of template {name}" if version else f"every version of {name}"
        click.confirm(f"Delete {what}?", abort=True)
    deleted = current_client().delete_template(name, version)
    click.echo(f"Deleted template {name} version(s): {', '.join(deleted)}")


@click.group("preset")
def preset_group() -> None:
    """Inspect presets (named sets of parameter values)."""


@preset_group.command("show")
@click.argument("template")
@click.argument("preset")
@output_option
def show_preset(template: str, preset: str, output: str) -> None:
    """Show one preset's parameter values."""
    presets = current_client().list_presets(template)
    found = [p for p in presets if str(p["name"]).lower() == preset.lower()]
    if not found:
        known = ", ".join(str(p["name"]) for p in presets) or "none"
        raise CliError(f"Template {template!r} has no preset {preset!r} (presets: {known})")
    click.echo(to_json(found[0]) if output == "json" else presets_table(found))


@preset_group.command("list")
@click.option("-t", "--template", help="Only the presets of this template.")
@output_option
def list_presets(template: str | None, output: str) -> None:
    """List presets."""
    presets = current_client().list_presets(template)
    click.echo(to_json(presets) if output == "json" else presets_table(presets))
