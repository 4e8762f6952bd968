"""The Swarm backend: each workspace a one-replica service on a Docker Swarm.

- A task's disk is two local volumes on one node, so the node is chosen once, at create
  (placement.choose: the template's constraints, capacity per node, spread), and the
  service is pinned there with a `node.id==` constraint. Pause scales the service to 0
  replicas (the volumes stay on the node); resume scales it to 1 on the same node.
- Images are built on the server's own Docker engine as for the Docker backend, then
  pushed to the registry every node pulls from (swarm.registry), tagged by content hash.
  The bridge zipapp is baked into a thin image on top (`FROM` the workspace image, one
  layer), since a node's volumes cannot be filled from the server; the bridge's config
  and token are Swarm secrets, mounted as 0600 files owned by the agent's user.
- The server reaches each bridge at its node's address and a port Swarm publishes in
  host mode (no ingress routing mesh: the workspace is on one known node). Services are
  also attached to the attachable overlay network (swarm.network), where other
  containers reach them by service name.
- Swarm has no cross-node `docker exec` (moby/moby#27552): commands, sessions and port
  streams of a running workspace go through its bridge (bridge_exec.py), and a command on
  a stopped one's disk runs in a one-shot service on its node (swarm_jobs.py). Forks
  (copying a disk across nodes) are refused on this backend for now.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from provisioner.backends.base import (
    BRIDGE_DIR,
    BRIDGE_LIB_DIR,
    BRIDGE_PORT,
    BridgeBundle,
    Observed,
    ProgressFn,
    WorkspaceSession,
)
from provisioner.backends.bridge_exec import BridgeExec
from provisioner.backends.docker import (
    BRIDGE_COMMAND,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_TASK,
    LABEL_TEMPLATE,
)
from provisioner.backends.docker_client import DockerClient
from provisioner.backends.swarm_client import (
    ENDED,
    Pusher,
    ServiceInfo,
    SwarmClient,
    TaskInfo,
)
from provisioner.backends.swarm_jobs import LABEL_JOB, mounts_of, run_on_node
from provisioner.backends.swarm_volumes import (
    Placed,
    VolumeJanitor,
    check_endpoints,
    short_id,
    volume_names,
)
from provisioner.errors import BackendError, BackendUnavailable
from provisioner.images import recipes
from provisioner.images.builder import ImageBuilder
from provisioner.placement import (
    NodeView,
    PlacementError,
    choose,
    drained,
    problem,
    settling,
)
from provisioner.spec import WorkspaceSpec

LABEL_NODE = "dockyard.node"  # the node id a task's disk lives on
LABEL_NODE_NAME = "dockyard.node-name"
LABEL_BRIDGE = "dockyard.bridge"  # the bridge digest baked into the service's image
LABEL_PAUSED = "dockyard.paused"  # set while scaled to 0 by a pause: it holds no slot
LABEL_IMAGE = "dockyard.image"  # the local workspace image the service's image is made from
# Swarm task states before a container runs; "preparing" is the node pulling the image
STARTING = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
START_LIMIT_S = 600.0  # the engine's phase deadline is normally shorter
STOP_LIMIT_S = 60.0
NUDGE_AFTER_S = 10.0
EXEC_TIMEOUT_S = 600.0  # `exec` (a warm pool's claim setup) has no timeout of its own
NODES_TTL_S = 1.0  # observe is called often: the node list is read at most once a second
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
_RESTART = {"no": "none", "unless-stopped": "on-failure"}


@dataclass(frozen=True)
class SwarmSettings:
    """The server's `swarm:` section of config.yaml."""

    manager: str  # unix:///... or tcp://host:2375 (the manager's Docker API)
    registry: str  # host:port every node and this server's engine reach
    network: str = "dockyard-net"
    workspaces_per_node: int | None = None
    # hostname -> that node's Docker API: deletes then remove volumes there (swarm_volumes)
    node_endpoints: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw: object) -> SwarmSettings:
        """Check and read the section; a ValueError says what is wrong."""
        if not isinstance(raw, Mapping):
            raise ValueError("swarm: must be a mapping with manager, registry and network")
        known = {"manager", "registry", "network", "workspaces_per_node", "node_endpoints"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"swarm: unknown setting(s) {', '.join(sorted(map(str, unknown)))}")
        manager = str(raw.get("manager") or "")
        if not re.match(r"^(unix:///[^\s]+|tcp://[A-Za-z0-9.:\[\]-]+|ssh://[^\s]+)$", manager):
            raise ValueError(
                f"swarm.manager {manager!r} must be unix:///PATH, tcp://HOST:PORT or ssh://..."
            )
        registry = str(raw.get("registry") or "")
        if not _REGISTRY_RE.match(registry):
            raise ValueError(f"swarm.registry {registry!r} must be HOST or HOST:PORT")
        network = str(raw.get("network") or "dockyard-net")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", network):
            raise ValueError(f"swarm.network {network!r} is not a Docker network name")
        per_node = raw.get("workspaces_per_node")
        if per_node is not None and (
            isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1
        ):
            raise ValueError("swarm.workspaces_per_node must be a whole number of at least 1")
        endpoints = check_endpoints(raw.get("node_endpoints"))
        return cls(manager, registry, network, per_node, endpoints)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:12]


