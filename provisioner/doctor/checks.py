"""`dockyard doctor`'s checks of a server's machine: each a small function of its probes.

Pure: a check asks its probes (provisioner/doctor/probes.py does the I/O; tests pass
fakes) and turns what they found, or the ProbeError they raised, into one Result: OK,
WARN or FAIL with what to do, or SKIP when it does not apply (not configured). The list
is open: a backend adds its own with `register` (the Swarm backend's nodes and registry);
until one does, `swarm` says "not configured" unless config.yaml says `backend: swarm`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

GIB = 1024**3
MIN_DOCKER = (20, 10)  # the oldest engine whose API and cgroup handling we rely on
FAIL_FREE_GIB, WARN_FREE_GIB = 2, 10  # a first image build needs about 1.5 GiB


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # does not apply here (not configured, or a check it needs failed)


@dataclass(frozen=True)
class Result:
    """One check's verdict: `summary` says what was found, `fix` what to do about it."""

    name: str
    level: Level
    summary: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["level"] = self.level.value
        return found


class ProbeError(Exception):
    """A probe could not find out (the daemon is away, a file unreadable...)."""


class Probes(Protocol):
    """What the checks ask the machine; every method may raise ProbeError."""

    def settings(self) -> Mapping[str, Any]: ...  # config.yaml
    def docker_host(self) -> str: ...
    def docker_info(self) -> Mapping[str, Any]: ...  # `docker info`, plus its Version
    def disk_free(self, path: str) -> int: ...  # bytes
    def images(self) -> list[str]: ...  # every local image's tags
    def templates(self) -> list[tuple[str, str | None, bool]]: ...  # name, image, built?
    def which(self, program: str) -> str | None: ...
    def mirror(self) -> tuple[str, str]: ...  # (mirror URL, suite)
    def http_get(self, url: str) -> int: ...  # status code, through the environment's proxy
    def ca_bundle(self) -> tuple[str, int]: ...  # (path, certificates it holds)
    def https_from_container(self, image: str, url: str) -> str: ...  # what it printed
    def database(self) -> Mapping[str, Any]: ...  # kind, where, version, missing columns
    def terraform_version(self) -> str: ...


Check = Callable[[Probes], Result]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def check_docker(p: Probes) -> Result:
    host = p.docker_host()
    try:
        info = p.docker_info()
    except ProbeError as exc:
        return Result(
            "docker",
            Level.FAIL,
            f"Docker is not reachable at {host}: {exc}",
            "start it (sudo systemctl start docker) or point DOCKER_HOST at a running "
            "daemon; as a user, join the docker group",
        )
    version = str(info.get("ServerVersion") or "?")
    details = {"version": version, "host": host, "api": info.get("ApiVersion")}
    if _version(version) and _version(version) < MIN_DOCKER:
        return Result(
            "docker",
            Level.WARN,
            f"Docker {version} at {host} is older than {'.'.join(map(str, MIN_DOCKER))}",
            "upgrade the Docker engine (apt-get install docker.io)",
            details,
        )
    return Result("docker", Level.OK, f"Docker {version} at {host}", details=details)


def check_cgroups(p: Probes) -> Result:
    try:
        info = p.docker_info()
    except ProbeError:
        return Result("cgroups", Level.SKIP, "needs Docker (see the docker check)")
    version = str(info.get("CgroupVersion") or "?")
    missing = [
        what
        for key, what in (
            ("MemoryLimit", "memory"),
            ("CpuCfsQuota", "CPU"),
            ("PidsLimit", "process-count"),
        )
        if not info.get(key)
    ]
    details = {"version": version, "driver": info.get("CgroupDriver"), "missing": missing}
    if missing:
        return Result(
            "cgroups",
            Level.WARN,
            f"cgroup v{version}: no {', '.join(missing)} limits: templates' resources "
            "are not enforced",
            "enable the cgroup controllers (on cgroup v1 boot with cgroup_enable=memory "
            "swapaccount=1; cgroup v2 with systemd delegates them)",
            details,
        )
    return Result(
        "cgroups",
        Level.OK,
        f"cgroup v{version} ({info.get('CgroupDriver') or '?'} driver): memory, CPU and "
        "process limits enforced",
        details=details,
    )


