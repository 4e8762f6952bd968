"""The bridge zipapp in one shared, read-only volume per bridge version.

Copying the zipapp into every new container cost ~50 ms of each create (Docker's archive
API has that much fixed cost, whatever the size). Instead, each Dockyard instance keeps a
volume per bridge version: the first workspace created with a new bridge fills it (mounted
read-write, files owned by root, a `ready` marker written last), every later workspace
mounts it read-only. Volumes of older bridges are removed once nothing uses them.
"""

from __future__ import annotations

import contextlib
import threading

from provisioner.backends.base import BRIDGE_LIB_DIR, BridgeBundle
from provisioner.backends.docker_client import DockerClient
from provisioner.errors import BackendError

LABEL_BRIDGE = "dockyard.bridge"
ZIPAPP = "bridge.pyz"
READY = "ready"


class BridgeVolumes:
    """Names, fills and prunes one Dockyard instance's bridge volumes."""

    def __init__(self, docker: DockerClient, labels: dict[str, str], instance: str) -> None:
        self.docker = docker
        self.labels = labels  # the instance's labels: its cleanup removes these volumes too
        self.instance = instance
        self._ready: set[str] = set()  # filled, as seen by this process
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        return f"dockyard-bridge-{self.instance[:12]}-"

    def name(self, bundle: BridgeBundle) -> str:
        return self.prefix + bundle.digest

    def prepare(self, bundle: BridgeBundle) -> tuple[str, bool]:
        """(volume name, whether it is known to be filled). Creates it when missing."""
        name = self.name(bundle)
        with self._lock:
            known = name in self._ready
        # checked every time (a millisecond): Docker would quietly create a removed volume
        # anew, empty, and the workspace's bridge would not start
        if known and self.docker.volume_exists(name):
            return name, True
        with self._lock:
            self._ready.discard(name)
        self.docker.ensure_volume(name, {**self.labels, LABEL_BRIDGE: bundle.digest})
        return name, False

    def fill(self, container: str, name: str, bundle: BridgeBundle) -> None:
        """Fill the volume (mounted read-write at BRIDGE_LIB_DIR in `container`) unless an
        earlier run did; then remove the volumes of older bridges nothing uses."""
        marker = f"{BRIDGE_LIB_DIR}/{READY}"
        if not self.docker.path_exists(container, marker):
            # in order: the marker only once the zipapp is whole. Owned by root, so no
            # agent can change the bridge that other workspaces run
            files = {ZIPAPP: (bundle.zipapp, 0o644), READY: (bundle.digest.encode(), 0o644)}
            self.docker.put_files(container, BRIDGE_LIB_DIR, files, owner=0)
        with self._lock:
            self._ready.add(name)
        self.prune(keep=name)

    def prune(self, keep: str) -> None:
        """Remove this instance's other bridge volumes; those still mounted stay."""
        for other in self.docker.volumes(self.labels):
            if other == keep or not other.startswith(self.prefix):
                continue
            # a workspace still mounting it (a paused one, say) keeps it
            with contextlib.suppress(BackendError):
                self.docker.remove_volume(other)
