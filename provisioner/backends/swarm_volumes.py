"""Freeing a deleted task's disk on its swarm node.

A task's disk is two local volumes on one node, and Swarm cannot remove a node's volume
from the manager. So a delete frees it in one of two ways:

- **Through the node's own Docker API**, when the server's config names it
  (`swarm.node_endpoints: {HOSTNAME: unix:///... or tcp://...}`): the volumes are
  removed outright. One still held by the workspace's container, which is stopping, is
  tried again for a few seconds; one left (or on a node that was away) is found by the
  orphan sweep later (`leftover_task_ids`).
- **Else by a wipe**: a one-shot service pinned to the node (`node.id==`) that mounts
  both volumes and empties them; a delete does not wait for it, and the orphan sweep's
  listing removes it once it has ended. An empty named volume (a few KiB of metadata)
  stays; `docker volume prune -a --filter label=dockyard.managed=true` on the node
  removes it. A wipe for a node that is down waits there: Swarm runs it when the node
  returns.

Wipe services carry `dockyard.wipe=<task id>` and not `dockyard.task`, so nothing that
lists a task's services (observe, load, running tasks) ever takes a wipe for a workspace.
Every Docker call of this job is here, errors translated as in swarm_client.py, but the
wipe service's creation: a one-shot job's (swarm_jobs.start_job), not waited for.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.types import ContainerSpec

from provisioner.backends.swarm_client import ENDED, SwarmClient, _unavailable
from provisioner.backends.swarm_jobs import start_job, volume_mounts
from provisioner.errors import BackendError
from provisioner.placement import problem

log = logging.getLogger(__name__)

LABEL_WIPE = "dockyard.wipe"  # the task id whose disk a wipe service empties
WIPE_ROOT = "/wipe"
IN_USE_WAIT_S = 15.0  # the stopping container may hold a volume this long
# root without capabilities cannot read a directory the agent made unreadable, nor
# unlink in a sticky one: these two, and nothing else, let the wipe empty everything
WIPE_CAPS = ["CAP_DAC_OVERRIDE", "CAP_FOWNER"]


def short_id(task_id: str) -> str:
    return task_id.replace("-", "")[:12]


def volume_names(task_id: str) -> tuple[str, str]:
    """The task's two volumes on its node: the working directory's and the home's."""
    short = short_id(task_id)
    return f"dockyard-{short}-workspace", f"dockyard-{short}-home"


def wipe_command(task_id: str) -> list[str]:
    """Empty both volumes (dot files too), again over a few seconds (the workspace's
    container, killed just before, may still write while it dies), and fail unless they
    are empty at the end."""
    dirs = " ".join(f"{WIPE_ROOT}/{v}" for v in volume_names(task_id))
    wipe = f"find {dirs} -mindepth 1 -delete"
    return [
        "sh",
        "-c",
        f"for i in 1 2 3; do {wipe}; sleep 1; done; {wipe}; "
        f'test -z "$(find {dirs} -mindepth 1 -print -quit)"',
    ]


@dataclass(frozen=True)
class Placed:
    """Where a removed workspace's disk is: its node, and an image that node has."""

    node_id: str
    node_name: str
    image: str


@dataclass(frozen=True)
class Freed:
    """What a delete did with one node's volumes (for the log and the tests)."""

    node_name: str
    how: str  # removed | wiping | gone | pending (the node is away, or a volume in use)
    detail: str = ""