class SwarmBackend:
    """Workspaces as one-replica services on a Docker Swarm."""

    name = "swarm"

    def __init__(
        self,
        instance: str,
        settings: SwarmSettings,
        docker: DockerClient | None = None,
        images: ImageBuilder | None = None,
        swarm: SwarmClient | None = None,
        pusher: Pusher | None = None,
        bridge_token: Callable[[str], str] | None = None,
    ) -> None:
        self.instance = instance
        # a task's bridge token (the store has it): commands go through the bridge
        self.bridge_token = bridge_token
        self.settings = settings
        self.docker = docker or DockerClient()
        self.images = images or ImageBuilder(self.docker)
        self.swarm = swarm or SwarmClient(settings.manager)
        self.pusher = pusher or Pusher()
        self._pushed: set[str] = set()  # refs this process pushed (a push is idempotent)
        self._nodes: tuple[float, list[NodeView]] = (0.0, [])
        self._lock = threading.Lock()  # one placement at a time: two creates, two nodes
        self.volumes = VolumeJanitor(
            self.swarm, settings.manager, self._base(), settings.node_endpoints
        )

    # naming ---------------------------------------------------------------
    def _base(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance}

    def _labels(self, task_id: str) -> dict[str, str]:
        return {**self._base(), LABEL_TASK: task_id}

    def _remote(self, local: str, suffix: str = "") -> str:
        """The registry name of a local image: REGISTRY/dockyard/REPO[SUFFIX]:TAG."""
        repo, _, tag = local.rpartition(":")
        if not repo or "/" in tag:
            repo, tag = local, "latest"
        clean = re.sub(r"[^a-z0-9._/-]", "-", repo.lower()).strip("/")
        return f"{self.settings.registry}/dockyard/{clean}{suffix}:{tag}"

    def _service(self, task_id: str) -> ServiceInfo | None:
        found = self.swarm.services(self._labels(task_id))
        if len(found) > 1:
            names = ", ".join(s.name for s in found)
            raise BackendError(f"task {task_id} has {len(found)} services: {names}")
        return found[0] if found else None

    def nodes(self, fresh: bool = False) -> list[NodeView]:
        """The swarm's nodes, read at most once a second unless `fresh`."""
        at, nodes = self._nodes
        if fresh or time.monotonic() - at > NODES_TTL_S:
            nodes = self.swarm.nodes()
            self._nodes = (time.monotonic(), nodes)
        return nodes

    def _node_of(self, service: ServiceInfo) -> NodeView | None:
        node_id = service.labels.get(LABEL_NODE, "")
        return next((n for n in self.nodes() if n.id == node_id), None)

    def _node_settling(self, service: ServiceInfo) -> bool:
        node = self._node_of(service)
        return node is not None and settling(node)

    def _node_problem(self, service: ServiceInfo) -> str | None:
        node = self._node_of(service)
        if node is None:
            name = service.labels.get(LABEL_NODE_NAME) or service.labels.get(LABEL_NODE, "?")
            return f"node {name} left the swarm (the task's disk was on it)"
        return problem(node)

    # the interface --------------------------------------------------------
    def ping(self) -> None:
        """Raise BackendUnavailable unless the manager answers as a manager."""
        self.swarm.ping()

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """Build or find the image locally and push it to the registry (the nodes pull
        it from there); return the local reference."""
        local = self.images.ensure_image(spec.image, spec.template, spec.build, progress)
        self._push(local, self._remote(local), progress)
        return local

    def _push(self, local: str, remote: str, progress: ProgressFn) -> None:
        if remote in self._pushed:
            return
        self.pusher.tag(local, remote)
        progress(f"pushing {remote}")
        self.pusher.push(remote, progress)
        self._pushed.add(remote)

    def _bridge_image(self, image: str, bridge: BridgeBundle, progress: ProgressFn) -> str:
        """The workspace image with this bridge baked in (one layer), pushed."""
        remote = self._remote(image, "-bridge")
        remote = f"{remote.rpartition(':')[0]}:{_digest(image, bridge.digest)}"
        if remote in self._pushed:
            return remote
        if not self.docker.image_exists(remote):
            dockerfile = (
                f"FROM {image}\nUSER 0\n"
                f"COPY bridge.pyz {BRIDGE_LIB_DIR}/bridge.pyz\n"
                f"USER {recipes.AGENT_UID}:{recipes.AGENT_UID}\n"
            )
            self.docker.build(
                recipes.context_tar(
                    {"Dockerfile": dockerfile.encode(), "bridge.pyz": bridge.zipapp}
                ),
                remote,
                {**self._base(), LABEL_BRIDGE: bridge.digest},
                lambda _line: None,
            )
        self._push(remote, remote, progress)
        return remote

    def _secrets(self, task_id: str, bridge: BridgeBundle) -> list[tuple[str, str, str]]:
        """The task's bridge config and token as secrets: (id, name, path) each."""
        labels = self._labels(task_id)
        short = short_id(task_id)
        wanted = {
            f"dockyard-{short}-config-{_digest(bridge.config_json)}": (
                bridge.config_json,
                f"{BRIDGE_DIR}/bridge.json",
            ),
            f"dockyard-{short}-token-{_digest(bridge.token)}": (
                bridge.token.encode(),
                f"{BRIDGE_DIR}/token",
            ),
        }
        return [
            (self.swarm.ensure_secret(name, data, labels), name, path)
            for name, (data, path) in wanted.items()
        ]

    def _prune_secrets(self, task_id: str, keep: list[str]) -> None:
        for sid, name in self.swarm.secrets(self._labels(task_id)):
            if name not in keep:
                self.swarm.remove_secret(sid)  # one still in use stays

    def load(self) -> dict[str, int]:
        """Workspaces per node id, but paused ones (they hold no slot); one created and not
        yet started counts: two creates at once must see each other."""
        counts: dict[str, int] = {}
        for service in self.swarm.services(self._base()):
            node = service.labels.get(LABEL_NODE)
            if node and LABEL_PAUSED not in service.labels:
                counts[node] = counts.get(node, 0) + 1
        return counts

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,
    ) -> None:
        """Choose the node, bake and push the bridge image, and create the service with
        no replica yet (start runs it)."""
        report = progress or (lambda _line: None)
        if self._service(task_id) is not None:
            return
        remote = self._bridge_image(image, bridge, report)
        secrets = self._secrets(task_id, bridge)
        with self._lock:
            if self._service(task_id) is not None:
                return
            try:
                node = choose(
                    self.nodes(fresh=True),
                    spec.placement.constraints,
                    self.load(),
                    self.settings.workspaces_per_node,
                )
            except PlacementError as exc:
                raise BackendUnavailable(
                    str(exc), hint="resume the task once a node can take it"
                ) from exc
            report(f"placing the workspace on node {node.hostname}")
            labels = {
                **self._labels(task_id),
                LABEL_TEMPLATE: spec.template,
                LABEL_NODE: node.id,
                LABEL_NODE_NAME: node.hostname,
                LABEL_BRIDGE: bridge.digest,
                LABEL_IMAGE: image,
            }
            short = short_id(task_id)
            workspace_volume, home_volume = volume_names(task_id)
            volumes = {workspace_volume: spec.workdir, home_volume: recipes.AGENT_HOME}
            self.swarm.create_service(
                name=f"dockyard-{short}",
                image=remote,
                command=BRIDGE_COMMAND,
                labels=labels,
                user=f"{recipes.AGENT_UID}:{recipes.AGENT_UID}",
                workdir=spec.workdir,
                env={"HOME": recipes.AGENT_HOME},
                volumes=volumes,
                read_only=frozenset(),
                secrets=secrets,
                memory=spec.memory,
                cpus=spec.cpus,
                pids=spec.pids,
                cap_add=spec.cap_add,
                constraints=[f"node.id=={node.id}", *spec.placement.constraints],
                network=self.settings.network,
                port=BRIDGE_PORT,
                replicas=0,
                restart=_RESTART.get(spec.lifecycle.restart, "none"),
            )

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """No: the parent's disk is on one node, the child's may be on another."""
        return False

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Refused (see can_fork)."""
        raise BackendError("the swarm backend cannot fork a workspace's disk yet")

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Run the service's one replica on its node, with this server's bridge, and wait
        until its container runs (the node may pull the image first)."""
        report = progress or (lambda _line: None)
        service = self._service(task_id)
        if service is None:
            raise BackendError(f"task {task_id} has no workspace service to start")
        self.nodes(fresh=True)
        why = self._node_problem(service)
        if why is not None:
            raise BackendUnavailable(
                f"{why}; the task's disk is there", hint="resume the task once the node is back"
            )
        current = self._current(service)
        adopt = (
            service.replicas > 0
            and current is not None
            and current.desired == "running"
            and current.state in ("running", *STARTING)
        )
        image = None
        labels = {k: v for k, v in service.labels.items() if k != LABEL_PAUSED}
        if service.labels.get(LABEL_BRIDGE) != bridge.digest:  # this server's bridge is newer
            base = service.labels.get(LABEL_IMAGE, "")
            if not self.docker.image_exists(base):  # made by another server: in the registry
                base = self._remote(base)
            image = self._bridge_image(base, bridge, report)
            labels[LABEL_BRIDGE] = bridge.digest
        secrets = self._secrets(task_id, bridge)
        changed = sorted(name for _, name, _ in secrets) != sorted(service.secrets)
        before = {t.id for t in self.swarm.tasks(service.id)}
        if adopt and current is not None and image is None and not changed:
            # Swarm runs it already (its node came back, or was undrained, and Swarm
            # started the replica it still wanted): take that one, as it is
            self._wait_running(service, before - {current.id}, report)
            return
        self.swarm.update_service(
            service,
            replicas=1,
            image=image,
            secrets=secrets if changed else None,
            labels=labels,
            # one replica wanted already (its task failed, or its node went away and came
            # back): a forced update makes Swarm run a new one
            force=service.replicas > 0 and image is None and not changed,
        )
        self._prune_secrets(task_id, [name for _, name, _ in secrets])
        self._wait_running(service, before, report)

    def _wait_running(self, service: ServiceInfo, before: set[str], report: ProgressFn) -> None:
        node = service.labels.get(LABEL_NODE_NAME, "?")
        started = time.monotonic()
        nudged = False
        said = ""
        while time.monotonic() - started < START_LIMIT_S:
            fresh = [t for t in self.swarm.tasks(service.id) if t.id not in before]
            task = fresh[0] if fresh else None
            state = task.state if task else "new"
            if task is not None and state == "running":
                return
            if task is not None and state in ENDED:
                detail = task.error or f"exit code {task.exit_code}"
                raise BackendError(f"the workspace did not start on node {node}: {detail}")
            if task is None and not nudged and time.monotonic() - started > NUDGE_AFTER_S:
                # Swarm made no task for the replica asked for: a forced update makes one
                nudged = True
                current = self.swarm.inspect_service(service.id)
                if current is not None:
                    self.swarm.update_service(current, force=True)
            if state != said:
                said = state
                what = " (pulling the image)" if state == "preparing" else ""
                report(f"node {node}: {state}{what}")
            time.sleep(0.1)
        raise BackendError(f"the workspace did not start on node {node} within {START_LIMIT_S}s")

    def stop(self, task_id: str) -> None:
        """Scale to no replica (the volumes stay on the node) and wait until Swarm has
        reaped the old task: scaled up again while it is still there, a service may get
        no new task at all."""
        service = self._service(task_id)
        if service is None:
            return
        if service.replicas > 0 or LABEL_PAUSED not in service.labels:
            labels = {**service.labels, LABEL_PAUSED: "true"}
            self.swarm.update_service(service, replicas=0, labels=labels)
        deadline = time.monotonic() + STOP_LIMIT_S
        while time.monotonic() < deadline:
            if not self.swarm.tasks(service.id):
                return
            if self._node_problem(service) is not None:
                return  # a node that is away cannot report its container's end
            time.sleep(0.1)

    def remove(self, task_id: str) -> None:
        """Remove the task's service and secrets, then free its volumes on their node
        (swarm_volumes: Swarm cannot remove a node's volume from the manager). The
        container is not waited for (the manager hears of its end seconds later): a
        volume it still holds is tried again, and the wipe deletes more than once."""
        services = self.swarm.services(self._labels(task_id))
        placed = [
            Placed(s.labels[LABEL_NODE], s.labels.get(LABEL_NODE_NAME, ""), s.image)
            for s in services
            if s.labels.get(LABEL_NODE)
        ]
        for service in services:
            self.swarm.remove_service(service.id)
        for sid, _ in self.swarm.secrets(self._labels(task_id)):
            self.swarm.remove_secret(sid)
        self.volumes.free(task_id, placed)

    def _current(self, service: ServiceInfo) -> TaskInfo | None:
        """The task Swarm wants running (the newest), else the newest of all."""
        tasks = self.swarm.tasks(service.id)
        wanted = [t for t in tasks if t.desired in ("running", "ready", "accepted")]
        found = wanted or tasks
        return found[0] if found else None

    def observe(self, task_id: str) -> Observed:
        """The service's task state, its node's, and the bridge's address."""
        service = self._service(task_id)
        if service is None:
            return Observed(exists=False)
        node_name = service.labels.get(LABEL_NODE_NAME, "")
        why = self._node_problem(service)
        if why is not None and self._node_settling(service):
            # a manager that just restarted has not heard from the node yet: wait
            return Observed(exists=True, running=False, restarting=True, node=node_name)
        if why is not None:
            node = self._node_of(service)
            was_drained = node is not None and drained(node)
            return Observed(
                exists=True, running=False, lost=why, drained=was_drained, node=node_name
            )
        if service.replicas == 0:
            return Observed(exists=True, running=False, node=node_name)
        task = self._current(service)
        if task is None or task.state in STARTING:
            return Observed(exists=True, running=False, restarting=True, node=node_name)
        if task.state == "running":
            node = self._node_of(service)
            port = task.ports.get(BRIDGE_PORT)
            endpoint = f"http://{node.addr}:{port}" if node and node.addr and port else None
            return Observed(exists=True, running=True, endpoint=endpoint, node=node_name)
        return Observed(
            exists=True,
            running=False,
            exit_code=task.exit_code,
            error=task.error,
            node=node_name,
        )

    def tail(self, task_id: str, lines: int) -> list[str]:
        """The last lines the workspace printed (through the manager)."""
        service = self._service(task_id)
        return self.swarm.service_logs(service.id, lines) if service else []

    # Swarm has no cross-node `docker exec` (moby/moby#27552): what needs a process beside
    # the agent runs through the task's bridge while the workspace runs (bridge_exec.py),
    # and beside its volumes on its node, in a one-shot service, while it is stopped
    # (swarm_jobs.py).
    def _bridge(self, task_id: str) -> BridgeExec:
        """The running workspace's bridge, with the task's token."""
        observed = self.observe(task_id)
        if not observed.running or not observed.endpoint:
            why = f": {observed.lost}" if observed.lost else ""
            raise BackendError(f"task {task_id} has no running workspace to run a command in{why}")
        if self.bridge_token is None:
            raise BackendError("this swarm backend was made without a way to read bridge tokens")
        return BridgeExec(observed.endpoint, self.bridge_token(task_id))

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """Run a command in the running workspace through its bridge (as the workspace's
        user; at most 1 MiB of output)."""
        return self._bridge(task_id).run(argv, timeout=EXEC_TIMEOUT_S)

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        """Through the bridge while the workspace runs; while it is stopped, in a one-shot
        service on its node that mounts its volumes (no network unless `network`)."""
        service = self._service(task_id)
        if service is None:
            raise BackendError(f"task {task_id} has no workspace (its disk is gone)")
        if self.observe(task_id).running:
            return self._bridge(task_id).gather(argv, timeout=timeout)
        why = self._node_problem(service)
        if why is not None:
            raise BackendUnavailable(f"{why}; the task's disk is there")
        node = service.labels.get(LABEL_NODE, "")
        workdir, volumes = mounts_of(service.spec)
        if not node or not volumes:
            raise BackendError(f"task {task_id}'s service does not say its node and volumes")
        return run_on_node(
            self.swarm,
            node=node,
            # the workspace's own image (its bridge baked in): its node has it already
            image=service.image,
            name=f"dockyard-job-{short_id(task_id)}-{secrets.token_hex(3)}",
            command=argv,
            labels={**self._base(), LABEL_JOB: task_id},
            user=f"{recipes.AGENT_UID}:{recipes.AGENT_UID}",
            workdir=workdir,
            volumes=volumes,
            env={"HOME": recipes.AGENT_HOME},
            network=self.settings.network if network else None,
            timeout=timeout,
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
        """`task exec`/`shell`/`cp` through the bridge, as the workspace's user. Root is
        refused: the bridge runs as that user, with no capability to become another."""
        if root:
            raise BackendError(
                f"task {task_id} runs on a swarm node, where commands run through its bridge "
                "as the workspace's user: root is not available on this backend"
            )
        return self._bridge(task_id).open_session(argv, tty=tty, size=size, env=env)

    def address(self, task_id: str) -> str:
        """Refused: only the bridge's port is published; open_port carries a stream to a
        workspace port through the bridge instead."""
        raise BackendError(
            f"task {task_id} runs on a swarm node, where only its bridge's port is reachable "
            "from the server: its ports are reached through the bridge (open_port)"
        )

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A stream to the workspace's port, carried by its bridge."""
        return self._bridge(task_id).open_port(port)

    def running_task_ids(self) -> set[str]:
        """Ids of tasks whose service runs its container on a node that is up."""
        services = {s.id: s for s in self.swarm.services(self._base()) if s.replicas > 0}
        if not services:
            return set()
        running = set()
        for task in self.swarm.tasks():
            service = services.get(task.service_id)
            if (
                service is not None
                and task.state == task.desired == "running"
                and (self._node_problem(service) is None or self._node_settling(service))
            ):
                running.add(service.labels.get(LABEL_TASK, ""))
        return running - {""}

    def task_ids(self) -> set[str]:
        """Task ids with a service of this instance."""
        ids = {s.labels.get(LABEL_TASK, "") for s in self.swarm.services(self._base())}
        # The sweep's listing is where ended wipes are removed (a delete does not wait for
        # its wipe); deleted tasks' volumes left on nodes with a known endpoint count, so
        # the sweep's remove frees them.
        self.volumes.reap()
        ids |= self.volumes.leftover_task_ids()
        return {i for i in ids if i}
