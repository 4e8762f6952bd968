"""Which backends a server offers, from its config.yaml: `swarm:` adds the Swarm backend,
and `backend: swarm` runs there every template that names the Docker backend (the
default), so a team moves to a cluster without touching its templates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from provisioner import paths
from provisioner.backends.base import Backend
from provisioner.backends.docker import DockerBackend
from provisioner.backends.swarm import SwarmBackend, SwarmSettings
from provisioner.errors import DockyardError

SERVER_BACKENDS = ("docker", "swarm")


def configured_backends(
    home: Path,
    docker: DockerBackend,
    others: dict[str, Backend],
    bridge_token: Callable[[str], str] | None = None,
) -> dict[str, Backend]:
    """{name: backend} for the router: docker, the `others` given, and swarm when set
    (`bridge_token`: a task's bridge token, with which Swarm runs commands through it)."""
    config = paths.home_dir(home) / "config.yaml"
    data = paths.settings(home)
    backends: dict[str, Backend] = {"docker": docker, **others}
    section = data.get("swarm")
    if section is not None:
        try:
            settings = SwarmSettings.from_config(section)
        except ValueError as exc:
            raise DockyardError(f"{config}: {exc}") from exc
        backends["swarm"] = SwarmBackend(
            docker.instance,
            settings,
            docker.docker,
            images=docker.images,
            bridge_token=bridge_token,
        )
    choice = str(data.get("backend") or "docker")
    if choice not in SERVER_BACKENDS:
        raise DockyardError(
            f"{config}: backend {choice!r} is not one of {', '.join(SERVER_BACKENDS)}"
        )
    if choice == "swarm":
        if "swarm" not in backends:
            raise DockyardError(
                f"{config}: backend: swarm needs a swarm section",
                hint="swarm: {manager: unix:///var/run/docker.sock, registry: HOST:5000, "
                "network: dockyard-net}",
            )
        backends["docker"] = backends["swarm"]
    return backends
