"""The `dockyard` root command: global options, the command groups and `dockyard server`."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from cli import __version__
from cli.client import ClientSource, CliError

# Each command's module, imported only when that command runs (or --help lists them all):
# a command pays for its own imports, not for every other command's.
LAZY_COMMANDS = {
    "task": "cli.tasks:task_group",
    "template": "cli.catalog:template_group",
    "preset": "cli.catalog:preset_group",
    "pool": "cli.pools:pool_group",
    "capacity": "cli.pools:capacity",
    "cost": "cli.cost:cost",
    "target": "cli.targets:target_group",
    "epic": "cli.epics:epic_group",
    "user": "cli.accounts:user_group",
    "token": "cli.accounts:token_group",
    "login": "cli.accounts:login",
    "logout": "cli.accounts:logout",
    "whoami": "cli.accounts:whoami",
    "audit": "cli.accounts:audit",
    "drain": "cli.drain:drain",
    "undrain": "cli.drain:undrain",
    "webhook": "cli.webhooks:webhook_group",
    "worker": "cli.workers:worker_group",
    "doctor": "cli.doctor:doctor",
    "dashboard": "cli.dashboard:dashboard",
    "schedule": "cli.schedules:schedule_group",
    "trigger": "cli.schedules:trigger_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands in LAZY_COMMANDS are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def _connect(url: str | None) -> tuple[str, str | None]:
    from cli.credentials import connect

    return connect(url)


def _connect_quickly(url: str | None) -> tuple[str, str | None] | None:
    from cli.credentials import connect_quickly

    return connect_quickly(url)


@click.group("dockyard", cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dockyard")
@click.option(
    "--url",
    # Coder's variable as a fallback: Coder Tasks scripts run with their environment as is
    envvar=["DOCKYARD_URL", "CODER_URL"],
    metavar="URL",
    help="Server to use [env: DOCKYARD_URL, else CODER_URL; default: the local server, "
    "started if needed].",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """Run coding agents in Docker workspaces, one per task."""
    ctx.obj = ClientSource(lambda: _connect(url), lambda: _connect_quickly(url))


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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Server log lines: text, or JSON lines with task and request ids "
    "[default: log_format in config.yaml, else text].",
)
def server(
    host: str,
    port: int,
    home: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_hosts: tuple[str, ...],
    log_format: str | None,
) -> None:
    """Run the Dockyard server in the foreground; every request needs an API token."""
    from provisioner.errors import DockyardError

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
            log_format=log_format,
        )
    except DockyardError as exc:  # e.g. its database cannot be opened
        raise CliError(str(exc)) from exc


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="dockyard")


if __name__ == "__main__":
    main()
