"""The CLI's HTTP/1.1 client (cli/plainhttp.py) against real sockets: a server thread
answering each connection with canned bytes, so every framing the protocol allows (and
the broken ones it must refuse) arrives exactly as written."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from cli.plainhttp import MAX_HEAD, Connection, ProtocolError, RemoteDisconnected
from tests.polling import HTTP_TIMEOUT


class Canned:
    """Accepts connections; answers each request on one with the next canned answer.
    `None` as an answer closes the connection without a word."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    sized = b"Content-Length" in answer or b"chunked" in answer
                    if b"Connection: close" in answer or not sized:
                        break  # the body runs to the close

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":", 1)[1])
                while len(rest) < size:
                    rest += conn.recv(65536)
        return data

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def canned() -> Iterator[type[Canned]]:
    made: list[Canned] = []

    def make(answers: list[bytes | None]) -> Canned:
        server = Canned(answers)
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


def connect(server: Canned) -> Connection:
    return Connection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)


def test_sized_answers_share_one_kept_alive_connection(canned: type[Canned]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    server = canned([ok, ok])
    conn = connect(server)
    assert conn.request("POST", "/api/x", {"Authorization": "Bearer t"}, b'{"a":1}') == (
        200,
        {"content-type": "application/json", "content-length": "2"},
        b"{}",
    )
    first = conn.sock
    assert conn.request("GET", "/api/y", {}, None)[2] == b"{}"
    assert conn.sock is first  # the same connection, kept alive
    sent = server.requests[0]
    assert sent.startswith(b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer t\r\n" in sent and b"Content-Length: 7\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"a":1}')
    conn.close()


def test_chunked_interim_and_close_delimited_answers(canned: type[Canned]) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    to_close = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    server = canned([chunked, to_close])
    conn = connect(server)
    status, headers, body = conn.request("GET", "/c", {}, None)
    assert (status, headers["x-a"], body) == (201, "1, 2", b"hello world")
    assert conn.request("GET", "/d", {}, None)[2] == b"all of it"
    assert conn.sock is None  # the body ran to the close: the connection is done
    no_body = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
    server = canned([no_body])
    assert connect(server).request("DELETE", "/e", {}, None) == (204, {"content-length": "5"}, b"")


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "a malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "an unusable Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "does not end"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_HEAD + 10), "longer than"),
    ],
)
def test_a_broken_answer_is_refused_not_guessed(
    canned: type[Canned], answer: bytes, message: str
) -> None:
    server = canned([answer])
    conn = connect(server)
    with pytest.raises(ProtocolError, match=message):
        conn.request("GET", "/", {}, None)
    assert conn.sock is None


def test_a_closed_kept_alive_connection_says_so(canned: type[Canned]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server = canned([ok, None])
    conn = connect(server)
    assert conn.request("GET", "/", {}, None)[0] == 200
    with pytest.raises((RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        conn.request("GET", "/", {}, None)


def test_no_line_break_reaches_the_request(canned: type[Canned]) -> None:
    server = canned([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    conn = connect(server)
    for method, target, headers in (
        ("GET", "/x HTTP/1.1\r\nEvil: 1", {}),
        ("GET", "/", {"X-Token": "t\r\nEvil: 1"}),
        ("GET", "/", {"X\nEvil": "1"}),
    ):
        with pytest.raises(ValueError, match="line break"):
            conn.request(method, target, headers, None)
    assert server.requests == []  # nothing was sent
