"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 in a thread that records
every request, answers as told (a list of statuses, then `default`), or never answers."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.polling import wait_until


@dataclass
class Got:
    """One request the receiver got, and the status it answered (None: it never did)."""

    headers: dict[str, str]
    body: str
    status: int | None

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """Use as a context manager; `url` is where it listens."""

    def __init__(
        self, answers: list[int] | None = None, default: int = 200, hang: bool = False
    ) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.hang = hang
        self.got: list[Got] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets a hanging receiver's requests go
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.hang:
                    with receiver.lock:
                        receiver.got.append(Got(headers, body, None))
                    receiver.release.wait(120)
                    self.close_connection = True
                    return
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.got.append(Got(headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def requests(self) -> list[Got]:
        with self.lock:
            return list(self.got)

    def accepted(self) -> list[Got]:
        """Requests answered 2xx: the deliveries that count as delivered."""
        return [g for g in self.requests() if g.status is not None and 200 <= g.status < 300]

    def wait_accepted(self, count: int, timeout: float = 30) -> list[Got]:
        return wait_until(
            lambda: (found := self.accepted()) and len(found) >= count and found,
            timeout,
            f"{count} deliveries accepted (have {len(self.accepted())})",
        )
