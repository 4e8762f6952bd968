"""`dockyard server` beyond loopback: it says where the admin token is, serves HTTPS with
--tls-cert/--tls-key, and keeps every route behind a token (a real server process)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_token, free_port


def _start(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKER_HOST"] = f"unix://{home}/no-docker.sock"  # no Docker needed to serve
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner.server", "--home", str(home), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def server_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        proc.wait(20)


def _wait_listening(home: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / "server.log").read_text()
        try:
            return str(json.loads((home / "server.json").read_text())["url"])
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("the server never listened: " + (home / "server.log").read_text())


def test_a_server_on_every_address_says_where_the_token_is(
    tmp_path: Path, server_process: list[subprocess.Popen[bytes]]
) -> None:
    home = tmp_path / "home"
    proc = _start(home, "--host", "0.0.0.0", "--port", str(free_port()))
    server_process.append(proc)
    url = _wait_listening(home, proc)
    log = (home / "server.log").read_text()
    assert f"the admin token is in {home / 'admin-token'}" in log
    assert "tokens cross the network in the clear" in log
    assert url.startswith("http://127.0.0.1:")  # what a CLI on this machine can reach
    local = url
    assert httpx.get(local + "/api/v2/health", timeout=HTTP_TIMEOUT).status_code == 401
    headers = {"Authorization": f"Bearer {admin_token(home)}"}
    assert (
        httpx.get(local + "/api/v2/health", headers=headers, timeout=HTTP_TIMEOUT).json()["ok"]
        is True
    )


def test_tls(tmp_path: Path, server_process: list[subprocess.Popen[bytes]]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    home = tmp_path / "home"
    proc = _start(home, "--tls-cert", str(cert), "--tls-key", str(key))
    server_process.append(proc)
    url = _wait_listening(home, proc)
    assert url.startswith("https://127.0.0.1:")
    headers = {"Authorization": f"Bearer {admin_token(home)}"}
    trust = ssl.create_default_context(cafile=str(cert))
    assert (
        httpx.get(
            url + "/api/v2/me", headers=headers, verify=trust, timeout=HTTP_TIMEOUT
        ).status_code
        == 200
    )
    with pytest.raises(httpx.HTTPError):
        httpx.get(
            url.replace("https:", "http:") + "/api/v2/me", headers=headers, timeout=HTTP_TIMEOUT
        )


def test_tls_needs_both_files(tmp_path: Path) -> None:
    proc = _start(tmp_path / "home", "--tls-cert", str(tmp_path / "cert.pem"))
    assert proc.wait(30) != 0
    assert "TLS needs both --tls-cert and --tls-key" in (tmp_path / "home/server.log").read_text()
