"""A Terraform run sees only what it needs of the server's environment (real terraform)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from provisioner.backends.terraform_runner import TerraformRunner, terraform_env

SERVER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "DOCKER_HOST": "unix:///run/docker.sock",
    "HTTPS_PROXY": "http://proxy:3128",
    "LC_ALL": "C.UTF-8",
    "TF_LOG": "WARN",
    "DOCKYARD_DATABASE_URL": "postgresql+psycopg://dockyard:hunter2@db/dockyard",
    "DOCKYARD_SECRET_API_KEY": "sk-live-secret",
    "OPENAI_API_KEY": "sk-openai",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def test_only_what_terraform_needs_is_passed() -> None:
    env = terraform_env(SERVER_ENV)
    assert env["PATH"] == "/usr/bin" and env["DOCKER_HOST"] == SERVER_ENV["DOCKER_HOST"]
    assert env["HTTPS_PROXY"] and env["LC_ALL"] and env["TF_LOG"] == "WARN"
    assert env["TF_IN_AUTOMATION"] == "1"
    for secret in ("DOCKYARD_DATABASE_URL", "DOCKYARD_SECRET_API_KEY", "OPENAI_API_KEY"):
        assert secret not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_a_local_exec_cannot_read_the_servers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("DOCKYARD_SECRET_TOKEN", "sk-live-secret")
    (tmp_path / "main.tf").write_text(
        'resource "terraform_data" "probe" {\n'
        '  provisioner "local-exec" {\n'
        f'    command = "env > {tmp_path}/seen.env"\n'
        "  }\n"
        "}\n"
    )
    runner = TerraformRunner()
    runner.init(tmp_path)
    runner.apply(tmp_path)
    seen = (tmp_path / "seen.env").read_text()
    assert "PATH=" in seen and "TF_IN_AUTOMATION=1" in seen
    assert "hunter2" not in seen and "sk-live-secret" not in seen
