"""The bridge zipapp in one shared, read-only volume per bridge version.

Copying the zipapp into every new container cost ~50 ms of each create (Docker's archive
API has that much fixed cost, whatever the size). Instead, each Dockyard instance keeps a
volume per bridge version, filled once through a container that is created for that and
never started (files owned by root, a `ready` marker written last); every workspace mounts
it read-only, so no agent can change the bridge others run. Volumes of older bridges are
removed once nothing uses them: after a fill, and when a workspace is removed.
"""

from __future__ import annotations

import contextlib
import secrets
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
        self._latest: str | None = None  # the one prepared last: this server's bridge
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        return f"dockyard-bridge-{self.instance[:12]}-"

    def name(self, bundle: BridgeBundle) -> str:
        return self.prefix + bundle.digest

    def prepare(self, bundle: BridgeBundle, image: str) -> str:
        """The volume holding this bridge, filled (through a never-started container of
        `image`) when it is new, or when it was removed since."""
        name = self.name(bundle)
        # one filler at a time: a second create waits, then finds the volume ready
        with self._lock:
            # checked every time (a millisecond): Docker would quietly create a removed
            # volume anew, empty, and the workspace's bridge would not start
            self._latest = name
            if name in self._ready and self.docker.volume_exists(name):
                return name
            self._ready.discard(name)
            self.docker.ensure_volume(name, {**self.labels, LABEL_BRIDGE: bundle.digest})
            self._fill(name, bundle, image)
            self._ready.add(name)
        # after a fill only, not on every create (a request on the way to each workspace):
        # an older volume still mounted then goes when its workspace does (prune_unused)
        self.prune(keep={name})
        return name

    def _fill(self, name: str, bundle: BridgeBundle, image: str) -> None:
        filler = self.docker.create_container(
            image=image,
            name=f"dockyard-bridge-fill-{bundle.digest}-{secrets.token_hex(3)}",
            command=["true"],
            labels={**self.labels, LABEL_BRIDGE: bundle.digest},
            user="0:0",
            workdir="/",
            env={},
            volumes={name: BRIDGE_LIB_DIR},
            memory=None,
            cpus=None,
            pids=None,
        )
        try:
            if not self.docker.path_exists(filler, f"{BRIDGE_LIB_DIR}/{READY}"):
                # in order: the marker only once the zipapp is whole
                files = {ZIPAPP: (bundle.zipapp, 0o644), READY: (bundle.digest.encode(), 0o644)}
                self.docker.put_files(filler, BRIDGE_LIB_DIR, files, owner=0)
        finally:
            self.docker.remove_container(filler)

    def prune_unused(self) -> None:
        """Remove older bridge volumes nothing mounts any more (a workspace went): the one
        prepared last stays. Before any prepare here, nothing is known to be older."""
        with self._lock:
            latest = self._latest
        if latest is not None:
            self.prune({latest})

    def prune(self, keep: set[str]) -> None:
        """Remove this instance's other bridge volumes; those still mounted stay."""
        for other in self.docker.volumes(self.labels):
            if other in keep or not other.startswith(self.prefix):
                continue
            # a workspace still mounting it (a paused one, say) keeps it
            with contextlib.suppress(BackendError):
                self.docker.remove_volume(other)
