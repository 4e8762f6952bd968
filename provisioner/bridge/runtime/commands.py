"""Commands beside the agent, run by the bridge for the server: `task exec`, `task shell`,
`cp` and git on a backend whose server has no `docker exec` into the workspace (Swarm has
no cross-node exec, moby/moby#27552), and a TCP stream to a workspace port (previews).

- POST /dockyard/exec runs an argv to its end: bounded output, a timeout, the exit code.
- GET /dockyard/session upgrades the connection to a byte stream of small frames (the
  bridge is stdlib-only: no WebSocket library), over which a command runs with its input
  and output open, under a pty or with pipes.
- GET /dockyard/connect?port=N upgrades it to a raw TCP stream to the workspace's port.

Every command is an argv run with exec, never through a shell; it runs as the bridge's
own user (the workspace user), in the workspace directory. A frame is a type byte, a
4-byte big-endian length and at most MAX_FRAME bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from io import BufferedIOBase
from typing import IO, Any, NamedTuple

MAX_ARGS = 256
MAX_ARG_BYTES = 32 * 1024
MAX_ARGV_BYTES = 128 * 1024
MAX_ENV = 64
MAX_ENV_BYTES = 32 * 1024
MAX_OUTPUT = 1024 * 1024  # /dockyard/exec: what one answer carries; the rest is counted
MAX_TIMEOUT_S = 3600.0
MAX_FRAME = 64 * 1024
MAX_OPEN_FRAME = 512 * 1024  # the first frame: the argv and env as JSON
MAX_SIDE = 1000  # rows and columns of a terminal
HANG_UP_S = 2.0  # after SIGHUP, this long before SIGKILL
OUTPUT_GRACE_S = 0.5  # output read after a command exits, while some keeps coming
UPGRADE = "dockyard-stream"
_HEADER = struct.Struct(">cI")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# the bridge's own variables: a command run for the server has no business with them
_PRIVATE_ENV = ("DOCKYARD_BRIDGE_CONFIG", "DOCKYARD_BRIDGE_TOKEN")

# frames, client -> bridge
OPEN, INPUT, EOF, RESIZE, HANGUP = b"o", b"i", b"e", b"r", b"k"
# frames, bridge -> client
STDOUT, STDERR, EXIT, ERROR = b"1", b"2", b"x", b"E"


class Refused(ValueError):
    """A request the bridge will not run; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class Command(NamedTuple):
    """A checked request to run a command (a NamedTuple: no dataclasses in the bridge, see
    config.py)."""

    argv: list[str]
    env: dict[str, str]
    timeout: float = 600.0
    tty: bool = False
    rows: int = 24
    cols: int = 80


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Refused(f"{what} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise Refused(f"{what} is not valid Unicode (an unpaired surrogate)") from None
    if size > limit:
        raise Refused(f"{what} is longer than {limit} bytes")
    if "\x00" in value:
        raise Refused(f"{what} holds a NUL character")
    return value


def check_command(body: Any) -> Command:
    """A request body as a Command; Refused says what is wrong. Arguments are kept as
    they are (control characters too): they reach exec, never a shell."""
    if not isinstance(body, dict):
        raise Refused("the request must be a JSON object")
    unknown = set(body) - {"argv", "env", "timeout", "tty", "rows", "cols", "root"}
    if unknown:
        raise Refused(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    if body.get("root"):
        raise Refused(f"the bridge runs as uid {os.getuid()} and cannot run a command as root", 403)
    argv = body.get("argv")
    if not isinstance(argv, list) or not argv:
        raise Refused("argv must be a non-empty list of strings")
    if len(argv) > MAX_ARGS:
        raise Refused(f"{len(argv)} arguments; at most {MAX_ARGS}")
    total = sum(len(_text(a, f"argument {i}", MAX_ARG_BYTES).encode()) for i, a in enumerate(argv))
    if total > MAX_ARGV_BYTES:
        raise Refused(f"the command line is {total} bytes; at most {MAX_ARGV_BYTES}")
    if not argv[0]:
        raise Refused("the command is empty")
    env = body.get("env") or {}
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise Refused(f"env must be an object of at most {MAX_ENV} variables")
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise Refused(f"env: {name[:40]!r} is not a variable name")
        _text(value, f"env {name}", MAX_ENV_BYTES)
    timeout = body.get("timeout", 600.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise Refused("timeout must be a number of seconds")
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise Refused(f"timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    tty = body.get("tty", False)
    if not isinstance(tty, bool):
        raise Refused("tty must be true or false")
    rows, cols = body.get("rows", 24), body.get("cols", 80)
    for side in (rows, cols):
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_SIDE:
            raise Refused(f"rows and cols must be whole numbers from 1 to {MAX_SIDE}")
    return Command(list(argv), dict(env), float(timeout), tty, rows, cols)


def command_env(extra: dict[str, str], tty: bool) -> dict[str, str]:
    """The bridge's environment (the workspace's), without the bridge's own variables,
    then the caller's."""
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    if tty:
        env.setdefault("TERM", "xterm-256color")
    env.update(extra)
    return env


def _exit_code(returncode: int) -> int:
    """128+N for a signal N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _hang_up(proc: subprocess.Popen[bytes]) -> None:
    """End a command's process group: SIGHUP, then SIGKILL if it stays."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGHUP)
    try:
        proc.wait(timeout=HANG_UP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _not_found(argv: list[str], exc: OSError) -> tuple[int, bytes]:
    code = 127 if isinstance(exc, FileNotFoundError) else 126
    return code, f"dockyard-bridge: cannot run {argv[0][:200]!r}: {exc.strerror}\n".encode()


def run(command: Command, cwd: str) -> dict[str, Any]:
    """Run the command to its end (or its timeout): its exit code and merged output, the
    first MAX_OUTPUT bytes of it (`truncated` says when there was more)."""
    try:
        proc = subprocess.Popen(
            command.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=command_env(command.env, False),
            start_new_session=True,
        )
    except OSError as exc:
        code, message = _not_found(command.argv, exc)
        return {"exit_code": code, "output": message.decode(), "truncated": False}
    kept: list[bytes] = []
    size = 0
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _hang_up(proc)

    timer = threading.Timer(command.timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for _, chunk in _outputs(proc, {proc.stdout.fileno(): STDOUT}):
            if size < MAX_OUTPUT:
                kept.append(chunk[: MAX_OUTPUT - size])
            size += len(chunk)
        code = _exit_code(proc.wait())
    finally:
        timer.cancel()
        _hang_up(proc)
    return {
        "exit_code": code,
        "output": b"".join(kept).decode("utf-8", "replace"),
        "truncated": size > MAX_OUTPUT,
        "timed_out": expired.is_set(),
    }


def _outputs(proc: subprocess.Popen[bytes], fds: dict[int, bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(stream, bytes) read from `fds` until each ends, or until the command has exited
    and they stay quiet for OUTPUT_GRACE_S: a program it started in the background
    (`setsid -f server`) may hold them open for ever."""
    fds = dict(fds)
    while fds:
        ready, _, _ = select.select(list(fds), [], [], OUTPUT_GRACE_S)
        if not ready and proc.poll() is not None:
            return
        for fd in ready:
            try:
                data = os.read(fd, MAX_FRAME)
            except OSError:  # EIO: every holder of the terminal has gone
                data = b""
            if data:
                yield fds[fd], data
            else:
                del fds[fd]


# -- framed sessions --------------------------------------------------------------------


def frame(kind: bytes, data: bytes = b"") -> bytes:
    """One frame: type, length, payload."""
    return _HEADER.pack(kind, len(data)) + data


def read_frame(
    stream: IO[bytes] | BufferedIOBase, limit: int = MAX_FRAME
) -> tuple[bytes, bytes] | None:
    """The next frame from a buffered stream; None at its end. ValueError when a frame
    is larger than `limit` (the connection is then dropped)."""
    head = stream.read(_HEADER.size)
    if not head or len(head) < _HEADER.size:
        return None
    kind, length = _HEADER.unpack(head)
    if length > limit:
        raise ValueError(f"a frame of {length} bytes; at most {limit}")
    data = stream.read(length) if length else b""
    if len(data) < length:
        return None
    return kind, data


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:
    """In the child: make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Session:
    """One command with its input and output on a framed connection."""

    def __init__(self, rfile: BufferedIOBase, sock: socket.socket, cwd: str) -> None:
        self.rfile = rfile
        self.sock = sock
        self.cwd = cwd
        self._send_lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.master: int | None = None
        self._timer: threading.Timer | None = None

    def _send(self, kind: bytes, data: bytes = b"") -> None:
        with self._send_lock:
            self.sock.sendall(frame(kind, data))

    def serve(self) -> None:
        """Read the open frame, start the command, pump until it ends or the client goes."""
        try:
            first = read_frame(self.rfile, MAX_OPEN_FRAME)
            if first is None:
                return
            kind, data = first
            try:
                if kind != OPEN:
                    raise Refused("the first frame must open a command")
                try:
                    body = json.loads(data)
                except ValueError:
                    raise Refused("the open frame must be JSON") from None
                command = check_command(body)
            except Refused as exc:
                self._send(ERROR, json.dumps({"error": str(exc), "status": exc.status}).encode())
                return
            if not self._start(command):
                return
            pump = threading.Thread(target=self._pump, daemon=True, name="session-output")
            pump.start()
            self._inputs()
        except (OSError, ValueError):
            pass  # the client went, or broke the protocol: the command is hung up on
        finally:
            self._close()

    def _start(self, command: Command) -> bool:
        env = command_env(command.env, command.tty)
        try:
            if command.tty:
                master, slave = os.openpty()
                self.master = master
                _set_size(slave, command.rows, command.cols)
                try:
                    self.proc = subprocess.Popen(
                        command.argv,
                        stdin=slave,
                        stdout=slave,
                        stderr=slave,
                        cwd=self.cwd,
                        env=env,
                        start_new_session=True,
                        preexec_fn=_take_terminal,
                    )
                finally:
                    os.close(slave)
            else:
                self.proc = subprocess.Popen(
                    command.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            code, message = _not_found(command.argv, exc)
            self._send(STDERR, message)
            self._send(EXIT, json.dumps({"code": code}).encode())
            return False
        # bounded like /dockyard/exec: a session left running is ended at its timeout
        self._timer = threading.Timer(command.timeout, _hang_up, (self.proc,))
        self._timer.daemon = True
        self._timer.start()
        return True

    def _pump(self) -> None:
        """Output frames until the command's output ends, then its exit code."""
        proc = self.proc
        assert proc is not None
        try:
            if self.master is not None:
                fds = {self.master: STDOUT}
            else:
                assert proc.stdout is not None and proc.stderr is not None
                fds = {proc.stdout.fileno(): STDOUT, proc.stderr.fileno(): STDERR}
            for stream, data in _outputs(proc, fds):
                self._send(stream, data)
            code = _exit_code(proc.wait())
            self._send(EXIT, json.dumps({"code": code}).encode())
        except OSError:
            pass
        finally:
            # the input loop is reading: end it, the session is over
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def _inputs(self) -> None:
        proc = self.proc
        assert proc is not None
        while (got := read_frame(self.rfile)) is not None:
            kind, data = got
            if kind == INPUT:
                with contextlib.suppress(OSError):
                    if self.master is not None:
                        os.write(self.master, data)
                    elif proc.stdin is not None:
                        proc.stdin.write(data)
                        proc.stdin.flush()
            elif kind == EOF:
                if self.master is None and proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            elif kind == RESIZE and len(data) == 4 and self.master is not None:
                rows, cols = struct.unpack(">HH", data)
                if 1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE:
                    with contextlib.suppress(OSError):
                        _set_size(self.master, rows, cols)
            elif kind == HANGUP:
                return

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.proc is not None:
            _hang_up(self.proc)
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


# -- a TCP stream to a workspace port ---------------------------------------------------


def check_port(value: str, own: int) -> int:
    """A port the server may reach in the workspace: 1-65535, never the bridge's own."""
    if not value.isdigit() or len(value) > 5 or not 1 <= int(value) <= 65535:
        raise Refused(f"port {value[:20]!r} is not 1-65535")
    if int(value) == own:
        raise Refused(f"port {value} is the bridge's own; it is not forwarded", 403)
    return int(value)


def dial(port: int) -> socket.socket:
    """A connection to the port on the workspace's loopback (IPv4, then IPv6)."""
    last: OSError | None = None
    for host in ("127.0.0.1", "::1"):
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def splice(rfile: BufferedIOBase, client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side ends. The client's side is read through
    `rfile`, which may hold bytes read ahead with the request."""
    upstream.settimeout(None)
    client.settimeout(None)

    def back() -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=back, daemon=True, name="port-stream")
    thread.start()
    try:
        while data := rfile.read1(65536):
            upstream.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)
    thread.join()
    upstream.close()