def check_storage(p: Probes) -> Result:
    try:
        info = p.docker_info()
    except ProbeError:
        return Result("storage", Level.SKIP, "needs Docker (see the docker check)")
    driver = str(info.get("Driver") or "?")
    root = str(info.get("DockerRootDir") or "/var/lib/docker")
    try:
        free = p.disk_free(root)
    except ProbeError as exc:
        return Result(
            "storage",
            Level.WARN,
            f"storage driver {driver}; free space of {root} unknown: {exc}",
            "a remote Docker's disk is not visible here: check it on that machine (df -h)",
            {"driver": driver, "root": root},
        )
    details = {"driver": driver, "root": root, "free_bytes": free}
    shown = f"{free / GIB:.1f} GiB free in {root}"
    if free < FAIL_FREE_GIB * GIB:
        return Result(
            "storage",
            Level.FAIL,
            f"only {shown} (driver {driver})",
            "free space: docker system prune; dockyard task delete of old tasks",
            details,
        )
    if free < WARN_FREE_GIB * GIB or driver == "vfs":
        why = "vfs copies every layer (slow, large)" if driver == "vfs" else "little room"
        return Result(
            "storage",
            Level.WARN,
            f"{shown}, driver {driver}: {why}",
            "use overlay2 (the default on ext4/xfs) and keep 10 GiB free",
            details,
        )
    return Result("storage", Level.OK, f"driver {driver}, {shown}", details=details)


def check_images(p: Probes) -> Result:
    try:
        tags = p.images()
    except ProbeError:
        return Result("images", Level.SKIP, "needs Docker (see the docker check)")
    base = sorted(t for t in tags if t.startswith("dockyard-base:"))
    try:
        templates = p.templates()
    except ProbeError as exc:
        return Result("images", Level.FAIL, f"cannot read the templates: {exc}", "fix them")
    absent = sorted(name for name, image, built in templates if image and not built)
    details = {"base": base, "absent": absent, "templates": len(templates)}
    if absent:
        return Result(
            "images",
            Level.WARN,
            f"templates whose image is not on this machine: {', '.join(absent)}",
            "docker pull (or build) those images here; Dockyard does not pull them",
            details,
        )
    if not base:
        return Result(
            "images",
            Level.WARN,
            "the base image is not built yet: the first task builds it (about a minute, "
            "needs debootstrap and the mirror: see those checks)",
            "",
            details,
        )
    return Result(
        "images",
        Level.OK,
        f"base image {base[-1]}; {len(templates)} templates present or buildable",
        details=details,
    )


def check_debootstrap(p: Probes) -> Result:
    program = p.which("debootstrap")
    mirror, suite = p.mirror()
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        status = p.http_get(url)
        reached = 200 <= status < 400
        why = f"HTTP {status}"
    except ProbeError as exc:
        reached, why = False, str(exc)
    try:
        built = any(t.startswith("dockyard-base:") for t in p.images())
    except ProbeError:
        built = False
    details = {"debootstrap": program, "mirror": mirror, "suite": suite, "reached": reached}
    problems = []
    if program is None:
        problems.append("debootstrap is not installed")
    if not reached:
        problems.append(f"the mirror {url} is not reachable ({why})")
    if not problems:
        return Result(
            "debootstrap", Level.OK, f"{program}; {mirror} ({suite}) reachable", details=details
        )
    fix = "apt-get install debootstrap; set DOCKYARD_DEBIAN_MIRROR to a mirror you can reach"
    # with the base image built, nothing needs them until its recipe changes
    level = Level.WARN if built else Level.FAIL
    return Result("debootstrap", level, "; ".join(problems), fix, details)


def check_ca_bundle(p: Probes) -> Result:
    try:
        path, count = p.ca_bundle()
    except ProbeError as exc:
        return Result(
            "ca-bundle",
            Level.FAIL,
            f"the CA bundle is unusable: {exc}",
            "point DOCKYARD_CA_BUNDLE at a PEM file of CA certificates (your proxy's CA "
            "included), or unset it for /etc/ssl/certs/ca-certificates.crt",
        )
    if count == 0:
        return Result(
            "ca-bundle",
            Level.FAIL,
            f"{path} holds no CA certificates",
            "point DOCKYARD_CA_BUNDLE at a PEM file of CA certificates",
            {"path": path},
        )
    return Result(
        "ca-bundle",
        Level.OK,
        f"{path}: {count} CA certificates",
        details={"path": path, "certificates": count},
    )


