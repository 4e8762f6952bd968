"""`dockyard task port-forward TASK PORT[:LOCAL]`: a local port whose connections reach
the workspace's PORT through the server (a WebSocket each): no host port is published,
so two tasks' port 3000 never collide."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import click

from cli.client import CliError, current_client
from cli.wsclient import first_answer, open_socket, segment


def _tunnel(conn: socket.socket, ws: Any) -> None:
    from websockets.exceptions import ConnectionClosed

    def upstream() -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            while data := conn.recv(65536):
                ws.send(data)
        with contextlib.suppress(Exception):
            ws.close()

    threading.Thread(target=upstream, daemon=True).start()
    with contextlib.suppress(OSError, ConnectionClosed):
        for message in ws:
            if isinstance(message, bytes):
                conn.sendall(message)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _serve_one(conn: socket.socket, task: str, port: int) -> None:
    client = current_client()
    try:
        ws = open_socket(client, f"/tasks/{segment(task)}/ports/{port}")
        first_answer(ws)
    except CliError as exc:
        click.echo(f"port-forward: {exc.message}", err=True)
        conn.close()
        return
    _tunnel(conn, ws)


def parse_ports(value: str) -> tuple[int, int]:
    """`3000` or `3000:8080` (the workspace's port, then the local one; 0: any free)."""
    remote_text, _, local_text = value.partition(":")
    try:
        remote = int(remote_text)
        local = int(local_text) if local_text else remote
    except ValueError as exc:
        raise click.BadParameter("use PORT or PORT:LOCAL, e.g. 3000 or 3000:8080") from exc
    if not 1 <= remote <= 65535 or not 0 <= local <= 65535:
        raise click.BadParameter("ports are 1-65535 (a local 0 picks a free one)")
    return remote, local


@click.command("port-forward")
@click.argument("task")
@click.argument("ports")
@click.option("--address", default="127.0.0.1", show_default=True, help="Local address.")
@click.pass_context
def port_forward_command(ctx: click.Context, task: str, ports: str, address: str) -> None:
    """Forward a local port to PORT in TASK's workspace: PORT[:LOCAL] (until Ctrl-C)."""
    remote, local = parse_ports(ports)
    client = current_client()
    client.get_task(task)  # the task exists and is ours, before listening
    server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((address, local))
    except OSError as exc:
        raise CliError(f"cannot listen on {address}:{local}: {exc}") from exc
    server.listen(16)
    bound = server.getsockname()[1]
    click.echo(f"Forwarding {address}:{bound} -> {task} port {remote} (Ctrl-C ends)", err=True)
    try:
        while True:
            conn, _ = server.accept()
            # the click context is per thread: give each tunnel this command's client
            threading.Thread(
                target=_with_context,
                args=(ctx, conn, task, remote),
                daemon=True,
            ).start()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _with_context(ctx: click.Context, conn: socket.socket, task: str, port: int) -> None:
    with ctx:
        _serve_one(conn, task, port)
