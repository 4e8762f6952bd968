"""Commands and port streams through a workspace's bridge, for a backend whose server
cannot `docker exec` into the workspace (Swarm: no cross-node exec, moby/moby#27552).

The bridge's side is provisioner/bridge/runtime/commands.py: POST /dockyard/exec runs an
argv to its end; GET /dockyard/session and /dockyard/connect upgrade the connection to a
framed command session and to a raw TCP stream to a workspace port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from urllib.parse import quote, urlsplit

import httpx

from provisioner.bridge.runtime import commands as wire
from provisioner.errors import BackendError

CONNECT_TIMEOUT_S = 10.0
MAX_HEAD = 16 * 1024  # the bridge's answer to an upgrade: status line and headers
# what `exec_on_disk` gathers of a command's output (a base64 git bundle of a kept branch
# is up to ~270 MB); past it the command is hung up on
MAX_GATHERED = 512 * 1024 * 1024
REFUSED_CODE = 126


def _host_port(endpoint: str) -> tuple[str, int]:
    url = urlsplit(endpoint)
    if url.scheme != "http" or not url.hostname or not url.port:
        raise BackendError(f"the bridge's address {endpoint!r} is not http://HOST:PORT")
    return url.hostname, url.port


class BridgeExec:
    """One workspace's bridge, for commands and port streams."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token

    def __repr__(self) -> str:
        return f"BridgeExec({self.endpoint!r})"  # never the token

    def run(
        self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Run `argv` to its end: (exit code, merged output, at most 1 MiB of it)."""
        body = {"argv": argv, "env": env or {}, "timeout": min(timeout, wire.MAX_TIMEOUT_S)}
        try:
            with httpx.Client(timeout=timeout + CONNECT_TIMEOUT_S, trust_env=False) as http:
                answer = http.post(
                    f"{self.endpoint}/dockyard/exec",
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
        except httpx.HTTPError as exc:
            raise BackendError(f"the workspace's bridge cannot be reached: {exc!r}") from exc
        if answer.status_code != 200:
            raise BackendError(_refusal(answer.status_code, answer.content))
        data = answer.json()
        return int(data["exit_code"]), str(data["output"])

    def gather(self, argv: list[str], *, timeout: float) -> tuple[int, str]:
        """Run `argv` to its end through a session, its whole output gathered (bounded by
        MAX_GATHERED): what a git bundle needs, beyond `run`'s 1 MiB."""
        session = self.open_session(argv, tty=False, timeout=timeout)
        chunks: list[bytes] = []
        size = 0
        timer = threading.Timer(timeout, session.close)
        timer.daemon = True
        timer.start()
        try:
            while True:
                stream, data = session.read()
                if not stream:
                    break
                size += len(data)
                if size > MAX_GATHERED:
                    raise BackendError(
                        f"the command's output passed {MAX_GATHERED // (1024 * 1024)} MiB"
                    )
                chunks.append(data)
            if session.code is None:
                raise BackendError(f"the command did not end within {timeout:g}s")
            return session.code, b"".join(chunks).decode("utf-8", "replace")
        finally:
            timer.cancel()
            session.close()

    def _upgrade(self, path: str) -> socket.socket:
        """A connection to the bridge, upgraded on `path` (101), ready for its protocol."""
        host, port = _host_port(self.endpoint)
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise BackendError(f"the workspace's bridge cannot be reached: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {self.token}\r\n"
                f"Connection: Upgrade\r\nUpgrade: {wire.UPGRADE}\r\n\r\n"
            )
            sock.sendall(request.encode("latin-1"))
            head = b""
            # byte by byte: what follows the head belongs to the stream (a port's app may
            # speak first), and a head is a few hundred bytes
            while not head.endswith(b"\r\n\r\n"):
                byte = sock.recv(1)
                if not byte or len(head) > MAX_HEAD:
                    raise BackendError("the workspace's bridge closed the connection")
                head += byte
            status_line, _, rest = head.decode("latin-1").partition("\r\n")
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status != 101:
                length = 0
                for line in rest.split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        length = min(int(value.strip()), 64 * 1024)
                body = b""
                while len(body) < length and (more := sock.recv(length - len(body))):
                    body += more
                raise BackendError(_refusal(status, body))
            sock.settimeout(None)
            return sock
        except BaseException:
            sock.close()
            raise

    def open_session(
        self,
        argv: list[str],
        *,
        tty: bool,
        size: tuple[int, int] = (24, 80),
        env: dict[str, str] | None = None,
        timeout: float = wire.MAX_TIMEOUT_S,
    ) -> BridgeSession:
        """Start `argv` in the workspace with its input and output open."""
        try:
            sock = self._upgrade("/dockyard/session")
        except OSError as exc:
            raise BackendError(f"the workspace's bridge cannot be reached: {exc}") from exc
        rows, cols = size
        opening = {
            "argv": argv,
            "env": env or {},
            "tty": tty,
            "rows": rows,
            "cols": cols,
            "timeout": min(timeout, wire.MAX_TIMEOUT_S),
        }
        session = BridgeSession(sock, tty)
        try:
            session.send(wire.OPEN, json.dumps(opening).encode())
        except OSError as exc:
            session.close()
            raise BackendError(f"the workspace's bridge dropped the session: {exc}") from exc
        return session

    def open_port(self, port: int) -> socket.socket:
        """A stream to the workspace's `port`, carried by the bridge."""
        try:
            return self._upgrade(f"/dockyard/connect?port={quote(str(port))}")
        except OSError as exc:
            raise BackendError(f"the workspace's bridge cannot be reached: {exc}") from exc


def _refusal(status: int, body: bytes) -> str:
    """What the bridge's refusal says, for a BackendError."""
    try:
        data = json.loads(body)
        detail = str(data.get("detail") or data.get("error") or "no detail")[:300]
    except (ValueError, AttributeError):
        detail = body[:300].decode("utf-8", "replace") or "no detail"
    if status == 401:
        return f"the workspace's bridge refused the server's token ({detail})"
    return f"the workspace's bridge refused ({status}): {detail}"


class BridgeSession:
    """A WorkspaceSession over a bridge's framed connection."""

    def __init__(self, sock: socket.socket, tty: bool) -> None:
        self.sock = sock
        self.tty = tty
        self.rfile = sock.makefile("rb")
        self.code: int | None = None
        self._ended = threading.Event()
        self._read_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closed = False

    def send(self, kind: bytes, data: bytes = b"") -> None:
        """One frame to the bridge, in pieces of at most a frame's size."""
        with self._send_lock:
            if kind == wire.OPEN or len(data) <= wire.MAX_FRAME:
                self.sock.sendall(wire.frame(kind, data))
                return
            for at in range(0, len(data), wire.MAX_FRAME):
                self.sock.sendall(wire.frame(kind, data[at : at + wire.MAX_FRAME]))

    def read(self, size: int = 65536) -> tuple[int, bytes]:
        """The next output: (1 or 2, bytes); (0, b"") once it has ended."""
        with self._read_lock:
            while not self._ended.is_set():
                try:
                    got = wire.read_frame(self.rfile)
                except TimeoutError:
                    raise  # wait's bound: the session goes on
                except (OSError, ValueError):
                    got = None
                if got is None:
                    self._ended.set()
                    break
                kind, data = got
                if kind in (wire.STDOUT, wire.STDERR) and data:
                    return (1 if kind == wire.STDOUT else 2), data
                if kind == wire.EXIT:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        self.code = int(json.loads(data)["code"])
                    self._ended.set()
                elif kind == wire.ERROR:
                    # refused before it ran: the reason is the output, 126 the exit code (a
                    # shell's "cannot execute"), so a terminal shows why
                    self.code = REFUSED_CODE
                    self._ended.set()
                    status = 422
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        status = int(json.loads(data)["status"])
                    return 2, f"dockyard: {_refusal(status, data)}\n".encode()
            return 0, b""

    def write(self, data: bytes) -> None:
        """Input for the command."""
        with contextlib.suppress(OSError):  # the command has ended: its output says so
            self.send(wire.INPUT, data)

    def close_input(self) -> None:
        """End of input (pipes; a terminal gets Ctrl-D from the caller)."""
        with contextlib.suppress(OSError):
            self.send(wire.EOF)

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size."""
        if self.tty:
            with contextlib.suppress(OSError):
                self.send(wire.RESIZE, struct.pack(">HH", rows, cols))

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, once the command has ended (its unread output is dropped)."""
        self.sock.settimeout(timeout)
        try:
            while self.read()[0]:
                pass
        except TimeoutError as exc:
            raise TimeoutError("the command is still running") from exc
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(None)
        if self.code is None:
            raise BackendError("the workspace's bridge ended the session without an exit code")
        return self.code

    def close(self) -> None:
        """Hang up: the bridge ends a command still running."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.send(wire.HANGUP)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()
