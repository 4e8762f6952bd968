"""`dockyard doctor`: what is wrong with this Dockyard, and what to do about it.

Checks the server's address and the token here, then asks the server for its own
machine's checks (GET /api/dockyard/v1/doctor, admins): Docker, cgroups, disk, images, debootstrap
and the mirror, the CA bundle and HTTPS from a workspace, the database, Terraform, Swarm.
With --local, or when no server can be reached and none was named, the machine checks
run in this process instead (no server needed: a doctor for a server that will not start).
Exit status 1 if any check FAILs.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.client import Client, CliError, current_client, is_loopback
from cli.options import text_output_option

LEVEL_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "red", "SKIP": "bright_black"}


def _result(name: str, level: str, summary: str, fix: str = "") -> dict[str, Any]:
    return {"name": name, "level": level, "summary": summary, "fix": fix, "details": {}}


def _local_checks() -> list[dict[str, Any]]:
    from provisioner.doctor import diagnose  # the probes' imports: only for this command

    return [r.as_json() for r in diagnose()]


def _server_checks(client: Client) -> list[dict[str, Any]]:
    """The address, the token, then the server's own checks (if the token may)."""
    url = client.base_url
    found: list[dict[str, Any]] = []
    try:
        reply = client.exchange("GET", "/health", timeout=15)
    except CliError as exc:
        return [_result("server", "FAIL", exc.format_message(), "start it: dockyard server")]
    found.append(_result("server", "OK", f"{url} answers (HTTP {reply.status_code})"))
    if url.startswith("http://") and not is_loopback(url):
        found[-1] = _result(
            "server",
            "WARN",
            f"{url} answers, but over plain HTTP: tokens cross the network in the clear",
            "serve with --tls-cert/--tls-key or put a TLS reverse proxy in front",
        )
    try:
        me = client.request("GET", "/me", timeout=15)
    except CliError as exc:
        return [
            *found,
            _result(
                "auth",
                "FAIL",
                f"the server refused the token: {exc.format_message()}",
                exc.hint or f"dockyard login {url} (or set DOCKYARD_TOKEN)",
            ),
        ]
    found.append(_result("auth", "OK", f"token of {me['user']} ({me['role']})"))
    if me.get("role") != "admin":
        found.append(
            _result(
                "machine",
                "WARN",
                "the server's own checks need an admin's token: not run",
                "ask an admin to run dockyard doctor, or run it with --local on the server",
            )
        )
        return found
    try:
        remote = client.request("GET", "/doctor", timeout=180)
    except CliError as exc:
        found.append(_result("machine", "FAIL", exc.format_message(), exc.hint or ""))
        return found
    return [*found, *remote["checks"]]


def _show(results: list[dict[str, Any]], output: str) -> None:
    failed = any(r["level"] == "FAIL" for r in results)
    if output == "json":
        click.echo(json.dumps({"ok": not failed, "checks": results}, indent=2))
        return
    for r in results:
        level = click.style(f"{r['level']:<4}", fg=LEVEL_STYLE.get(r["level"]), bold=True)
        click.echo(f"{level}  {r['name']:<12} {r['summary']}")
        if r.get("fix") and r["level"] in ("WARN", "FAIL"):
            click.echo(f"      {'':<12} fix: {r['fix']}")


@click.command("doctor")
@text_output_option
@click.option(
    "--local",
    is_flag=True,
    help="Check this machine in this process, without a server (DOCKYARD_HOME's config).",
)
@click.pass_context
def doctor(ctx: click.Context, output: str, local: bool) -> None:
    """Diagnose Docker, disk, images, network, CA bundle, database and the server."""
    explicit = ctx.find_root().params.get("url")
    if local:
        results = _local_checks()
    else:
        try:
            client = current_client()
        except CliError as exc:  # no server named and the local one would not start
            results = [_result("server", "FAIL", exc.format_message(), exc.hint or "")]
            if not explicit:
                results += _local_checks()
        else:
            results = _server_checks(client)
    _show(results, output)
    if any(r["level"] == "FAIL" for r in results):
        ctx.exit(1)
