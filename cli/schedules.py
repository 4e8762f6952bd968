"""`dockyard schedule ...` (cron) and `dockyard trigger ...` (inbound webhooks): tasks
made by the server at fire times, or when a signed delivery arrives. See
docs/schedules-and-triggers.md."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import click

from cli.client import JSON, current_client
from cli.options import output_option
from cli.render import cell, relative_time, render_table, to_json
from cli.tasks import parse_params


def _seg(value: str) -> str:
    return quote(value, safe="")


def _params(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> JSON:
    try:
        return parse_params(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def _recipe_options(f: Any) -> Any:
    """--template, --preset, --param, --target: what each task is made from, given to the
    command as one `recipe` argument, the request body's fields of the same names."""

    @functools.wraps(f)
    def command(**kwargs: Any) -> Any:
        recipe = {
            "template": kwargs.pop("template"),
            "preset": kwargs.pop("preset"),
            "parameters": kwargs.pop("params"),
            "target": kwargs.pop("target"),
        }
        return f(recipe=recipe, **kwargs)

    for option in reversed(
        [
            click.option("-t", "--template", help="Template of each task."),
            click.option("-p", "--preset", help="Preset (default: the template's)."),
            click.option(
                "--param",
                "params",
                multiple=True,
                metavar="K=V",
                callback=_params,
                help="A parameter value (repeatable). Not for secrets: they are stored; "
                "give those in the server's secrets.",
            ),
            click.option("--target", help="A named route of the server instead of a template."),
        ]
    ):
        command = option(command)
    return command


def _listing(kind: str, all_users: bool) -> list[JSON]:
    """GET /schedules or /triggers: the caller's, or with -a every user's."""
    params = {"all": "true" if all_users else None}
    found: list[JSON] = current_client().request("GET", f"/{kind}", params=params)[kind]
    return found


def _delete(kind: str, name: str) -> None:
    current_client().request("DELETE", f"/{kind}s/{_seg(name)}")
    click.echo(f"Deleted {kind} {name}")


# --- schedules ----------------------------------------------------------------------------


@click.group("schedule")
def schedule_group() -> None:
    """Make a task at cron times (see docs/schedules-and-triggers.md)."""


@schedule_group.command("create")
@click.argument("name")
@click.argument("prompt")
@click.option("--cron", required=True, help='e.g. "0 9 * * 1-5"; a 6th field is seconds.')
@click.option("--timezone", default="UTC", show_default=True, help="IANA name.")
@_recipe_options
@click.option(
    "--catch-up",
    type=click.Choice(["once", "skip"]),
    default="once",
    show_default=True,
    help="Fire times missed while no server ran: run once, or skip them.",
)
@click.option(
    "--concurrency",
    type=click.Choice(["allow", "skip", "queue"]),
    default="skip",
    show_default=True,
    help="A fire time while the last run still works: run anyway, skip, or run after it.",
)
@output_option
def create_schedule(
    name: str,
    prompt: str,
    cron: str,
    timezone: str,
    recipe: JSON,
    catch_up: str,
    concurrency: str,
    output: str,
) -> None:
    """Create schedule NAME that makes a task with PROMPT at each cron time."""
    body = {
        "name": name,
        "cron": cron,
        "timezone": timezone,
        **recipe,
        "prompt": prompt,
        "catch_up": catch_up,
        "concurrency": concurrency,
    }
    made = current_client().request("POST", "/schedules", json=body)
    if output == "json":
        click.echo(to_json(made))
        return
    click.echo(f"Schedule {made['name']}: {made['cron']} ({made['timezone']})")
    click.echo("Next runs: " + (", ".join(made["next_runs"]) or "none"))


def _schedule_rows(schedules: Iterable[JSON]) -> list[list[str]]:
    return [
        [
            cell(s["name"]),
            cell(s["owner"]),
            cell(s["cron"]),
            cell(s["timezone"]),
            "paused" if s["paused"] else "active",
            cell(s["template"] or f"target {s['target']}"),
            cell(s["concurrency"]),
            cell(s["next_runs"][0] if s["next_runs"] else None),
        ]
        for s in schedules
    ]


@schedule_group.command("list")
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's (admins).")
@output_option
def list_schedules(all_users: bool, output: str) -> None:
    """List schedules with their next run."""
    found = _listing("schedules", all_users)
    if output == "json":
        click.echo(to_json(found))
        return
    headers = ["NAME", "OWNER", "CRON", "TIMEZONE", "STATE", "TEMPLATE", "OVERLAP", "NEXT RUN"]
    click.echo(render_table(headers, _schedule_rows(found)))


@schedule_group.command("show")
@click.argument("name")
@output_option
def show_schedule(name: str, output: str) -> None:
    """A schedule, its next runs and its latest fire times."""
    found = current_client().request("GET", f"/schedules/{_seg(name)}")
    if output == "json":
        click.echo(to_json(found))
        return
    for key in ("name", "owner", "cron", "timezone", "template", "preset", "target"):
        click.echo(f"{key}: {cell(found[key])}")
    click.echo(f"catch up: {found['catch_up']}  concurrency: {found['concurrency']}")
    click.echo(f"state: {'paused' if found['paused'] else 'active'}")
    click.echo("next runs: " + (", ".join(found["next_runs"]) or "none"))
    click.echo(f"prompt: {found['prompt']}")
    rows = [
        [cell(f["fire_at"]), cell(f["state"]), cell(f["task_id"]), cell(f["reason"])]
        for f in found["fires"]
    ]
    if rows:
        click.echo(render_table(["FIRE TIME", "STATE", "TASK", "WHY"], rows))


