"""One-shot jobs on a chosen swarm node: a command beside a stopped workspace's volumes.

A paused task's disk is two local volumes on one node, and Swarm has no cross-node exec
(moby/moby#27552) nor `docker run` on another node: the only way to run something there
is a service pinned to the node. `run_on_node` makes one with a single replica that is
never restarted, mounting the volumes, waits for its one task to end, and returns its
exit code and output (the service's logs, through the manager); the service is removed
afterwards, whatever happened. `task diff` of a paused task, and the checkpoint before a
pause or delete, run through it.
"""

from __future__ import annotations

import time
from typing import Any

import docker.errors
from docker.types import (
    ContainerSpec,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from provisioner.backends.swarm_client import ENDED, SwarmClient, TaskInfo, _unavailable
from provisioner.errors import BackendError

LABEL_JOB = "dockyard.job"  # a job's task id (never dockyard.task: it is not the workspace)
# Swarm offers no "none" network to a service (only "bridge" and "host" are predefined):
# a job without network is attached to an internal overlay network, which has no way out
ISOLATED = "dockyard-isolated"
POLL_S = 0.2


def mounts_of(spec: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """A service spec's working directory and volumes ({volume: path})."""
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    volumes = {
        str(m["Source"]): str(m["Target"])
        for m in container.get("Mounts") or []
        if m.get("Type", "volume") == "volume" and m.get("Source") and m.get("Target")
    }
    return container.get("Dir") or None, volumes


def run_on_node(
    swarm: SwarmClient,
    *,
    node: str,
    image: str,
    name: str,
    command: list[str],
    labels: dict[str, str],
    user: str,
    workdir: str | None,
    volumes: dict[str, str],
    env: dict[str, str],
    network: str | None,
    timeout: float,
) -> tuple[int, str]:
    """Run `command` once on the node with id `node`, with `volumes` mounted, as `user`,
    every capability dropped, on `network` (else an internal network with no way out);
    (exit code, output). BackendError when it cannot start there or does not end within
    `timeout`."""
    api = swarm._api  # the manager's API; jobs are the only services made outside SwarmClient
    if network is None:
        network = isolated_network(api, {k: v for k, v in labels.items() if k != LABEL_JOB})
    container = dict(
        ContainerSpec(
            image=image,
            command=command,
            env=env,
            workdir=workdir,
            user=user,
            labels=labels,
            mounts=volume_mounts(volumes),
            init=True,
            cap_drop=["ALL"],
        )
    )
    container["Privileges"] = {"NoNewPrivileges": True}
    try:
        service = start_job(
            api, node=node, name=name, labels=labels, container=container, networks=[network]
        )
    except Exception as exc:
        raise _unavailable(exc, f"create job service {name}") from exc
    try:
        task = _wait_ended(swarm, service, name, timeout)
        if task.state != "complete" and task.exit_code is None:
            raise BackendError(f"{name} did not run on its node: {task.error or task.state}")
        return int(task.exit_code or 0), _logs(api, service)
    finally:
        swarm.remove_service(service)


def start_job(
    api: Any,
    *,
    node: str,
    name: str,
    labels: dict[str, str],
    container: ContainerSpec | dict[str, Any],
    networks: list[str] | None = None,
    resources: dict[str, Any] | None = None,
) -> str:
    """Create a one-shot service: one replica, never restarted, pinned to the node with
    id `node`, attached to `networks` (none: Swarm's default); return its id. Docker's
    errors are the caller's to translate (what it was doing; whether a 409 means another
    server made it meanwhile). `run_on_node` waits for it; a disk's wipe does not."""
    template = TaskTemplate(
        container_spec=container,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[f"node.id=={node}"]),
        networks=[NetworkAttachmentConfig(n) for n in networks] if networks else None,
        resources=resources,
    )
    mode = ServiceMode("replicated", replicas=1)
    return str(api.create_service(template, name=name, labels=labels, mode=mode)["ID"])


def volume_mounts(volumes: dict[str, str]) -> list[Mount]:
    """Mounts of named volumes ({volume: path})."""
    return [Mount(target=path, source=vol, type="volume") for vol, path in volumes.items()]


def isolated_network(api: Any, labels: dict[str, str]) -> str:
    """The internal overlay network for jobs without network (made once, labelled)."""
    try:
        if not api.networks(names=[ISOLATED]):
            api.create_network(
                ISOLATED, driver="overlay", internal=True, labels=labels, check_duplicate=True
            )
    except docker.errors.APIError as exc:
        if not api.networks(names=[ISOLATED]):  # another server made it meanwhile: fine
            raise BackendError(f"cannot make the network {ISOLATED} for jobs: {exc}") from exc
    return ISOLATED


def _wait_ended(swarm: SwarmClient, service: str, name: str, timeout: float) -> TaskInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = swarm.tasks(service)
        if tasks and tasks[0].state in ENDED:
            return tasks[0]
        time.sleep(POLL_S)
    raise BackendError(f"{name} did not finish within {timeout:g}s")


def _logs(api: Any, service: str) -> str:
    """The job's whole output, stdout and stderr (as the node's log driver keeps them)."""
    try:
        raw = api.service_logs(service, stdout=True, stderr=True, follow=False, tail="all")
        data = raw if isinstance(raw, bytes) else b"".join(raw)
    except docker.errors.APIError as exc:
        raise BackendError(f"the job's output cannot be read: {exc}") from exc
    return data.decode("utf-8", "replace")
