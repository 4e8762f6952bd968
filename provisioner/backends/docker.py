"""The Docker backend: one hardened container and two labelled volumes per task."""

from __future__ import annotations

import secrets
import socket

from provisioner.backends.base import (
    BRIDGE_CONFIG_ENV,
    BRIDGE_DIR,
    BRIDGE_LIB_DIR,
    BRIDGE_PORT,
    BRIDGE_TOKEN_ENV,
    BridgeBundle,
    Observed,
    ProgressFn,
    WorkspaceSession,
    dial,
)
from provisioner.backends.bridge_volume import BridgeVolumes
from provisioner.backends.docker_client import ContainerInfo, DockerClient
from provisioner.bridge.package import PYTHON_FLAGS
from provisioner.errors import BackendError
from provisioner.images import recipes
from provisioner.images.builder import ImageBuilder
from provisioner.spec import WorkspaceSpec

LABEL_MANAGED = "dockyard.managed"
LABEL_INSTANCE = "dockyard.instance"
LABEL_TASK = "dockyard.task"
LABEL_TEMPLATE = "dockyard.template"
# a fork's copying helper, labelled with the child's id (never with LABEL_TASK: it is not
# the task's workspace container, and would count as a second one)
LABEL_FORK = "dockyard.fork"
# a helper running git on a stopped workspace's disk, labelled with its task's id (never
# with LABEL_TASK, for the same reason)
LABEL_GIT = "dockyard.git"
FORK_MOUNTS = "/dockyard-fork"  # a path no image has: Docker must not seed the volumes
# root in the helper keeps owners, modes and times (cp -a) and reads every file
FORK_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID")
FORK_TIMEOUT_S = 3600.0
# a file the running parent replaced mid-copy fails cp; the copy is tried again
FORK_COPY = 'for i in 1 2 3; do cp -a "$1/." "$2/" && exit 0; sleep 0.2; done; exit 1'

# The zipapp from the shared bridge volume; the config from BRIDGE_DIR when a server copied
# one in (a restart), else from the environment. The zipapp itself runs a newer bridge
# copied into BRIDGE_DIR instead, when there is one. `-I -S`: the bridge brings everything
# it imports (pyte included), so Python skips site-packages and PYTHON* variables (an
# image's PYTHONPATH cannot change the bridge either), and starts a few ms sooner.
BRIDGE_COMMAND = [
    "python3",
    *PYTHON_FLAGS,
    f"{BRIDGE_LIB_DIR}/bridge.pyz",
    "--config",
    f"{BRIDGE_DIR}/bridge.json",
]
# tasks remembered as having no container (DockerBackend._absent), at most
MAX_ABSENT = 1024
# A configuration larger than this (a long first prompt) is copied in as a file instead:
# the kernel limits one environment string to 128 KiB.
MAX_CONFIG_ENV = 64 * 1024


