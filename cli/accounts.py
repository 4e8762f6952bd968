"""`dockyard login|logout|whoami`, `dockyard user ...`, `dockyard token ...`, `dockyard audit`."""

from __future__ import annotations

import click

from cli.client import Client, CliError, current_client
from cli.credentials import credentials_path, forget_login, store_login
from cli.options import output_option
from cli.render import cell, relative_time, render_table, to_json


@click.command("login")
@click.argument("url")
@click.option("--token", help="The API token [default: asked for, not echoed].")
def login(url: str, token: str | None) -> None:
    """Check a token against the server at URL and keep it for later commands."""
    if token is None:
        token = click.prompt("API token", hide_input=True).strip()
    client = Client(url, token=token)
    try:
        me = client.me()
    finally:
        client.close()
    path = store_login(url, token)
    click.echo(f"Logged in to {url.rstrip('/')} as {me['user']} ({me['role']}); token in {path}")


@click.command("logout")
@click.argument("url")
def logout(url: str) -> None:
    """Forget the token stored for URL."""
    if not forget_login(url):
        raise CliError(f"no token is stored for {url} in {credentials_path()}")
    click.echo(f"Forgot the token of {url.rstrip('/')}")


@click.command("whoami")
def whoami() -> None:
    """Show the user the token belongs to."""
    me = current_client().me()
    click.echo(f"{me['user']} ({me['role']}), token {me['token_id']}")


@click.group("user")
def user_group() -> None:
    """Manage users (admins)."""


@user_group.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "member", "metrics"]),
    default="member",
    show_default=True,
    help="metrics: a token that reads GET /metrics only (for Prometheus)",
)
def create_user(name: str, role: str) -> None:
    """Add a user; give them a token with: dockyard token create --user NAME."""
    user = current_client().create_user(name, role)
    click.echo(f"Created user {user['name']} ({user['role']})")


@user_group.command("list")
@output_option
def list_users(output: str) -> None:
    """List users."""
    users = current_client().list_users()
    if output == "json":
        click.echo(to_json(users))
        return
    rows = [[cell(u["name"]), cell(u["role"]), relative_time(u["created_at"])] for u in users]
    click.echo(render_table(["NAME", "ROLE", "CREATED"], rows))


@user_group.command("remove")
@click.argument("name")
def remove_user(name: str) -> None:
    """Remove a user and revoke their tokens (their tasks stay)."""
    current_client().remove_user(name)
    click.echo(f"Removed user {name}")


@click.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--expires", metavar="DURATION", help="Lifetime: 30d, 12h, 90m, 2w [default: never].")
@click.option("--user", metavar="USER", help="For another user (admins).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the token.")
def create_token(name: str, expires: str | None, user: str | None, quiet: bool) -> None:
    """Make a token; it is printed this once and never shown again."""
    reply = current_client().create_token(name, expires, user)
    if quiet:
        click.echo(reply["token"])
        return
    until = reply.get("expires_at") or "never"
    click.echo(f"Token {reply['id']} for {reply['user']} (expires: {until}):")
    click.echo(reply["token"])
    click.echo("It is not shown again. Use it with: dockyard login URL, or DOCKYARD_TOKEN.")


@token_group.command("list")
@click.option("-a", "--all", "all_users", is_flag=True, help="Every user's tokens (admins).")
@output_option
def list_tokens(all_users: bool, output: str) -> None:
    """List tokens (never the tokens themselves)."""
    tokens = current_client().list_tokens(all_users)
    if output == "json":
        click.echo(to_json(tokens))
        return
    rows = [
        [
            cell(t["id"]),
            cell(t["user"]),
            cell(t["name"]),
            relative_time(t["created_at"]),
            cell(t.get("expires_at") or "never"),
            "revoked" if t.get("revoked_at") else relative_time(t.get("last_used_at")),
        ]
        for t in tokens
    ]
    click.echo(render_table(["ID", "USER", "NAME", "CREATED", "EXPIRES", "LAST USED"], rows))


@token_group.command("revoke")
@click.argument("token_id")
def revoke_token(token_id: str) -> None:
    """Revoke a token by its id (see: dockyard token list)."""
    record = current_client().revoke_token(token_id)
    click.echo(f"Revoked token {record['id']} of {record['user']}")


@click.command("audit")
@click.option("--after", type=int, default=0, help="Only entries after this id.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@output_option
def audit(after: int, limit: int, output: str) -> None:
    """Show authentication failures and admin acts (admins)."""
    entries = current_client().audit(after, limit)
    if output == "json":
        click.echo(to_json(entries))
        return
    rows = [
        [
            cell(e["id"]),
            cell(e["time"]),
            cell(e["actor"]),
            cell(e["action"]),
            cell(e["target"]),
            cell(e["detail"])[:60],
            cell(e["remote"]),
        ]
        for e in entries
    ]
    click.echo(render_table(["ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL", "FROM"], rows))
