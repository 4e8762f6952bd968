"""A fake of GitHub's and GitLab's REST endpoints for pull (merge) requests: it checks
the token, answers what the real ones answer for the calls Dockyard makes, and records
every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeForge:
    url: str
    token: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            forge.requests.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers),
                 "json": body}
            )  # fmt: skip
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            given = given or self.headers.get("PRIVATE-TOKEN", "")
            if given != forge.token:
                self._answer(401, {"message": "Bad credentials"})
            elif self.command == "GET" and self.path in ("/repos/org/repo", "/projects/org%2Frepo"):
                self._answer(200, {"default_branch": "main"})
            elif self.command == "POST" and self.path == "/repos/org/repo/pulls":
                self._answer(201, {"number": 7, "html_url": f"{forge.url}/org/repo/pull/7"})
            elif self.command == "POST" and self.path == "/projects/org%2Frepo/merge_requests":
                self._answer(201, {"iid": 3, "web_url": f"{forge.url}/org/repo/-/merge_requests/3"})
            else:
                self._answer(404, {"message": "Not Found"})

        do_GET = _serve
        do_POST = _serve

    return Handler


@contextmanager
def fake_forge(token: str) -> Iterator[FakeForge]:
    """Serve the fake on a free loopback port until the block ends."""
    forge = FakeForge(url="", token=token)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(forge))
    forge.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        httpd.shutdown()
        httpd.server_close()
