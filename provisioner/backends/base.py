"""The one interface every workspace backend implements."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from provisioner.spec import WorkspaceSpec

ProgressFn = Callable[[str], None]

BRIDGE_PORT = 7777
BRIDGE_DIR = "/opt/dockyard"
# Where a workspace mounts the shared, read-only volume holding the bridge zipapp
BRIDGE_LIB_DIR = f"{BRIDGE_DIR}/lib"
# A task's bridge configuration and token, given to a fresh container in its environment
# (copying files into a container costs ~50 ms of its start); the bridge reads them, takes
# them out of the agent's environment, and prefers files in BRIDGE_DIR when there are any
BRIDGE_CONFIG_ENV = "DOCKYARD_BRIDGE_CONFIG"
BRIDGE_TOKEN_ENV = "DOCKYARD_BRIDGE_TOKEN"


@dataclass(frozen=True)
class BridgeBundle:
    """What gets injected into a workspace so the bridge can run there."""

    zipapp: bytes
    config_json: bytes
    token: str
    # the config holds secret parameter values: never in the container's environment
    # (`docker inspect` shows it, every `docker exec` inherits it), always a 0600 file
    secret: bool = False

    @property
    def digest(self) -> str:
        """The zipapp's content hash (12 hex digits): which bridge this is."""
        return hashlib.sha256(self.zipapp).hexdigest()[:12]


@dataclass(frozen=True)
class Observed:
    """What the backend sees of a task's workspace right now."""

    exists: bool
    running: bool = False
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    endpoint: str | None = None  # base URL of the bridge, when running
    restarting: bool = False  # its restart policy is bringing it back
    # a cluster backend's word for a workspace whose node is away ("node n2 is down"):
    # the workspace is not running, and may come back with its node
    lost: str = ""
    # with `lost`: the node is drained (its workspaces stopped on purpose, disks intact)
    drained: bool = False
    node: str = ""  # the cluster node it is placed on, when a backend has nodes

    def death_cause(self) -> str:
        """Why a workspace that stopped by itself stopped, in words."""
        if not self.exists:
            return "its container was removed"
        if self.lost:
            return self.lost
        if self.oom_killed:
            return "the container was OOM-killed (out of memory; raise the template's memory)"
        if self.exit_code is not None and self.exit_code >= 128:
            signal = self.exit_code - 128
            return f"the container was killed by signal {signal} (exit code {self.exit_code})"
        detail = f": {self.error}" if self.error else ""
        return f"the container exited with code {self.exit_code}{detail}"


PORT_CONNECT_TIMEOUT_S = 10.0


def dial(host: str, port: int) -> socket.socket:
    """A connection to a workspace port at an address the server reaches (open_port of
    the backends with one); OSError when nothing answers."""
    return socket.create_connection((host, port), timeout=PORT_CONNECT_TIMEOUT_S)


class WorkspaceSession(Protocol):
    """A command running in a workspace with its input and output open: `task exec`,
    `task shell` and the copies of `task cp` run through one. Blocking calls: the server
    drives each from a thread."""

    def read(self, size: int = 65536) -> tuple[int, bytes]:
        """The next output: (1 for stdout or a terminal, 2 for stderr, the bytes);
        (0, b"") once the command's output has ended."""

    def write(self, data: bytes) -> None:
        """Input for the command (keys, for a terminal)."""

    def close_input(self) -> None:
        """End the command's input (end of file); a terminal gets Ctrl-D instead."""

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal's size (nothing without a terminal)."""

    def wait(self, timeout: float | None = None) -> int:
        """The command's exit code, once it has ended (TimeoutError past `timeout`)."""

    def close(self) -> None:
        """Let go of the session; a command still running is ended."""


class Backend(Protocol):
    """Small on purpose: the engine drives lifecycles, backends only act and observe."""

    name: str

    def ping(self) -> None:
        """Raise BackendUnavailable unless the backend can be used."""

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """Build or find the workspace image; return its reference."""

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,
    ) -> None:
        """Create the workspace (idempotent: an existing one for the task is reused).

        `progress` gets lines worth showing in the task's logs (Terraform's plan/apply).
        """

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """Whether a workspace of `spec` can start from a copy of another's disk."""

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Give the child, before its create, a copy of the parent's disk as it is now.

        The parent may be running: the copy is crash-consistent (what a power cut would
        leave), not a snapshot of a quiesced disk. Called only while the child has no
        workspace yet, so a copy cut short by a crash is simply made again. `image` is the
        child's, present locally (the helper that copies may run it).
        """

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Start the workspace, refreshing the injected bridge."""

    def stop(self, task_id: str) -> None:
        """Stop the workspace, keeping its disk."""

    def remove(self, task_id: str) -> None:
        """Remove everything the task's workspace owns."""

    def observe(self, task_id: str) -> Observed:
        """What the backend sees of the task's workspace."""

    def tail(self, task_id: str, lines: int) -> list[str]:
        """The last lines the workspace printed itself (diagnosis when the bridge is gone)."""

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """Run a command in the running workspace; (exit code, merged output)."""

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        """Run a command on the workspace's disk: in the workspace while it runs, else
        without starting it (a helper beside its volumes; no network unless `network`).
        (exit code, merged output); BackendError when the backend cannot."""

    def open_session(
        self,
        task_id: str,
        argv: list[str],
        *,
        tty: bool,
        size: tuple[int, int] = (24, 80),
        root: bool = False,
        env: dict[str, str] | None = None,
    ) -> WorkspaceSession:
        """Start `argv` in the running workspace, in its working directory, as the
        workspace's user (uid 0 with `root`, which the caller has checked the template
        allows), under a terminal of `size` (rows, cols) with `tty`; its input and output
        open. A backend without a shared daemon (Swarm) may run it through the bridge."""

    def address(self, task_id: str) -> str:
        """The host at which the server reaches the running workspace's ports (as it
        reaches the bridge's); BackendError when it does not run."""

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A TCP stream to `port` in the running workspace (previews and port-forward):
        a connection to `address` where the server reaches the workspace's ports, one the
        bridge carries where it reaches only the bridge (Swarm). BackendError when the
        workspace does not run; OSError/BackendError when nothing answers there."""

    def running_task_ids(self) -> set[str]:
        """Ids of tasks whose workspace is running (one cheap call per reconcile pass)."""

    def task_ids(self) -> set[str]:
        """Ids of every task that has resources on this backend for this instance."""
