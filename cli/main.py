"""The `dockyard` root command: global options, the command groups and `dockyard server`."""

from __future__ import annotations

from pathlib import Path

import click

from cli import __version__
from cli.accounts import audit, login, logout, token_group, user_group, whoami
from cli.catalog import preset_group, template_group
from cli.client import ClientSource, CliError
from cli.credentials import connect
from cli.pools import capacity, pool_group
from cli.tasks import task_group
from provisioner.errors import DockyardError


@click.group("dockyard", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dockyard")
@click.option(
    "--url",
    envvar="DOCKYARD_URL",
    metavar="URL",
    help="Server to use [env: DOCKYARD_URL; default: the local server, started if needed].",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """Run coding agents in Docker workspaces, one per task."""
    ctx.obj = ClientSource(lambda: connect(url))


cli.add_command(task_group)
cli.add_command(template_group)
cli.add_command(preset_group)
cli.add_command(pool_group)
cli.add_command(capacity)
for command in (user_group, token_group, login, logout, whoami, audit):
    cli.add_command(command)


@cli.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory [default: $DOCKYARD_HOME or the user data dir].",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="Serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="Its key.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A DNS name clients use for this server (repeatable; env DOCKYARD_ALLOWED_HOSTS).",
)
def server(
    host: str,
    port: int,
    home: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Run the Dockyard server in the foreground; every request needs an API token."""
    try:
        # the server's dependencies are heavy; only this command needs them
        from provisioner.server.main import run_server
    except ImportError as exc:
        raise CliError(f"cannot load the Dockyard server: {exc}") from exc
    try:
        run_server(
            host=host,
            port=port,
            home=home,
            tls_cert=tls_cert,
            tls_key=tls_key,
            allowed_hosts=list(allowed_hosts),
        )
    except DockyardError as exc:  # e.g. its database cannot be opened
        raise CliError(str(exc)) from exc


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="dockyard")


if __name__ == "__main__":
    main()