def _act(name: str, action: str) -> JSON:
    result: JSON = current_client().request("POST", f"/schedules/{_seg(name)}/{action}")
    return result


@schedule_group.command("pause")
@click.argument("name")
def pause_schedule(name: str) -> None:
    """Stop making tasks (fire times while paused are not owed later)."""
    _act(name, "pause")
    click.echo(f"Paused schedule {name}")


@schedule_group.command("resume")
@click.argument("name")
def resume_schedule(name: str) -> None:
    """Make tasks again, from the next fire time."""
    found = _act(name, "resume")
    click.echo(f"Resumed schedule {name}; next run {cell((found['next_runs'] or [None])[0])}")


@schedule_group.command("delete")
@click.argument("name")
def delete_schedule(name: str) -> None:
    """Delete a schedule (the tasks it made stay)."""
    _delete("schedule", name)


@schedule_group.command("run-now")
@click.argument("name")
def run_now(name: str) -> None:
    """Make one run now, whatever the cron times and runs under way."""
    task = _act(name, "run")
    click.echo(f"Created task {task['name']} ({task['id']}) from schedule {name}")


# --- triggers -----------------------------------------------------------------------------


@click.group("trigger")
def trigger_group() -> None:
    """Make a task when a signed webhook arrives (see docs/schedules-and-triggers.md)."""


@trigger_group.command("create")
@click.argument("name")
@click.option("--secret", help="Signing secret shared with the sender [default: one is made].")
@click.option(
    "--form",
    type=click.Choice(["generic", "github-issue", "github-comment"]),
    default="generic",
    show_default=True,
    help="A ready-made prompt template and filter.",
)
@_recipe_options
@click.option("--prompt-template", help="Jinja over payload, event, delivery (form's if absent).")
@click.option(
    "--filter", "filter_text", help="A Jinja expression; deliveries where false are filtered."
)
@output_option
def create_trigger(
    name: str,
    secret: str | None,
    form: str,
    recipe: JSON,
    prompt_template: str | None,
    filter_text: str | None,
    output: str,
) -> None:
    """Create trigger NAME: POST /api/v2/triggers/NAME makes a task."""
    client = current_client()
    body = {
        "name": name,
        "secret": secret,
        "form": form,
        **recipe,
        "prompt_template": prompt_template,
        "filter": filter_text,
    }
    made = client.request("POST", "/triggers", json=body)
    if output == "json":
        click.echo(to_json(made))
        return
    click.echo(f"Trigger {made['name']}: POST {client.base_url}{made['path']}")
    if made.get("secret"):
        click.echo(f"Signing secret (not shown again): {made['secret']}")


@trigger_group.command("list")
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's (admins).")
@output_option
def list_triggers(all_users: bool, output: str) -> None:
    """List triggers (never their secrets)."""
    found = _listing("triggers", all_users)
    if output == "json":
        click.echo(to_json(found))
        return
    rows = [
        [
            cell(t["name"]),
            cell(t["owner"]),
            cell(t["form"]),
            cell(t["template"] or f"target {t['target']}"),
            relative_time(t["created_at"]),
        ]
        for t in found
    ]
    click.echo(render_table(["NAME", "OWNER", "FORM", "TEMPLATE", "CREATED"], rows))


@trigger_group.command("show")
@click.argument("name")
@output_option
def show_trigger(name: str, output: str) -> None:
    """A trigger: its prompt template and filter."""
    found = current_client().request("GET", f"/triggers/{_seg(name)}")
    if output == "json":
        click.echo(to_json(found))
        return
    for key in ("name", "owner", "form", "template", "preset", "target", "filter"):
        click.echo(f"{key}: {cell(found[key])}")
    click.echo(f"prompt template: {found['prompt_template']}")


@trigger_group.command("delete")
@click.argument("name")
def delete_trigger(name: str) -> None:
    """Delete a trigger: its URL answers 404 from now on."""
    _delete("trigger", name)


@trigger_group.command("deliveries")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@output_option
def trigger_deliveries(name: str, limit: int, output: str) -> None:
    """What became of the latest deliveries: accepted, filtered, replayed, rejected, and
    limited (a flood of badly signed ones, summed up in one row)."""
    found = current_client().request(
        "GET", f"/triggers/{_seg(name)}/deliveries", params={"limit": limit}
    )["deliveries"]
    if output == "json":
        click.echo(to_json(found))
        return
    rows = [
        [
            relative_time(d["time"]),
            cell(d["outcome"]),
            cell(d["event"]),
            cell(d["delivery_id"]),
            cell(d["task_id"]),
            cell(d["reason"]),
        ]
        for d in found
    ]
    click.echo(render_table(["WHEN", "OUTCOME", "EVENT", "DELIVERY", "TASK", "WHY"], rows))
