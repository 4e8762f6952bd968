"""`dockyard doctor` on the real daemon: a workspace reaches HTTPS through this machine's
network with the configured CA bundle, and fails, saying so, with a CA that signs nothing
it meets (a valid PEM: only the container's attempt can tell)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest

from provisioner.backends.docker_client import DockerClient
from provisioner.doctor import diagnose
from provisioner.doctor.checks import Level
from provisioner.images.builder import ImageBuilder

pytestmark = pytest.mark.docker


@pytest.fixture
def base_image(docker_client: docker.DockerClient) -> str:
    return ImageBuilder(DockerClient()).ensure_base()


def test_https_from_a_workspace_works_and_a_wrong_ca_fails_it(
    base_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    found = {r.name: r for r in diagnose(home)}
    assert found["docker"].level == Level.OK, found["docker"]
    assert found["https"].level == Level.OK, found["https"]
    assert found["images"].level in (Level.OK, Level.WARN)

    wrong_ca = tmp_path / "wrong-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=Not your proxy", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(wrong_ca)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    monkeypatch.setenv("DOCKYARD_CA_BUNDLE", str(wrong_ca))
    found = {r.name: r for r in diagnose(home)}
    assert found["ca-bundle"].level == Level.OK  # a valid bundle of one certificate
    assert found["https"].level == Level.FAIL
    assert "CERTIFICATE_VERIFY_FAILED" in found["https"].summary
    assert "DOCKYARD_CA_BUNDLE" in found["https"].fix
    # the probe's containers removed themselves
    assert not docker_client.containers.list(all=True, filters={"label": "dockyard.doctor"})
