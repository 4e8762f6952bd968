"""`dockyard task exec TASK -- CMD...` and `dockyard task shell TASK`: a command or a
login shell in the task's workspace, through the server (a WebSocket; never the local
Docker), under a real terminal when this one is, with its size kept in step; the command's
exit code becomes ours."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from typing import Any

import click

from cli.client import CliError, current_client
from cli.wsclient import first_answer, open_socket, segment


def _size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return max(1, min(size.lines, 1000)), max(1, min(size.columns, 1000))


def _pump_input(socket: Any, tty: bool, forward: bool) -> None:
    """Keys (or piped input) to the session; at its end, an end of input."""
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed, OSError):
        if forward:
            while data := os.read(sys.stdin.fileno(), 65536):
                socket.send(data)
        if not tty:
            socket.send(json.dumps({"eof": True}))


def run_session(task: str, argv: list[str] | None, *, tty: bool, root: bool) -> int:
    """Run it; the exit code (255 if the connection broke before one came)."""
    from websockets.exceptions import ConnectionClosed

    client = current_client()
    socket = open_socket(client, f"/tasks/{segment(task)}/exec")
    rows, cols = _size()
    request = {
        "argv": argv,
        "tty": tty,
        "rows": rows,
        "cols": cols,
        "root": root,
        "term": os.environ.get("TERM", "xterm-256color") if tty else "dumb",
    }
    if not request["term"] or len(str(request["term"])) > 64:
        request["term"] = "xterm-256color"
    socket.send(json.dumps(request))
    try:
        first_answer(socket)
    except CliError:
        socket.close()
        raise
    saved = None
    old_winch: Any = None
    stdin_tty = sys.stdin.isatty()
    if tty and stdin_tty:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(sys.stdin.fileno())
        # TCSANOW: keys typed ahead (before the shell started) are kept, not flushed
        ttymod.setraw(sys.stdin.fileno(), termios.TCSANOW)

        def resized(_signum: int, _frame: Any) -> None:
            with contextlib.suppress(Exception):
                socket.send(json.dumps({"resize": list(_size())}))

        old_winch = signal.signal(signal.SIGWINCH, resized)
    # forward what we read when it goes to a terminal, or when it is piped in
    forward = tty or not stdin_tty
    threading.Thread(target=_pump_input, args=(socket, tty, forward), daemon=True).start()
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    code = 255
    try:
        while True:
            try:
                message = socket.recv()
            except ConnectionClosed:
                break
            if isinstance(message, bytes):
                if not message:
                    continue
                target = err if message[0] == 2 else out
                target.write(message[1:])
                target.flush()
                continue
            with contextlib.suppress(ValueError):
                control = json.loads(message)
                if isinstance(control, dict) and "exit" in control:
                    code = int(control["exit"])
                    break
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, old_winch)
        socket.close()
    return code


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("task")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "-t/-T",
    "--tty/--no-tty",
    default=None,
    help="Run it under a terminal [default: when stdin and stdout are terminals].",
)
@click.option("--root", is_flag=True, help="As root (only if the template allows it).")
@click.pass_context
def exec_command(
    ctx: click.Context, task: str, command: tuple[str, ...], tty: bool | None, root: bool
) -> None:
    """Run COMMAND in TASK's workspace (as its user, in its directory); exit with its code.

    dockyard task exec TASK -- ls -la
    """
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("give a command: dockyard task exec TASK -- CMD ...")
    if tty is None:
        tty = sys.stdin.isatty() and sys.stdout.isatty()
    ctx.exit(run_session(task, argv, tty=tty, root=root))


@click.command("shell")
@click.argument("task")
@click.option("--root", is_flag=True, help="As root (only if the template allows it).")
@click.pass_context
def shell_command(ctx: click.Context, task: str, root: bool) -> None:
    """Open a login shell in TASK's workspace (a real terminal; resizes follow)."""
    if not sys.stdin.isatty():
        raise CliError(
            "task shell needs a terminal", "for a command, use: dockyard task exec TASK -- CMD"
        )
    ctx.exit(run_session(task, None, tty=True, root=root))
