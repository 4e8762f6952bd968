"""`dockyard webhook add|list|remove|deliveries`: notifications out to your own receivers."""

from __future__ import annotations

import click

from cli.client import current_client
from cli.options import output_option
from cli.render import cell, relative_time, render_table, to_json


@click.group("webhook")
def webhook_group() -> None:
    """Send task events to an HTTP receiver (signed JSON POSTs; see docs/webhooks.md)."""


@webhook_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    required=True,
    metavar="NAMES",
    help="Comma-separated, e.g. status,state,input_required,completed (docs/webhooks.md).",
)
@click.option("--secret", help="Signing secret (16+ characters) [default: one is made].")
@click.option("--task", "task", metavar="TASK", help="Only this task's events.")
@click.option("--all", "all_tasks", is_flag=True, help="Every user's tasks (admins).")
@output_option
def add_webhook(
    url: str, events: str, secret: str | None, task: str | None, all_tasks: bool, output: str
) -> None:
    """Subscribe URL to your tasks' events."""
    hook = current_client().add_webhook(url, events.split(","), secret, task, all_tasks)
    if output == "json":
        click.echo(to_json(hook))
        return
    click.echo(f"Webhook {hook['id']}: {', '.join(hook['events'])} -> {hook['url']}")
    if hook.get("secret"):
        click.echo(f"Signing secret (not shown again): {hook['secret']}")


def _scope(hook: dict[str, object]) -> str:
    if hook.get("task_id"):
        return f"task {str(hook['task_id'])[:8]}"
    return "all tasks" if hook.get("all") else "own tasks"


@webhook_group.command("list")
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's webhooks (admins).")
@output_option
def list_webhooks(all_users: bool, output: str) -> None:
    """List webhooks (never their secrets)."""
    hooks = current_client().list_webhooks(all_users)
    if output == "json":
        click.echo(to_json(hooks))
        return
    rows = [
        [
            cell(h["id"]),
            cell(h["owner"]),
            cell(h["url"]),
            cell(",".join(h["events"])),
            _scope(h),
            relative_time(h["created_at"]),
        ]
        for h in hooks
    ]
    click.echo(render_table(["ID", "OWNER", "URL", "EVENTS", "SCOPE", "CREATED"], rows))


@webhook_group.command("remove")
@click.argument("webhook_id")
def remove_webhook(webhook_id: str) -> None:
    """Remove a webhook; what it has not sent yet is dropped."""
    hook = current_client().remove_webhook(webhook_id)
    click.echo(f"Removed webhook {hook['id']} ({hook['url']})")


@webhook_group.command("deliveries")
@click.argument("webhook_id", required=False)
@click.option("--failed", is_flag=True, help="Only failed ones, and failing ones still retried.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@output_option
def deliveries(webhook_id: str | None, failed: bool, limit: int, output: str) -> None:
    """Recent deliveries (newest first) of one webhook or all of yours (your tasks'
    A2A push notifications too, webhook id a2a-...), with attempts."""
    found = current_client().webhook_deliveries(webhook_id, failed, limit)
    if output == "json":
        click.echo(to_json(found))
        return
    rows = [
        [
            cell(d["id"]),
            cell(d["event"]),
            cell(d["task_id"][:8]),
            cell(d["state"]),
            cell(d["attempts"]),
            cell(d.get("last_status")),
            relative_time(d["updated_at"]),
            cell(d.get("last_error"))[:60],
        ]
        for d in found
    ]
    headers = ["ID", "EVENT", "TASK", "STATE", "ATTEMPTS", "HTTP", "UPDATED", "ERROR"]
    click.echo(render_table(headers, rows))
