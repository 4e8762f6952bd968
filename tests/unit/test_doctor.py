"""`dockyard doctor`: every check failing on purpose through fake probes; the real probes
with Docker stopped (a dead DOCKER_HOST), a bad CA bundle and an unreachable database; and
the remote path (the server's checks through GET /api/v2/doctor, admins only)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner.doctor import checks
from provisioner.doctor.checks import GIB, Level, ProbeError, Result, run_checks, worst
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.serving import admin_env, serve

__all__ = ["bridge_cache"]

INFO = {
    "ServerVersion": "24.0.5",
    "CgroupVersion": "2",
    "CgroupDriver": "systemd",
    "MemoryLimit": True,
    "CpuCfsQuota": True,
    "PidsLimit": True,
    "Driver": "overlay2",
    "DockerRootDir": "/var/lib/docker",
}


class FakeProbes:
    """A healthy machine; a test breaks one thing by setting an attribute."""

    def __init__(self, **broken: Any) -> None:
        self.config: dict[str, Any] = {}
        self.info: Any = dict(INFO)
        self.free: Any = 50 * GIB
        self.tags: Any = ["dockyard-base:abc", "dockyard-tpl-scripted:def"]
        self.tpls: Any = [("scripted", None, True), ("custom", "corp/agent:1", True)]
        self.programs = {"debootstrap": "/usr/sbin/debootstrap", "terraform": "/usr/bin/terraform"}
        self.status: Any = 200
        self.bundle: Any = ("/etc/ssl/certs/ca-certificates.crt", 140)
        self.https: Any = "HTTP 200"
        self.db: Any = {"kind": "sqlite", "where": "/h/dockyard.db", "missing": []}
        self.tf: Any = "Terraform v1.11.4"
        for key, value in broken.items():
            setattr(self, key, value)

    @staticmethod
    def _give(value: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        return value

    def settings(self) -> Mapping[str, Any]:
        return self.config

    def docker_host(self) -> str:
        return "unix:///var/run/docker.sock"

    def docker_info(self) -> Mapping[str, Any]:
        return self._give(self.info)  # type: ignore[no-any-return]

    def disk_free(self, path: str) -> int:
        return self._give(self.free)  # type: ignore[no-any-return]

    def images(self) -> list[str]:
        self.docker_info()
        return self._give(self.tags)  # type: ignore[no-any-return]

    def templates(self) -> list[tuple[str, str | None, bool]]:
        return self._give(self.tpls)  # type: ignore[no-any-return]

    def which(self, program: str) -> str | None:
        return self.programs.get(program)

    def mirror(self) -> tuple[str, str]:
        return "http://deb.debian.org/debian", "bookworm"

    def http_get(self, url: str) -> int:
        return self._give(self.status)  # type: ignore[no-any-return]

    def ca_bundle(self) -> tuple[str, int]:
        return self._give(self.bundle)  # type: ignore[no-any-return]

    def https_from_container(self, image: str, url: str) -> str:
        return self._give(self.https)  # type: ignore[no-any-return]

    def database(self) -> Mapping[str, Any]:
        return self._give(self.db)  # type: ignore[no-any-return]

    def terraform_version(self) -> str:
        return self._give(self.tf)  # type: ignore[no-any-return]


def by_name(probes: FakeProbes) -> dict[str, Result]:
    return {r.name: r for r in run_checks(probes)}


def test_a_healthy_machine_is_all_ok() -> None:
    found = by_name(FakeProbes())
    assert {n: r.level for n, r in found.items() if r.level != Level.OK} == {"swarm": Level.SKIP}
    assert found["swarm"].summary.startswith("not configured")
    assert worst(list(found.values())) == Level.OK


def test_docker_stopped_fails_and_its_dependents_skip() -> None:
    found = by_name(FakeProbes(info=ProbeError("connection refused")))
    assert found["docker"].level == Level.FAIL
    assert "connection refused" in found["docker"].summary and "DOCKER_HOST" in found["docker"].fix
    for name in ("cgroups", "storage", "images", "https"):
        assert found[name].level == Level.SKIP, name
    assert worst(list(found.values())) == Level.FAIL


@pytest.mark.parametrize(
    ("broken", "name", "level", "words"),
    [
        ({"info": {**INFO, "ServerVersion": "19.03.1"}}, "docker", Level.WARN, "older"),
        ({"info": {**INFO, "MemoryLimit": False}}, "cgroups", Level.WARN, "memory"),
        ({"info": {**INFO, "PidsLimit": False}}, "cgroups", Level.WARN, "process-count"),
        ({"free": 1 * GIB}, "storage", Level.FAIL, "1.0 GiB free"),
        ({"free": 5 * GIB}, "storage", Level.WARN, "little room"),
        ({"info": {**INFO, "Driver": "vfs"}}, "storage", Level.WARN, "vfs"),
        ({"free": ProbeError("remote")}, "storage", Level.WARN, "unknown"),
        ({"tpls": [("custom", "corp/agent:1", False)]}, "images", Level.WARN, "custom"),
        ({"tpls": ProbeError("bad yaml")}, "images", Level.FAIL, "bad yaml"),
        ({"tags": []}, "images", Level.WARN, "not built yet"),
        ({"programs": {}, "tags": []}, "debootstrap", Level.FAIL, "not installed"),
        ({"programs": {"terraform": "t"}}, "debootstrap", Level.WARN, "not installed"),
        ({"status": ProbeError("timed out"), "tags": []}, "debootstrap", Level.FAIL, "timed out"),
        ({"status": 404, "tags": []}, "debootstrap", Level.FAIL, "HTTP 404"),
        ({"bundle": ProbeError("not PEM")}, "ca-bundle", Level.FAIL, "not PEM"),
        ({"bundle": ("/x.pem", 0)}, "ca-bundle", Level.FAIL, "no CA certificates"),
        ({"https": ProbeError("CERTIFICATE_VERIFY_FAILED")}, "https", Level.FAIL, "CERTIFICATE"),
        ({"tags": []}, "https", Level.SKIP, "base image"),
        ({"db": ProbeError("connection refused")}, "database", Level.FAIL, "refused"),
        ({"db": {"kind": "postgresql", "where": "x", "missing": ["tasks.tags"]}}, "database",
         Level.WARN, "tasks.tags"),
        ({"db": {"kind": "sqlite", "where": "x", "new": True}}, "database", Level.OK, "new"),
        ({"programs": {"debootstrap": "d"}}, "terraform", Level.WARN, "not on PATH"),
        ({"tf": ProbeError("exec format error")}, "terraform", Level.FAIL, "exec format"),
        ({"config": {"backend": "swarm"}}, "swarm", Level.WARN, "no Swarm check"),
    ],
)  # fmt: skip
def test_each_check_fails_on_purpose(
    broken: dict[str, Any], name: str, level: Level, words: str
) -> None:
    found = by_name(FakeProbes(**broken))[name]
    assert found.level == level, found
    assert words in found.summary, found
    if level in (Level.WARN, Level.FAIL) and name != "images":
        assert found.fix, f"{name} says what to do"


@pytest.mark.parametrize(
    "url",
    ["http://plain.example/", "https://a b/", "https://x/\r\nHost: evil", "file:///etc/passwd", 7],
)
def test_a_hostile_https_url_is_refused_before_any_container(url: object) -> None:
    probes = FakeProbes(config={"doctor": {"https_url": url}}, https=AssertionError("ran"))
    found = by_name(probes)["https"]
    assert found.level == Level.FAIL and "doctor.https_url" in found.summary


def test_a_backend_registers_its_own_check_and_a_crashing_check_is_reported() -> None:
    def swarm(_: Any) -> Result:
        return Result("swarm", Level.OK, "3 nodes ready")

    def broken(_: Any) -> Result:
        raise KeyError("oops")

    table = dict(checks.CHECKS)
    table["swarm"], table["broken"] = swarm, broken
    found = {r.name: r for r in run_checks(FakeProbes(), table)}
    assert found["swarm"].summary == "3 nodes ready"
    assert found["broken"].level == Level.FAIL and "KeyError" in found["broken"].summary
    assert checks.CHECKS["swarm"] is checks.check_swarm  # the module's table is untouched


@pytest.fixture
def broken_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Docker stopped (a socket nobody listens on), a CA bundle that is not PEM, and a
    PostgreSQL that is not there: the real probes, failing for real."""
    home = tmp_path / "home"
    home.mkdir()
    bad_bundle = tmp_path / "bundle.pem"
    bad_bundle.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    monkeypatch.setenv("DOCKYARD_CA_BUNDLE", str(bad_bundle))
    monkeypatch.setenv("DOCKYARD_HOME", str(home))
    monkeypatch.setenv(
        "DOCKYARD_DATABASE_URL", f"postgresql+psycopg://me:hunter2@/db?host={tmp_path}"
    )
    return home


