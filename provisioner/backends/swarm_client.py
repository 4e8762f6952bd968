"""Every docker-SDK call the Swarm backend makes to a manager, errors translated.

Like docker_client.py for the Docker backend: nothing else imports `docker` for Swarm,
and callers get typed results (placement's NodeView, ServiceInfo, TaskInfo) and our
errors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Mount,
    Placement,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from provisioner.backends.docker_client import _translate
from provisioner.errors import BackendError, BackendUnavailable, ImageBuildError
from provisioner.placement import NodeView

MANAGER_HINT = "check the server's swarm.manager setting and that the manager's dockerd runs"
# Docker's size units -> bytes, for a memory limit such as "512m"
UPDATE_TRIES = 5
STOP_GRACE_NS = 5 * 10**9
_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(text: str | None) -> int | None:
    """A Docker memory size ("512m", "2g", "1048576") in bytes."""
    if not text:
        return None
    value = text.strip().lower()
    unit = value[-1] if value[-1] in _UNITS else "b"
    number = value[:-1] if value[-1] in _UNITS else value
    return int(float(number) * _UNITS[unit])


# the Swarm task states a task never leaves: its container has ended, or never will run
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


@dataclass(frozen=True)
class TaskInfo:
    """One Swarm task (a container a service asked for), as the manager sees it."""

    id: str
    service_id: str
    node_id: str
    state: str  # new ... preparing, starting, running, complete, failed, shutdown, rejected
    desired: str
    error: str
    exit_code: int | None
    ports: dict[int, int]  # target port -> published port (host mode)
    created: str

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TaskInfo:
        status = attrs.get("Status") or {}
        ports = ((status.get("PortStatus") or {}).get("Ports")) or []
        container = status.get("ContainerStatus") or {}
        return cls(
            id=attrs["ID"],
            service_id=attrs.get("ServiceID") or "",
            node_id=attrs.get("NodeID") or "",
            state=status.get("State") or "new",
            desired=attrs.get("DesiredState") or "",
            error=status.get("Err") or "",
            exit_code=container.get("ExitCode"),
            ports={
                int(p["TargetPort"]): int(p["PublishedPort"])
                for p in ports
                if p.get("PublishedPort")
            },
            created=attrs.get("CreatedAt") or "",
        )


@dataclass(frozen=True)
class ServiceInfo:
    """The parts of a service the backend reads."""

    id: str
    name: str
    version: int
    replicas: int
    labels: dict[str, str]
    secrets: list[str]  # secret names
    image: str
    spec: dict[str, Any]  # raw, for updates

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ServiceInfo:
        spec = attrs.get("Spec") or {}
        template = spec.get("TaskTemplate") or {}
        container = template.get("ContainerSpec") or {}
        return cls(
            id=attrs["ID"],
            name=spec.get("Name", ""),
            version=int((attrs.get("Version") or {}).get("Index", 0)),
            replicas=int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)),
            labels=spec.get("Labels") or {},
            secrets=[s.get("SecretName", "") for s in container.get("Secrets") or []],
            image=container.get("Image", ""),
            spec=spec,
        )


def _updated(
    spec: dict[str, Any],
    replicas: int | None,
    image: str | None,
    secrets: list[tuple[str, str, str]] | None,
    labels: dict[str, str] | None,
    force: bool,
) -> dict[str, Any]:
    """A service spec with the given changes (the others kept)."""
    template = dict(spec.get("TaskTemplate") or {})
    container = dict(template.get("ContainerSpec") or {})
    if image is not None:
        container["Image"] = image
    if secrets is not None:
        container["Secrets"] = [
            {
                "SecretID": sid,
                "SecretName": sname,
                "File": {"Name": path, "UID": "1000", "GID": "1000", "Mode": 0o600},
            }
            for sid, sname, path in secrets
        ]
    template["ContainerSpec"] = container
    if force:
        template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
    mode = spec.get("Mode") or {}
    if replicas is not None:
        mode = {"Replicated": {"Replicas": replicas}}
    body = {**spec, "TaskTemplate": template, "Mode": mode}
    if labels is not None:
        body["Labels"] = labels
    return body


def _node_view(attrs: dict[str, Any]) -> NodeView:
    spec = attrs.get("Spec") or {}
    desc = attrs.get("Description") or {}
    status = attrs.get("Status") or {}
    platform = desc.get("Platform") or {}
    return NodeView(
        id=attrs["ID"],
        hostname=desc.get("Hostname") or attrs["ID"][:12],
        role=spec.get("Role") or "worker",
        state=status.get("State") or "unknown",
        availability=spec.get("Availability") or "active",
        addr=status.get("Addr") or "",
        message=status.get("Message") or "",
        labels=spec.get("Labels") or {},
        engine_labels=((desc.get("Engine") or {}).get("Labels")) or {},
        os=(platform.get("OS") or "linux").lower(),
        arch=platform.get("Architecture") or "",
    )


def _unavailable(exc: Exception, what: str) -> BackendError:
    err = _translate(exc, what)
    if isinstance(err, BackendUnavailable):
        return BackendUnavailable(f"the swarm manager is not reachable ({what})", hint=MANAGER_HINT)
    return err


class SwarmClient:
    """The manager's API: services, tasks, nodes, secrets."""

    def __init__(self, base_url: str, timeout: int = 30) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()

    @property
    def _api(self) -> docker.APIClient:
        # lazily, like DockerClient: the server starts (and says what is wrong) without it
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.APIClient(
                        base_url=self._base_url, version="auto", timeout=self._timeout
                    )
                except docker.errors.DockerException as exc:
                    raise BackendUnavailable(
                        f"the swarm manager at {self._base_url} is not reachable: {exc}",
                        hint=MANAGER_HINT,
                    ) from exc
            return self._client

    def ping(self) -> None:
        """Raise BackendUnavailable unless the manager answers and is a swarm manager."""
        try:
            info = self._api.info()
        except Exception as exc:
            raise BackendUnavailable(
                f"the swarm manager at {self._base_url} is not reachable", hint=MANAGER_HINT
            ) from exc
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            raise BackendUnavailable(
                f"the Docker engine at {self._base_url} is not a swarm manager "
                f"(swarm state: {swarm.get('LocalNodeState') or 'inactive'})",
                hint="point swarm.manager at a manager node (docker swarm init there)",
            )

    # nodes ----------------------------------------------------------------
    def nodes(self) -> list[NodeView]:
        """Every node of the swarm."""
        try:
            return [_node_view(n) for n in self._api.nodes()]
        except Exception as exc:
            raise _unavailable(exc, "list swarm nodes") from exc

    # services -------------------------------------------------------------
    def services(self, labels: dict[str, str]) -> list[ServiceInfo]:
        """Services carrying every given label."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            return [ServiceInfo.from_attrs(s) for s in self._api.services(filters=filters)]
        except Exception as exc:
            raise _unavailable(exc, "list services") from exc

    def tasks(self, service: str | None = None) -> list[TaskInfo]:
        """Tasks of one service (or of all), newest first."""
        filters = {"service": service} if service else {}
        try:
            found = [TaskInfo.from_attrs(t) for t in self._api.tasks(filters=filters)]
        except docker.errors.NotFound:
            return []
        except Exception as exc:
            raise _unavailable(exc, "list tasks") from exc
        return sorted(found, key=lambda t: t.created, reverse=True)

    def create_service(
        self,
        *,
        name: str,
        image: str,
        command: list[str],
        labels: dict[str, str],
        user: str,
        workdir: str,
        env: dict[str, str],
        volumes: dict[str, str],
        read_only: frozenset[str],
        secrets: list[tuple[str, str, str]],  # (id, name, absolute path in the container)
        memory: str | None,
        cpus: float | None,
        pids: int | None,
        cap_add: tuple[str, ...],
        constraints: list[str],
        network: str,
        port: int,
        replicas: int,
        restart: str,
    ) -> str:
        """Create a replicated service of one hardened container; return its id."""
        mounts = [
            Mount(
                target=path,
                source=vol,
                type="volume",
                read_only=vol in read_only,
                labels=labels,
            )
            for vol, path in volumes.items()
        ]
        container = ContainerSpec(
            image=image,
            command=command,
            env=env,
            workdir=workdir,
            user=user,
            labels=labels,
            mounts=mounts,
            secrets=[
                SecretReference(sid, sname, filename=path, uid="1000", gid="1000", mode=0o600)
                for sid, sname, path in secrets
            ],
            init=True,  # reap zombies the agent leaves behind
            stop_grace_period=STOP_GRACE_NS,  # as the Docker backend's stop: then SIGKILL
            cap_drop=["ALL"],
            cap_add=list(cap_add) or None,
        )
        spec_container: dict[str, Any] = dict(container)
        # Engine API 1.44 (Docker 25) applies it to services; older engines ignore the
        # field, and the empty capability bounding set is what leaves a setuid program
        # powerless there
        spec_container["Privileges"] = {"NoNewPrivileges": True}
        limits: dict[str, int] = {}
        if cpus:
            limits["NanoCPUs"] = int(cpus * 1e9)
        if memory:
            limits["MemoryBytes"] = memory_bytes(memory) or 0
        if pids:
            limits["Pids"] = pids  # Engine API 1.41
        template = TaskTemplate(
            container_spec=spec_container,
            resources={"Limits": limits},
            restart_policy=RestartPolicy(condition=restart),
            placement=Placement(constraints=constraints),
            networks=[network],
        )
        try:
            created = self._api.create_service(
                template,
                name=name,
                labels=labels,
                mode=ServiceMode("replicated", replicas=replicas),
                endpoint_spec=EndpointSpec(
                    ports=[{"TargetPort": port, "Protocol": "tcp", "PublishMode": "host"}]
                ),
            )
        except Exception as exc:
            raise _unavailable(exc, f"create service {name}") from exc
        return str(created["ID"])

    def update_service(
        self,
        service: ServiceInfo,
        *,
        replicas: int | None = None,
        image: str | None = None,
        secrets: list[tuple[str, str, str]] | None = None,
        labels: dict[str, str] | None = None,
        force: bool = False,
    ) -> None:
        """Change a service's replicas, image, secrets or labels, on its current spec.

        Swarm itself updates a service just after its creation (the allocator records its
        ports), so a version read a moment ago may be stale: the update is made again on
        the spec read anew ("update out of sequence")."""
        for attempt in range(UPDATE_TRIES):
            if attempt:
                service = self.inspect_service(service.id) or service
            body = _updated(service.spec, replicas, image, secrets, labels, force)
            try:
                url = self._api._url("/services/{0}/update", service.id)
                response = self._api._post_json(url, data=body, params={"version": service.version})
                self._api._raise_for_status(response)
                return
            except docker.errors.APIError as exc:
                if "out of sequence" not in str(exc) or attempt == UPDATE_TRIES - 1:
                    raise _unavailable(exc, f"update service {service.name}") from exc
            except Exception as exc:
                raise _unavailable(exc, f"update service {service.name}") from exc

    def inspect_service(self, service: str) -> ServiceInfo | None:
        """One service as it is now; None when it is gone."""
        try:
            return ServiceInfo.from_attrs(self._api.inspect_service(service))
        except docker.errors.NotFound:
            return None
        except Exception as exc:
            raise _unavailable(exc, f"inspect service {service}") from exc

    def remove_service(self, service: str) -> None:
        """Remove a service; a missing one is fine."""
        try:
            self._api.remove_service(service)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            raise _unavailable(exc, f"remove service {service}") from exc

    def service_logs(self, service: str, lines: int) -> list[str]:
        """The last lines a service's containers printed (empty when a node is away)."""
        try:
            raw = self._api.service_logs(service, stdout=True, stderr=True, tail=lines)
            data = b"".join(raw) if not isinstance(raw, bytes) else raw
        except Exception:
            return []
        return data.decode("utf-8", "replace").splitlines()[-lines:]

    # secrets --------------------------------------------------------------
    def ensure_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        """The id of the secret `name`, created with `data` unless it exists (secrets are
        immutable: the name carries the content's hash)."""
        try:
            found = self._api.secrets(filters={"name": name})
            exact = [s for s in found if (s.get("Spec") or {}).get("Name") == name]
            if exact:
                return str(exact[0]["ID"])
            return str(self._api.create_secret(name=name, data=data, labels=labels)["ID"])
        except Exception as exc:
            raise _unavailable(exc, f"create secret {name}") from exc

    def secrets(self, labels: dict[str, str]) -> list[tuple[str, str]]:
        """(id, name) of secrets carrying every given label."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            return [(s["ID"], s["Spec"]["Name"]) for s in self._api.secrets(filters=filters)]
        except Exception as exc:
            raise _unavailable(exc, "list secrets") from exc

    def remove_secret(self, secret: str) -> None:
        """Remove a secret; a missing or still used one is left."""
        with contextlib.suppress(docker.errors.APIError):
            self._api.remove_secret(secret)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        if self._client is not None:
            self._client.close()


class Pusher:
    """Pushes images from the server's own Docker engine to the registry."""

    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()

    @property
    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                kwargs = docker.utils.kwargs_from_env()
                if self._base_url:
                    kwargs["base_url"] = self._base_url
                self._client = docker.APIClient(version="auto", timeout=600, **kwargs)
            return self._client

    def tag(self, source: str, ref: str) -> None:
        """Tag a local image with its registry name."""
        repository, _, tag = ref.rpartition(":")
        try:
            self._api.tag(source, repository, tag)
        except Exception as exc:
            raise _translate(exc, f"tag {source} as {ref}") from exc

    def push(self, ref: str, on_line: Callable[[str], None]) -> None:
        """Push `ref`, reporting progress a line per layer step (not per byte)."""
        repository, _, tag = ref.rpartition(":")
        try:
            stream: Iterator[dict[str, Any]] = self._api.push(
                repository, tag=tag, stream=True, decode=True
            )
            for chunk in stream:
                if "error" in chunk:
                    raise ImageBuildError(
                        f"pushing {ref} failed: {chunk['error']}",
                        hint="check that the registry in swarm.registry runs and "
                        "this server's Docker engine may push to it",
                    )
                status = chunk.get("status") or ""
                if status and status not in ("Pushing", "Waiting", "Preparing"):
                    layer = chunk.get("id")
                    on_line(f"push {ref}: {layer + ' ' if layer else ''}{status}")
        except ImageBuildError:
            raise
        except Exception as exc:
            raise _translate(exc, f"push {ref}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