def check_endpoints(raw: object) -> dict[str, str]:
    """`swarm.node_endpoints`: {hostname: Docker URL}; a ValueError says what is wrong."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("swarm.node_endpoints must map node hostnames to Docker URLs")
    found: dict[str, str] = {}
    for name, url in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}", name):
            raise ValueError(f"swarm.node_endpoints: {str(name)[:80]!r} is not a node hostname")
        text = str(url or "")
        if not re.fullmatch(r"unix:///[^\s]+|tcp://[A-Za-z0-9.:\[\]-]+|ssh://[^\s]+", text):
            raise ValueError(
                f"swarm.node_endpoints.{name} {text[:80]!r} must be unix:///PATH, "
                "tcp://HOST:PORT or ssh://..."
            )
        found[name] = text
    return found


class VolumeJanitor:
    """Frees deleted tasks' volumes on their nodes (see the module's docstring)."""

    def __init__(
        self,
        swarm: SwarmClient,
        manager: str,
        base_labels: Mapping[str, str],
        endpoints: Mapping[str, str] | None = None,
        connect: Callable[[str], Any] | None = None,
    ) -> None:
        self.swarm = swarm
        self.manager = manager
        self.base = dict(base_labels)
        self.endpoints = dict(endpoints or {})
        self._connect = connect or (
            lambda url: docker.APIClient(base_url=url, version="auto", timeout=30)
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, url: str) -> Any:
        with self._lock:
            if url not in self._clients:
                self._clients[url] = self._connect(url)
            return self._clients[url]

    # a delete ------------------------------------------------------------------------
    def free(self, task_id: str, placed: list[Placed]) -> list[Freed]:
        """Free the task's volumes on each node its removed services were on (with no
        service left: on every node with an endpoint), and reap its ended wipes."""
        self.reap(task_id)  # an ended wipe of an earlier remove: a new one runs again
        done = []
        for where in placed:
            url = self.endpoints.get(where.node_name)
            if url is not None:
                try:
                    done.append(self._remove_on_node(task_id, where.node_name, url, IN_USE_WAIT_S))
                except BackendError as exc:  # the node is away: never a reason to fail a delete
                    done.append(Freed(where.node_name, "pending", f"{exc}: the sweep retries"))
            else:
                done.append(self._wipe(task_id, where))
        if not placed:
            for name, url in self.endpoints.items():
                with contextlib.suppress(BackendError):
                    self._remove_on_node(task_id, name, url, 0)
        for freed in done:
            log.info("volumes of task %s on node %s: %s %s", task_id, *vars(freed).values())
        return done

    def _remove_on_node(self, task_id: str, node: str, url: str, wait_s: float) -> Freed:
        """Remove the task's volumes through the node's Docker API (a missing one is
        gone already); one in use is tried again until `wait_s` has passed."""
        try:
            client = self._client(url)
        except Exception as exc:
            raise _unavailable(exc, f"reach node {node}'s Docker API {url}") from exc
        deadline = time.monotonic() + wait_s
        left = list(volume_names(task_id))
        while True:
            for name in list(left):
                try:
                    client.remove_volume(name)
                    left.remove(name)
                except docker.errors.NotFound:
                    left.remove(name)
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: in use by the stopping container
                        raise _unavailable(exc, f"remove volume {name} on node {node}") from exc
                except Exception as exc:
                    raise _unavailable(exc, f"remove volume {name} on node {node}") from exc
            if not left:
                return Freed(node, "removed")
            if time.monotonic() >= deadline:
                return Freed(node, "pending", f"{', '.join(left)} still in use: the sweep retries")
            time.sleep(0.2)

    def _wipe(self, task_id: str, where: Placed) -> Freed:
        """Start the wipe on the node; the sweep's `reap` removes it once it has ended (a
        delete does not wait for it: the node may be busy, or away)."""
        node = next((n for n in self.swarm.nodes() if n.id == where.node_id), None)
        if node is None:
            return Freed(where.node_name, "gone", "the node left the swarm, its disk with it")
        self._start_wipe(task_id, where)
        why = problem(node)
        if why is not None:  # Swarm runs it once the node is back
            return Freed(where.node_name, "pending", f"{why}: the wipe runs when it is back")
        return Freed(where.node_name, "wiping")

    def _start_wipe(self, task_id: str, where: Placed) -> str:
        labels = {**self.base, LABEL_WIPE: task_id}
        name = f"dockyard-{short_id(task_id)}-wipe"
        for found in self.swarm.services(labels):
            return found.id  # one made by an earlier try
        container = ContainerSpec(
            image=where.image,
            command=wipe_command(task_id),
            user="0:0",
            labels=labels,
            mounts=volume_mounts({vol: f"{WIPE_ROOT}/{vol}" for vol in volume_names(task_id)}),
            cap_drop=["ALL"],
            cap_add=WIPE_CAPS,
        )
        try:
            return start_job(
                self._client(self.manager),
                node=where.node_id,
                name=name,
                labels=labels,
                container=container,
                resources={"Limits": {"MemoryBytes": 64 * 1024**2, "Pids": 64}},
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # another server's delete made it just now
                for found in self.swarm.services(labels):
                    return found.id
            raise _unavailable(exc, f"create service {name}") from exc
        except Exception as exc:
            raise _unavailable(exc, f"create service {name}") from exc

    # the sweep -----------------------------------------------------------------------
    def reap(self, task_id: str | None = None) -> set[str]:
        """Remove the wipe services (of one task, or all) that have ended, or whose node
        left the swarm; return the task ids of those still waiting."""
        labels = {**self.base, LABEL_WIPE: task_id} if task_id else dict(self.base)
        nodes = {n.id for n in self.swarm.nodes()}
        waiting = set()
        for service in self.swarm.services(labels):
            wiped = service.labels.get(LABEL_WIPE)
            if not wiped:
                continue  # a workspace's service
            tasks = self.swarm.tasks(service.id)
            constraint = next(
                (
                    c
                    for c in (service.spec.get("TaskTemplate") or {})
                    .get("Placement", {})
                    .get("Constraints", [])
                    if c.startswith("node.id==")
                ),
                "",
            )
            gone = constraint.removeprefix("node.id==") not in nodes
            if gone or (tasks and tasks[0].state in ENDED):
                if tasks and tasks[0].state not in ("complete",) and not gone:
                    log.warning("the wipe of task %s's disk failed: %s", wiped, tasks[0].error)
                self.swarm.remove_service(service.id)
            else:
                waiting.add(wiped)
        return waiting

    def leftover_task_ids(self) -> set[str]:
        """Task ids with volumes of this instance on the nodes whose endpoint is known
        (a node that does not answer is skipped: the next sweep asks again)."""
        flt = {"label": [f"{k}={v}" for k, v in self.base.items()]}
        found: set[str] = set()
        for name, url in self.endpoints.items():
            try:
                volumes = self._client(url).volumes(filters=flt).get("Volumes") or []
            except Exception as exc:
                log.warning("cannot list the volumes of node %s: %s", name, exc)
                continue
            found |= {(v.get("Labels") or {}).get("dockyard.task", "") for v in volumes} - {""}
        return found

    def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