def test_the_real_probes_fail_on_purpose(broken_machine: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--local", "-o", "json"])
    assert result.exit_code == 1, result.output
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert found["docker"]["level"] == "FAIL" and "docker.sock" in found["docker"]["summary"]
    assert found["ca-bundle"]["level"] == "FAIL" and "PEM" in found["ca-bundle"]["summary"]
    assert found["database"]["level"] == "FAIL"
    assert "hunter2" not in result.stdout  # the URL is shown without its password
    assert not list(broken_machine.iterdir())  # a doctor writes nothing into the home


def test_text_output_says_what_to_do(broken_machine: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--local"])
    assert result.exit_code == 1
    assert "FAIL  docker" in result.stdout and "fix: start it" in result.stdout


@pytest.fixture
def served(tmp_path: Path, bridge_cache: Path) -> Iterator[tuple[Harness, str]]:
    with harness_at(tmp_path / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        yield h, url


def test_a_remote_server_is_diagnosed_where_it_runs(
    served: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    h, url = served
    # the server's machine has no Docker: its checks say so, not this machine's
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=admin_env(url, h.home))
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert found["server"]["level"] == "OK" and found["auth"]["level"] == "OK"
    assert found["docker"]["level"] == "FAIL" and "no-docker.sock" in found["docker"]["summary"]
    assert found["database"]["level"] == "OK"  # the server's own store, in its home
    assert str(h.home) in found["database"]["summary"]
    assert result.exit_code == 1


def test_members_and_bad_tokens_and_no_server(served: tuple[Harness, str]) -> None:
    h, url = served
    h.store.create_user("alice", "member")
    token, _ = h.store.create_token("alice", "laptop", None)
    env = {"DOCKYARD_URL": url, "DOCKYARD_TOKEN": token}
    member = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=env)
    found = {c["name"]: c for c in json.loads(member.stdout)["checks"]}
    assert found["machine"]["level"] == "WARN" and "admin" in found["machine"]["summary"]
    assert "docker" not in found and member.exit_code == 0
    bad = {"DOCKYARD_URL": url, "DOCKYARD_TOKEN": "dy_" + "x" * 43}
    refused = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=bad)
    found = {c["name"]: c for c in json.loads(refused.stdout)["checks"]}
    assert found["auth"]["level"] == "FAIL" and refused.exit_code == 1
    gone = {"DOCKYARD_URL": "http://127.0.0.1:9", "DOCKYARD_TOKEN": token}
    unreachable = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=gone)
    found = {c["name"]: c for c in json.loads(unreachable.stdout)["checks"]}
    assert list(found) == ["server"] and found["server"]["level"] == "FAIL"