class DockerBackend:
    """Workspaces as containers on the local Docker engine."""

    name = "docker"

    def __init__(self, instance: str, docker: DockerClient | None = None) -> None:
        self.instance = instance
        self.docker = docker or DockerClient()
        self.images = ImageBuilder(self.docker)
        self.bridges = BridgeVolumes(
            self.docker, {LABEL_MANAGED: "true", LABEL_INSTANCE: instance}, instance
        )
        # Containers this process created and has not started, by task: their bridge files
        # are fresh, so start need not copy them in a second time, nor look them up again.
        self._fresh: dict[str, str] = {}
        # Tasks whose container this process just looked for and did not find: the create
        # that follows (the provisioner observes first) need not look again.
        self._absent: set[str] = set()

    def _labels(self, task_id: str) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance, LABEL_TASK: task_id}

    def _volume_names(self, task_id: str) -> dict[str, str]:
        short = task_id.replace("-", "")[:12]
        return {
            f"dockyard-{short}-workspace": "",  # path filled in from the spec
            f"dockyard-{short}-home": recipes.AGENT_HOME,
        }

    def _container(self, task_id: str) -> ContainerInfo | None:
        found = self.docker.containers(self._labels(task_id))
        if len(found) > 1:
            # Never expected (create is idempotent), but two containers for one task would
            # mean two agents: keep the oldest-named one visible and say so.
            raise BackendError(
                f"task {task_id} has {len(found)} containers: {', '.join(c.name for c in found)}"
            )
        return found[0] if found else None

    def ping(self) -> None:
        """Raise BackendUnavailable unless Docker answers."""
        self.docker.ping()

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """Build or find the workspace image."""
        return self.images.ensure_image(spec.image, spec.template, spec.build, progress)

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,  # nothing worth reporting: it takes milliseconds
    ) -> None:
        """Create volumes and the container unless they exist; give it the bridge."""
        if task_id in self._absent:
            self._absent.discard(task_id)  # seen missing just now: one list request fewer
        elif self._container(task_id) is not None:
            return
        labels = {**self._labels(task_id), LABEL_TEMPLATE: spec.template}
        # the task's volumes are made by the container's create, with these labels
        volumes = {vol: path or spec.workdir for vol, path in self._volume_names(task_id).items()}
        bridge_volume = self.bridges.prepare(bridge, image)
        volumes[bridge_volume] = BRIDGE_LIB_DIR
        env = {"HOME": recipes.AGENT_HOME}
        config_in_env = not bridge.secret and len(bridge.config_json) <= MAX_CONFIG_ENV
        if config_in_env:
            env[BRIDGE_CONFIG_ENV] = bridge.config_json.decode()
            env[BRIDGE_TOKEN_ENV] = bridge.token
        short = task_id.replace("-", "")[:8]
        container = self.docker.create_container(
            image=image,
            name=f"dockyard-{task_name[:40]}-{short}",
            command=BRIDGE_COMMAND,
            labels=labels,
            user=f"{recipes.AGENT_UID}:{recipes.AGENT_UID}",
            workdir=spec.workdir,
            env=env,
            volumes=volumes,
            memory=spec.memory,
            cpus=spec.cpus,
            pids=spec.pids,
            cap_add=spec.cap_add,
            restart=spec.lifecycle.restart,
            read_only=frozenset({bridge_volume}),
            volume_labels=labels,
        )
        if not config_in_env:
            self._put_config(container, bridge)
        self._fresh[task_id] = container

    def _put_config(self, container: str, bridge: BridgeBundle, with_zipapp: bool = False) -> None:
        """Copy the task's config and token in (0600), and with `with_zipapp` this server's
        bridge too: a container created by an older server then runs the matching one."""
        files = {
            "bridge.json": (bridge.config_json, 0o600),
            "token": (bridge.token.encode(), 0o600),
        }
        if with_zipapp:
            files["bridge.pyz"] = (bridge.zipapp, 0o644)
        self.docker.put_files(container, BRIDGE_DIR, files)

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """Always: a workspace's disk is its two volumes."""
        return True

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Fill the child's new volumes with copies of the parent's, through a helper
        container of the child's image (present locally: no pull) with both mounted.

        The parent may be running: each volume is copied as it is (crash-consistent).
        """
        if self._container(child_id) is not None:
            return  # created already: its volumes are its own now
        sources = list(self._volume_names(parent_id))
        for vol in sources:
            if not self.docker.volume_exists(vol):
                raise BackendError(
                    f"task {parent_id} has no workspace disk to fork (volume {vol} is gone)"
                )
        base = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance}
        for leftover in self.docker.containers({**base, LABEL_FORK: child_id}):
            self.docker.remove_container(leftover.id)  # a copy cut short by a crash
        labels = {**self._labels(child_id), LABEL_TEMPLATE: spec.template}
        targets = list(self._volume_names(child_id))
        for vol in targets:
            self.docker.remove_volume(vol)  # a partial copy from before, if any
            self.docker.ensure_volume(vol, labels)
        short = child_id.replace("-", "")[:12]
        for source, target in zip(sources, targets, strict=True):
            mounts = {source: f"{FORK_MOUNTS}/from", target: f"{FORK_MOUNTS}/to"}
            code, output = self.docker.run_helper(
                image=image,
                name=f"dockyard-fork-{short}-{secrets.token_hex(3)}",
                command=["sh", "-c", FORK_COPY, "fork", *mounts.values()],
                labels={**base, LABEL_FORK: child_id},
                volumes=mounts,
                cap_add=FORK_CAPS,
                timeout=FORK_TIMEOUT_S,
                read_only=frozenset({source}),
            )
            if code != 0:
                tail = " | ".join(output.strip().splitlines()[-3:])
                raise BackendError(f"copying volume {source} to {target} failed ({code}): {tail}")

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Start the container (after refreshing the bridge files) unless it runs."""
        fresh = self._fresh.pop(task_id, None)
        if fresh is not None:
            # just created here, never started: no list and inspect first (two calls on
            # the way to a new workspace); starting one that runs is no error either
            self.docker.start(fresh)
            return
        info = self._container(task_id)
        if info is None:
            raise BackendError(f"task {task_id} has no workspace container to start")
        if info.running:
            return
        # the server may have a newer bridge than the disk
        self._put_config(info.id, bridge, with_zipapp=True)
        self.docker.start(info.id)

    def stop(self, task_id: str) -> None:
        """Stop the container; volumes and the container's disk stay."""
        info = self._container(task_id)
        if info is not None and info.running:
            self.docker.stop(info.id)

    def remove(self, task_id: str) -> None:
        """Remove the task's containers and volumes."""
        self._fresh.pop(task_id, None)
        self._absent.discard(task_id)
        for info in self.docker.containers(self._labels(task_id)):
            self.docker.remove_container(info.id)
        for vol in self.docker.volumes(self._labels(task_id)):
            self.docker.remove_volume(vol)
        self.bridges.prune_unused()  # an older bridge it alone still mounted goes too

    def observe(self, task_id: str) -> Observed:
        """Container state and the bridge endpoint."""
        info = self._container(task_id)
        if info is None:
            if len(self._absent) >= MAX_ABSENT:
                self._absent.clear()  # only a hint: forgetting costs a request, no more
            self._absent.add(task_id)
            return Observed(exists=False)
        self._absent.discard(task_id)
        endpoint = (
            f"http://{info.ip_address}:{BRIDGE_PORT}" if info.running and info.ip_address else None
        )
        return Observed(
            exists=True,
            running=info.running,
            exit_code=None if info.running else info.exit_code,
            oom_killed=info.oom_killed,
            error=info.error,
            endpoint=endpoint,
            restarting=info.status == "restarting",
        )

    def tail(self, task_id: str, lines: int) -> list[str]:
        """Last lines of the container's output."""
        info = self._container(task_id)
        return self.docker.logs_tail(info.id, lines) if info else []

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """docker exec as the workspace's user, in its working directory."""
        info = self._container(task_id)
        if info is None or not info.running:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        return self.docker.exec(info.id, argv)

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        """Run `argv` in the running workspace; or, when it is stopped, in a short-lived
        helper of its image with its volumes (as the workspace's user, the agent not
        started, no network unless `network`)."""
        info = self._container(task_id)
        if info is None:
            raise BackendError(f"task {task_id} has no workspace (its disk is gone)")
        if info.running:
            return self.docker.exec(info.id, argv)
        short = task_id.replace("-", "")[:12]
        base = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance}
        return self.docker.run_beside(
            info,
            name=f"dockyard-git-{short}-{secrets.token_hex(3)}",
            command=argv,
            labels={**base, LABEL_GIT: task_id},
            user=f"{recipes.AGENT_UID}:{recipes.AGENT_UID}",
            timeout=timeout,
            network=network,
        )

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
        """docker exec with the input and output open, as the workspace's user (or root)."""
        info = self._container(task_id)
        if info is None or not info.running:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        user = "0:0" if root else f"{recipes.AGENT_UID}:{recipes.AGENT_UID}"
        return self.docker.exec_session(
            info.id, argv, tty=tty, size=size, user=user, workdir=None, env=env or {}
        )

    def address(self, task_id: str) -> str:
        """The container's address on its network: how the server reaches the bridge."""
        info = self._container(task_id)
        if info is None or not info.running or not info.ip_address:
            raise BackendError(f"task {task_id} has no running workspace")
        return info.ip_address

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A connection to the port at the workspace's address."""
        return dial(self.address(task_id), port)

    def running_task_ids(self) -> set[str]:
        """Ids of tasks whose workspace container is running."""
        base = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance}
        return {lbl.get(LABEL_TASK, "") for lbl in self.docker.running_labels(base)} - {""}

    def task_ids(self) -> set[str]:
        """Task ids with containers or volumes of this instance."""
        base = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance}
        ids = {labels.get(LABEL_TASK, "") for labels in self.docker.container_labels(base)}
        # a volume can outlive its container (a removal cut short): it is a leftover too
        ids |= {labels.get(LABEL_TASK, "") for labels in self.docker.volume_labels(base)}
        return {i for i in ids if i}
