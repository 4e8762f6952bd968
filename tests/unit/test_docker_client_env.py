"""The Docker client does not read the process environment per request.

requests reads proxy settings from os.environ on every call; a thread that changed the
environment meanwhile (a CLI run inside the server's process, as the Docker tier's tests
do) failed the engine's calls with KeyError('DOCKYARD_URL') and errored a task.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests.sessions

from provisioner.backends.docker_client import DockerClient


class _Daemon(BaseHTTPRequestHandler):
    """Answers the version check, and says no container exists."""

    def do_GET(self) -> None:
        found = self.path.endswith("/version")
        body = json.dumps({"ApiVersion": "1.41"} if found else {"message": "no such container"})
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def daemon() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Daemon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_calls_do_not_read_the_environment(daemon: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = DockerClient(base_url=daemon, timeout=60)
    assert client.inspect("abc") is None  # connected (the version check) and answered

    def changed_meanwhile(*_: Any, **__: Any) -> dict[str, str]:
        raise KeyError("DOCKYARD_URL")  # what iterating os.environ raised mid-change

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", changed_meanwhile)
    assert client.inspect("abc") is None
