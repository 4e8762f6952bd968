"""HTTP/1.1 over a plain socket: how the CLI talks to a Dockyard server on plain http.

`http.client` imports the email package to parse headers: ~10 ms of every command's
start, a fifth of a `dockyard task list`. A Dockyard server's answers need none of it.
This speaks the part of HTTP/1.1 the CLI uses, strictly: one request at a time on a
kept-alive connection; a body sized by Content-Length, chunked, or running to the close;
interim 1xx answers skipped. Anything else is a ProtocolError, never a guess. (https and
proxies go through httpx, as before: see cli/client.py.)
"""

from __future__ import annotations

import socket

MAX_HEAD = 64 * 1024  # the status line and headers of one answer
MAX_BODY = 512 * 1024 * 1024  # one answer's body (a task's logs can be large)
_READ = 64 * 1024
# an answer to these has no body, whatever its headers say
_NO_BODY = frozenset({204, 304})


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as this client speaks it."""


class RemoteDisconnected(ConnectionError):
    """The connection closed before any answer (a kept-alive one the server had closed:
    the request may be sent again on a new one if it may be repeated)."""


def _check_text(value: str, what: str) -> str:
    # a CR or LF would end the line early and start a header of the value's choosing
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{what} holds a line break: {value[:40]!r}")
    return value


class Connection:
    """One kept-alive connection to host:port; `request` opens it when needed."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buffer = b""

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buffer = b""

    def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request and read its whole answer: (status, headers with lower-case
        names, body). OSError (refused, reset, timed out), RemoteDisconnected or
        ProtocolError when there is none; the connection is closed then."""
        try:
            return self._exchange(method, target, headers, body)
        except BaseException:
            self.close()
            raise

    def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            self.sock.settimeout(self.timeout)
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [f"{_check_text(method, 'the method')} {_check_text(target, 'the path')} HTTP/1.1"]
        lines.append(f"Host: {host}:{self.port}")
        for name, value in headers.items():
            lines.append(f"{_check_text(name, 'a header name')}: {_check_text(value, name)}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + (body or b""))
        while True:
            status, answer = self._read_head()
            if not 100 <= status < 200:
                break  # an interim answer (100 Continue...) precedes the real one
        content, to_close = self._read_body(method, status, answer)
        if to_close or "close" in answer.get("connection", "").lower():
            self.close()
        return status, answer, content

    # reading -----------------------------------------------------------------------
    def _fill(self) -> bool:
        """Read more into the buffer; False at the connection's end."""
        assert self.sock is not None
        data = self.sock.recv(_READ)
        self._buffer += data
        return bool(data)

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError(f"the answer's headers are longer than {MAX_HEAD} bytes")
            if not self._fill():
                if self._buffer:
                    raise ProtocolError("the connection closed in the middle of an answer")
                raise RemoteDisconnected("the server closed the connection without answering")
        raw, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(parts[1]), headers

    def _read_body(self, method: str, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
        """The body, and whether the connection ends with it."""
        if method == "HEAD" or status in _NO_BODY:
            return b"", False
        coding = headers.get("transfer-encoding", "").lower()
        if coding:
            if coding != "chunked":
                raise ProtocolError(f"a transfer coding this client does not read: {coding!r}")
            return self._read_chunked(), False
        if "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ProtocolError(f"an unusable Content-Length: {length[:40]!r}")
            return self._read_exactly(int(length)), False
        # neither: the body runs to the connection's end
        while self._fill():
            if len(self._buffer) > MAX_BODY:
                raise ProtocolError(f"an answer larger than {MAX_BODY} bytes")
        body, self._buffer = self._buffer, b""
        return body, True

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise ProtocolError("the connection closed in the middle of an answer")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("a chunk's size line is too long")
            if not self._fill():
                raise ProtocolError("the connection closed in the middle of an answer")
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"a malformed chunk size: {size_text[:20]!r}") from None
            if size < 0 or total + size > MAX_BODY:
                raise ProtocolError(f"an answer larger than {MAX_BODY} bytes")
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            total += size
            if self._read_exactly(2) != b"\r\n":
                raise ProtocolError("a chunk does not end where its size says")