def check_https(p: Probes) -> Result:
    settings = p.settings().get("doctor") or {}
    given = settings.get("https_url") if isinstance(settings, dict) else None
    url = str(given or "https://deb.debian.org/")
    if not url.startswith("https://") or any(c.isspace() or ord(c) < 32 for c in url):
        return Result(
            "https",
            Level.FAIL,
            f"doctor.https_url {url[:80]!r} is not an https URL",
            "set doctor.https_url in config.yaml to https://a-site-you-may-reach/",
        )
    try:
        base = sorted(t for t in p.images() if t.startswith("dockyard-base:"))
    except ProbeError:
        return Result("https", Level.SKIP, "needs Docker (see the docker check)")
    if not base:
        return Result("https", Level.SKIP, "needs the base image (see the images check)")
    try:
        answer = p.https_from_container(base[-1], url)
    except ProbeError as exc:
        return Result(
            "https",
            Level.FAIL,
            f"HTTPS to {url} from a workspace failed: {exc}",
            "a TLS-inspecting proxy needs its CA in the bundle (DOCKYARD_CA_BUNDLE, then "
            "rebuild: docker rmi the dockyard-base images); set HTTPS_PROXY/NO_PROXY for "
            "the server; or set doctor.https_url to a site your network allows",
            {"url": url, "image": base[-1]},
        )
    return Result(
        "https",
        Level.OK,
        f"a workspace reached {url} ({answer[:40]})",
        details={"url": url, "image": base[-1]},
    )


def check_database(p: Probes) -> Result:
    try:
        db = p.database()
    except ProbeError as exc:
        return Result(
            "database",
            Level.FAIL,
            f"the database is not usable: {exc}",
            "check DOCKYARD_DATABASE_URL (PostgreSQL running, reachable, the user and "
            "database exist) or that the SQLite file's folder is writable",
        )
    where = f"{db.get('kind')} {db.get('where')}"
    if db.get("new"):
        return Result(
            "database",
            Level.OK,
            f"{where}: new, made on the server's first start",
            details=dict(db),
        )
    missing = list(db.get("missing") or [])
    details = dict(db)
    if missing:
        return Result(
            "database",
            Level.WARN,
            f"{where}: older schema ({len(missing)} columns or tables missing, e.g. {missing[0]})",
            "the server adds them when it starts: restart it with this version",
            details,
        )
    version = f" {db['version']}" if db.get("version") else ""
    return Result("database", Level.OK, f"{where}{version}: schema up to date", details=details)


def check_terraform(p: Probes) -> Result:
    if p.which("terraform") is None:
        return Result(
            "terraform",
            Level.WARN,
            "terraform is not on PATH: templates with backend: terraform cannot start",
            "install Terraform (scripts/setup.sh does) if you use such templates",
        )
    try:
        version = p.terraform_version()
    except ProbeError as exc:
        return Result(
            "terraform", Level.FAIL, f"terraform does not run: {exc}", "reinstall Terraform"
        )
    return Result("terraform", Level.OK, version)


def check_swarm(p: Probes) -> Result:
    """Until a Swarm backend registers its own check (nodes, registry): configured or not."""
    if p.settings().get("backend") != "swarm":
        return Result("swarm", Level.SKIP, "not configured (backend: swarm in config.yaml)")
    return Result(
        "swarm",
        Level.WARN,
        "backend: swarm is configured but this server has no Swarm check installed",
        "upgrade Dockyard to a version with the Swarm backend",
    )


CHECKS: dict[str, Check] = {
    "docker": check_docker,
    "cgroups": check_cgroups,
    "storage": check_storage,
    "images": check_images,
    "debootstrap": check_debootstrap,
    "ca-bundle": check_ca_bundle,
    "https": check_https,
    "database": check_database,
    "terraform": check_terraform,
    "swarm": check_swarm,
}


def register(name: str, check: Check) -> None:
    """Add a check, or replace one of the same name (a backend's own `swarm`)."""
    CHECKS[name] = check


def run_checks(probes: Probes, checks: Mapping[str, Check] | None = None) -> list[Result]:
    """Every check in order; a check that crashes is a FAIL saying so, never the end."""
    results = []
    for name, check in (checks or CHECKS).items():
        try:
            results.append(check(probes))
        except Exception as exc:  # a bug in one check must not hide the others
            results.append(
                Result(
                    name,
                    Level.FAIL,
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "report this as a bug",
                )
            )
    return results


def worst(results: list[Result]) -> Level:
    """FAIL if any failed, else WARN if any warned, else OK."""
    levels = {r.level for r in results}
    for level in (Level.FAIL, Level.WARN):
        if level in levels:
            return level
    return Level.OK
