"""Transient Docker API failures are retried with backoff; permanent ones are not.

The daemon is replaced by a stand-in that fails on purpose: this tests our retry policy
(pure logic), not Docker.
"""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from provisioner.backends.docker_client import DockerClient
from provisioner.errors import BackendError


class FlakyDaemon:
    """Answers create_container with the given failures first, then succeeds."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def create_host_config(self, **_: Any) -> dict[str, Any]:
        return {}

    def create_container(self, **_: Any) -> dict[str, str]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"Id": "c0ffee"}


def api_error(code: int, text: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = code
    return docker.errors.APIError(text, response=response, explanation=text)


def create(daemon: FlakyDaemon) -> str:
    client = DockerClient()
    client._client = daemon  # type: ignore[assignment]
    return client.create_container(
        image="i",
        name="n",
        command=["c"],
        labels={},
        user="1000:1000",
        workdir="/w",
        env={},
        volumes={},
        memory=None,
        cpus=None,
        pids=None,
    )


def test_transient_failures_are_retried() -> None:
    daemon = FlakyDaemon([api_error(500, "daemon busy"), api_error(503, "restarting")])
    assert create(daemon) == "c0ffee"
    assert daemon.calls == 3


def test_permanent_failures_are_not_retried() -> None:
    daemon = FlakyDaemon([api_error(404, "No such image: i")])
    with pytest.raises(BackendError, match="No such image"):
        create(daemon)
    assert daemon.calls == 1


def test_retries_give_up_with_the_cause() -> None:
    daemon = FlakyDaemon([api_error(500, "still broken")] * 6)
    with pytest.raises(BackendError, match="still broken"):
        create(daemon)
    assert daemon.calls == 4


def test_a_daemon_that_just_answered_is_not_pinged_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A create pings Docker first; one that answered anything within PING_FRESH_S is
    taken to be up. Against a real HTTP server speaking the two requests involved."""
    import http.server
    import threading

    from provisioner.backends import docker_client
    from provisioner.errors import BackendUnavailable

    asked: list[str] = []

    class Daemon(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path.split("?")[0])
            body = b'{"ApiVersion": "1.41"}' if self.path.endswith("/version") else b"OK"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    daemon = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Daemon)
    threading.Thread(target=daemon.serve_forever, daemon=True).start()
    client = DockerClient(base_url=f"http://127.0.0.1:{daemon.server_address[1]}")
    try:
        client.ping()
        assert [p.rsplit("/", 1)[-1] for p in asked] == ["version", "_ping"]
        client.ping()  # it just answered: not asked again
        assert len(asked) == 2
        monkeypatch.setattr(docker_client, "PING_FRESH_S", 0.0)
        client.ping()
        assert len(asked) == 3 and asked[-1].endswith("/_ping")
    finally:
        daemon.shutdown()
        daemon.server_close()
    with pytest.raises(BackendUnavailable, match="Docker is not running"):
        client.ping()  # gone since: asked again, and no answer
    client.close()


def test_a_wait_past_its_timeout_is_told_from_a_lost_daemon() -> None:
    """Over Docker's unix socket a wait past its timeout raises a ConnectionError wrapping
    urllib3's ReadTimeoutError (so the real daemon does: checked against Docker 20.10);
    it must read as a helper that did not finish, not as "Docker is not running"."""
    import urllib3.exceptions

    from provisioner.backends.docker_client import read_timed_out

    pool = "UnixHTTPConnectionPool(host='localhost', port=None)"
    timed_out = urllib3.exceptions.ReadTimeoutError(None, None, f"{pool}: Read timed out.")  # type: ignore[arg-type]
    assert read_timed_out(requests.exceptions.ConnectionError(timed_out))
    assert read_timed_out(requests.exceptions.ReadTimeout("read timed out"))
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    assert not read_timed_out(requests.exceptions.ConnectionError(refused))
    assert not read_timed_out(requests.exceptions.ConnectionError())
    assert not read_timed_out(api_error(500, "boom"))
