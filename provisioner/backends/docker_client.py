"""Every docker-SDK call Dockyard makes, with errors translated and transient ones retried.

Nothing outside this module imports `docker`; callers get typed results and our errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions
import urllib3.exceptions
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from provisioner.backends.base import BRIDGE_CONFIG_ENV, BRIDGE_TOKEN_ENV
from provisioner.errors import BackendError, BackendUnavailable, ImageBuildError

START_HINT = "start it with: sudo dockerd & (or: sudo systemctl start docker)"


class TransientDockerError(BackendError):
    """A Docker failure worth retrying: the daemon was briefly away or busy."""


def _translate(exc: Exception, what: str) -> BackendError:
    if isinstance(exc, BackendError):  # already ours (e.g. the daemon is down): keep its class
        return exc
    if isinstance(exc, requests.exceptions.ConnectionError) or (
        isinstance(exc, docker.errors.DockerException)
        and not isinstance(exc, docker.errors.APIError)
        and "onnect" in str(exc)
    ):
        return BackendUnavailable(f"Docker is not running ({what} failed)", hint=START_HINT)
    if isinstance(exc, docker.errors.APIError):
        code = exc.status_code or 0
        detail = exc.explanation or str(exc)
        if code in (500, 502, 503) or (code == 409 and "in progress" in str(detail)):
            return TransientDockerError(f"{what}: {detail}")
        return BackendError(f"{what}: {detail}")
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientDockerError(f"{what}: the Docker daemon timed out")
    return BackendError(f"{what}: {exc}")


# blanked for `docker exec`ed commands, which otherwise inherit the container's environment
_EXEC_ENV = {BRIDGE_CONFIG_ENV: "", BRIDGE_TOKEN_ENV: ""}

_retry = retry(
    retry=retry_if_exception_type(TransientDockerError),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


@dataclass(frozen=True)
class ContainerInfo:
    """The parts of `docker inspect` Dockyard reads."""

    id: str
    name: str
    status: str  # created, running, paused, restarting, exited, dead
    running: bool
    exit_code: int | None
    oom_killed: bool
    error: str
    ip_address: str | None
    labels: dict[str, str]
    image: str = ""  # the image's id

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ContainerInfo:
        """Build from the raw inspect JSON."""
        state = attrs.get("State") or {}
        networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
        return cls(
            id=attrs["Id"],
            name=attrs.get("Name", "").lstrip("/"),
            status=state.get("Status", "unknown"),
            running=bool(state.get("Running")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            error=state.get("Error") or "",
            ip_address=ip,
            labels=(attrs.get("Config") or {}).get("Labels") or {},
            image=str(attrs.get("Image") or ""),
        )


def read_timed_out(exc: BaseException) -> bool:
    """Whether a request to Docker ran out of time reading the answer (a wait past its
    timeout). Over Docker's unix socket that comes as a ConnectionError wrapping urllib3's
    ReadTimeoutError, not as requests' ReadTimeout: taken for a lost daemon, it read
    "Docker is not running"."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return False
    return isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)


# A daemon that answered within this many seconds is taken to be up without a ping
PING_FRESH_S = 1.0

# A build that should yield the CPU to other work (the test suite's background prebuild,
# which runs beside the fast tier) sets this: the weight of its RUN steps' containers
# against the default 1024. Unset, builds get Docker's default.
BUILD_CPU_SHARES_ENV = "DOCKYARD_BUILD_CPU_SHARES"


def build_limits() -> dict[str, int] | None:
    """`container_limits` for `docker build` from the environment (None: Docker's own)."""
    raw = os.environ.get(BUILD_CPU_SHARES_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 2 <= int(raw) <= 262144:
        raise ImageBuildError(
            f"{BUILD_CPU_SHARES_ENV}={raw!r} is not a CPU weight: give a whole number "
            "from 2 to 262144 (1024 is Docker's default), or unset it"
        )
    return {"cpushares": int(raw)}


class DockerClient:
    """A thin, typed wrapper over the docker SDK's low-level API."""

    def __init__(self, base_url: str | None = None, timeout: int = 60) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._answered_at = float("-inf")  # monotonic time of the daemon's last answer

    @property
    def _api(self) -> docker.APIClient:
        # Connect lazily: a server must start (and say what is wrong) while Docker is down.
        with self._lock:
            if self._client is None:
                kwargs = docker.utils.kwargs_from_env()
                if self._base_url:
                    kwargs["base_url"] = self._base_url
                try:
                    client = docker.APIClient(version="auto", timeout=self._timeout, **kwargs)
                except docker.errors.DockerException as exc:
                    raise BackendUnavailable(
                        f"Docker is not running (cannot connect: {exc})", hint=START_HINT
                    ) from exc
                # any answer, whatever its status, says the daemon is up (see ping)
                client.hooks["response"].append(self._heard)
                # requests would read proxy settings from os.environ on every call: a
                # thread changing the environment meanwhile (a CLI run in the server's
                # process, as tests do) failed calls with KeyError('DOCKYARD_URL'); the
                # daemon's address, TLS and certificates come from kwargs_from_env above
                client.trust_env = False
                self._client = client
            return self._client

    def _heard(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._answered_at = time.monotonic()

    def ping(self) -> None:
        """Raise BackendUnavailable unless the daemon answers. One that answered anything
        in the last PING_FRESH_S is not asked again (a create checks Docker first: that
        request cost every create ~5 ms while the engine talks to Docker all the time)."""
        if time.monotonic() - self._answered_at < PING_FRESH_S:
            return
        try:
            self._api.ping()
        except Exception as exc:
            raise BackendUnavailable("Docker is not running", hint=START_HINT) from exc

    # images ---------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        """True when the image is present locally."""
        try:
            self._api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except Exception as exc:
            raise _translate(exc, f"inspect image {ref}") from exc

    def import_rootfs(
        self, tar_path: str, repository: str, tag: str, labels: dict[str, str]
    ) -> None:
        """`docker import` a root filesystem tarball."""
        changes = [f'LABEL {k}="{v}"' for k, v in labels.items()]
        changes.append('CMD ["/bin/bash"]')
        try:
            self._api.import_image_from_file(
                tar_path, repository=repository, tag=tag, changes=changes
            )
        except Exception as exc:
            raise ImageBuildError(f"docker import of {tar_path} failed: {exc}") from exc

    def build(
        self,
        context_tar: bytes,
        tag: str,
        labels: dict[str, str],
        on_line: Callable[[str], None],
    ) -> None:
        """`docker build` from an in-memory context, streaming progress lines to on_line."""
        tail: list[str] = []
        try:
            stream: Iterator[dict[str, Any]] = self._api.build(
                fileobj=io.BytesIO(context_tar),
                custom_context=True,
                tag=tag,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
                container_limits=build_limits(),
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("error", "").strip()
                    raise ImageBuildError(
                        f"building {tag} failed: {detail}\n" + "\n".join(tail[-15:])
                    )
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        on_line(line)
        except ImageBuildError:
            raise
        except Exception as exc:
            raise _translate(exc, f"build {tag}") from exc

    def images_with_label(self, label: str) -> list[tuple[str, list[str]]]:
        """(id, tags) of local images carrying the label (key or key=value)."""
        try:
            return [
                (i["Id"], i.get("RepoTags") or [])
                for i in self._api.images(filters={"label": label})
            ]
        except Exception as exc:
            raise _translate(exc, "list images") from exc

    def remove_image(self, ref: str) -> None:
        """Remove an image; one still used by a container is left alone."""
        try:
            self._api.remove_image(ref, noprune=False)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise _translate(exc, f"remove image {ref}") from exc

    # containers -----------------------------------------------------------
    @_retry
    def create_container(
        self,
        *,
        image: str,
        name: str,
        command: list[str],
        labels: dict[str, str],
        user: str,
        workdir: str,
        env: dict[str, str],
        volumes: dict[str, str],
        memory: str | None,
        cpus: float | None,
        pids: int | None,
        cap_add: tuple[str, ...] = (),
        restart: str = "no",
        read_only: frozenset[str] = frozenset(),
        volume_labels: dict[str, str] | None = None,
    ) -> str:
        """Create (not start) a hardened container; return its id. `read_only`: volumes
        mounted read-only. `volume_labels`: the labels of a volume Docker creates for it
        (as a mount, in the same call: no request of its own per volume); a volume that
        exists keeps its own."""
        mounts = [
            docker.types.Mount(
                target=path,
                source=vol,
                type="volume",
                read_only=vol in read_only,
                labels=volume_labels or None,
            )
            for vol, path in volumes.items()
        ]
        host_config = self._api.create_host_config(
            mounts=mounts,
            mem_limit=memory,
            memswap_limit=memory,  # no swap: an OOM is an OOM, not a crawl
            nano_cpus=int(cpus * 1e9) if cpus else None,
            pids_limit=pids,
            init=True,  # reap zombies the agent leaves behind
            cap_drop=["ALL"],
            cap_add=list(cap_add) or None,
            security_opt=["no-new-privileges"],
            restart_policy={"Name": restart} if restart != "no" else None,
        )
        try:
            created = self._api.create_container(
                image=image,
                name=name,
                command=command,
                labels=labels,
                user=user,
                working_dir=workdir,
                environment=env,
                host_config=host_config,
                detach=True,
            )
            return str(created["Id"])
        except Exception as exc:
            raise _translate(exc, f"create container {name}") from exc

    def put_files(
        self,
        container: str,
        dest_dir: str,
        files: dict[str, tuple[bytes, int]],
        owner: int = 1000,
    ) -> None:
        """Copy files (name -> (content, mode)) into a created or stopped container, in
        order, owned by uid and gid `owner`."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, (content, mode) in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mode = mode
                info.uid = info.gid = owner
                tar.addfile(info, io.BytesIO(content))
        try:
            self._api.put_archive(container, dest_dir, buf.getvalue())
        except Exception as exc:
            raise _translate(exc, f"copy files into {container[:12]}") from exc

    def path_exists(self, container: str, path: str) -> bool:
        """Whether `path` exists in a container (created, running or stopped; volumes too)."""
        try:
            stream, _stat = self._api.get_archive(container, path)
        except docker.errors.NotFound:
            return False
        except Exception as exc:
            raise _translate(exc, f"look for {path} in {container[:12]}") from exc
        for _chunk in stream:  # a marker file: drained so the connection is reused
            pass
        return True

    @_retry
    def start(self, container: str) -> None:
        """Start a container."""
        try:
            self._api.start(container)
        except Exception as exc:
            raise _translate(exc, f"start container {container[:12]}") from exc

    def stop(self, container: str, timeout: int = 5) -> None:
        """Stop a container (SIGTERM, then SIGKILL after `timeout`)."""
        try:
            self._api.stop(container, timeout=timeout)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            raise _translate(exc, f"stop container {container[:12]}") from exc

    def inspect(self, container: str) -> ContainerInfo | None:
        """Inspect a container; None when it does not exist."""
        try:
            return ContainerInfo.from_attrs(self._api.inspect_container(container))
        except docker.errors.NotFound:
            return None
        except Exception as exc:
            raise _translate(exc, f"inspect container {container[:12]}") from exc

    def containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """All containers (running or not) carrying every given label."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            found = self._api.containers(all=True, filters=filters)
            infos = [self.inspect(c["Id"]) for c in found]
        except Exception as exc:
            raise _translate(exc, "list containers") from exc
        return [i for i in infos if i is not None]

    def running_labels(self, labels: dict[str, str]) -> list[dict[str, str]]:
        """Labels of running containers carrying every given label (one cheap list call)."""
        return self.container_labels(labels, running=True)

    def container_labels(
        self, labels: dict[str, str], *, running: bool = False
    ) -> list[dict[str, str]]:
        """Labels of the containers (with `running`, the running ones) carrying every given
        label: one list call, no inspect per container."""
        filters: dict[str, Any] = {"label": [f"{k}={v}" for k, v in labels.items()]}
        if running:
            filters["status"] = "running"
        try:
            found = self._api.containers(all=not running, filters=filters)
            return [c.get("Labels") or {} for c in found]
        except Exception as exc:
            raise _translate(exc, "list containers") from exc

    def exec(self, container: str, argv: list[str]) -> tuple[int, str]:
        """Run a command in a running container; (exit code, stdout+stderr)."""
        try:
            # the bridge's config and token are for the bridge: not for anything run here
            created = self._api.exec_create(container, argv, environment=_EXEC_ENV)
            output = self._api.exec_start(created["Id"])
            code = self._api.exec_inspect(created["Id"]).get("ExitCode")
        except Exception as exc:
            raise _translate(exc, f"exec in {container[:12]}") from exc
        return int(code or 0), output.decode("utf-8", "replace")

    def exec_session(
        self,
        container: str,
        argv: list[str],
        *,
        tty: bool,
        size: tuple[int, int],
        user: str,
        workdir: str | None,
        env: dict[str, str],
    ) -> DockerExecSession:
        """Start `argv` in a running container with its input and output open (the
        exec API's hijacked socket), under a terminal of `size` with `tty`."""
        marker = secrets.token_hex(8)
        try:
            created = self._api.exec_create(
                container,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=tty,
                user=user,
                workdir=workdir,
                environment={**env, **_EXEC_ENV, SESSION_ENV: marker},
            )
            exec_id = created["Id"]
            sock = self._api.exec_start(exec_id, tty=tty, socket=True)
        except Exception as exc:
            raise _translate(exc, f"exec in {container[:12]}") from exc
        session = DockerExecSession(self._api, exec_id, sock, tty, (container, user, marker))
        if tty:
            session.resize(*size)
        return session

    def run_helper(
        self,
        *,
        image: str,
        name: str,
        command: list[str],
        labels: dict[str, str],
        volumes: dict[str, str],
        cap_add: tuple[str, ...],
        timeout: float,
        read_only: frozenset[str] = frozenset(),
    ) -> tuple[int, str]:
        """Run a short-lived root helper container to its end; (exit code, output). It has
        no network and only the capabilities in `cap_add`, and is removed afterwards;
        `read_only`: volumes mounted read-only."""
        host_config = self._api.create_host_config(
            binds={
                vol: {"bind": path, "mode": "ro" if vol in read_only else "rw"}
                for vol, path in volumes.items()
            },
            network_mode="none",
            cap_drop=["ALL"],
            cap_add=list(cap_add) or None,
            security_opt=["no-new-privileges"],
        )
        return self._run_to_end(
            name,
            timeout,
            image=image,
            command=command,
            labels=labels,
            user="0:0",
            host_config=host_config,
            network_disabled=True,
        )

    def run_beside(
        self,
        container: ContainerInfo,
        *,
        name: str,
        command: list[str],
        labels: dict[str, str],
        user: str,
        timeout: float,
        network: bool = False,
    ) -> tuple[int, str]:
        """Run a short-lived helper of `container`'s image, with its volumes at their
        paths, as `user`, to its end; (exit code, output). Without capabilities, and
        without a network unless `network`; removed afterwards."""
        host_config = self._api.create_host_config(
            volumes_from=[container.id],
            network_mode="bridge" if network else "none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=256,
            mem_limit="1g",
        )
        return self._run_to_end(
            name,
            timeout,
            image=container.image,
            command=command,
            labels=labels,
            user=user,
            environment=_EXEC_ENV,
            host_config=host_config,
            network_disabled=not network,
        )

    def _run_to_end(self, name: str, timeout: float, **create: Any) -> tuple[int, str]:
        """Create container `name` (`create`: create_container's arguments), run it to its
        end and remove it; (exit code, output)."""
        try:
            created = self._api.create_container(name=name, detach=True, **create)
        except Exception as exc:
            raise _translate(exc, f"create helper container {name}") from exc
        helper = str(created["Id"])
        try:
            self._api.start(helper)
            result = self._api.wait(helper, timeout=timeout)
            code = int(result.get("StatusCode", -1))
            output = self._api.logs(helper).decode("utf-8", "replace")
        except Exception as exc:
            if read_timed_out(exc):
                raise BackendError(f"{name} did not finish within {timeout:g}s") from exc
            raise _translate(exc, f"run helper container {name}") from exc
        finally:
            self.remove_container(helper)
        return code, output

    def remove_container(self, container: str) -> None:
        """Force-remove a container; a missing one is fine."""
        try:
            self._api.remove_container(container, force=True, v=False)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            raise _translate(exc, f"remove container {container[:12]}") from exc

    def logs_tail(self, container: str, lines: int = 20) -> list[str]:
        """The last lines of a container's own output (the bridge mirrors the agent there)."""
        try:
            raw = self._api.logs(container, tail=lines)
        except Exception:
            return []
        return raw.decode("utf-8", "replace").splitlines()

    # volumes --------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a named volume unless it exists."""
        try:
            self._api.create_volume(name=name, labels=labels)
        except Exception as exc:
            raise _translate(exc, f"create volume {name}") from exc

    def volume_exists(self, name: str) -> bool:
        """True when the named volume exists."""
        try:
            self._api.inspect_volume(name)
            return True
        except docker.errors.NotFound:
            return False
        except Exception as exc:
            raise _translate(exc, f"inspect volume {name}") from exc

    def volumes(self, labels: dict[str, str]) -> list[str]:
        """Names of volumes carrying every given label."""
        return [v["Name"] for v in self._volumes(labels)]

    def volume_labels(self, labels: dict[str, str]) -> list[dict[str, str]]:
        """Labels of the volumes carrying every given label."""
        return [v.get("Labels") or {} for v in self._volumes(labels)]

    def _volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            return list(self._api.volumes(filters=filters).get("Volumes") or [])
        except Exception as exc:
            raise _translate(exc, "list volumes") from exc

    def remove_volume(self, name: str) -> None:
        """Remove a volume; a missing one is fine."""
        try:
            self._api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            raise _translate(exc, f"remove volume {name}") from exc

    def close(self) -> None:
        """Release the HTTP connection pool."""
        if self._client is not None:
            self._client.close()


# Docker never ends an exec whose client has gone (a shell left open would run until the
# workspace stops), and knows no way to signal one: each session's processes carry a
# marker in their environment, by which a second exec finds and signals them.
SESSION_ENV = "DOCKYARD_SESSION"
_SIGNAL_SESSION = (
    'for p in /proc/[0-9]*; do tr "\\000" "\\n" < "$p/environ" 2>/dev/null'
    ' | grep -qx "DOCKYARD_SESSION=$1" && kill "-$2" "${p#/proc/}" 2>/dev/null; done; true'
)


class DockerExecSession:
    """One `docker exec` with its hijacked socket: a terminal's bytes as they are, or,
    without a terminal, Docker's multiplexed frames (an 8-byte header: stream, 0, 0, 0,
    length) split back into stdout and stderr."""

    def __init__(
        self,
        api: docker.APIClient,
        exec_id: str,
        sock: Any,
        tty: bool,
        owner: tuple[str, str, str],  # container, user, session marker
    ) -> None:
        self._api = api
        self._owner = owner
        self._id = exec_id
        # exec_start(socket=True) gives a SocketIO over the daemon's socket; write and
        # half-close the socket itself (a unix socket, or TCP with DOCKER_HOST=tcp://)
        self._raw = getattr(sock, "_sock", sock)
        self._wrapper = sock
        self._tty = tty
        self._buffer = b""
        self._closed = False

    def _recv(self, size: int) -> bytes:
        try:
            return bytes(self._raw.recv(size))
        except OSError:
            return b""

    def _exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = self._recv(max(65536, size - len(self._buffer)))
            if not chunk:
                return None
            self._buffer += chunk
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def read(self, size: int = 65536) -> tuple[int, bytes]:
        """The next output: (stream, bytes); (0, b"") at its end."""
        if self._tty:
            data = self._recv(size)
            return (1, data) if data else (0, b"")
        while True:
            header = self._exactly(8)
            if header is None:
                return 0, b""
            length = int.from_bytes(header[4:8], "big")
            payload = self._exactly(length) if length else b""
            if payload is None:
                return 0, b""
            if payload:
                return (2 if header[0] == 2 else 1), payload

    def write(self, data: bytes) -> None:
        """Input for the command."""
        self._raw.sendall(data)

    def close_input(self) -> None:
        """End of input: half-close the socket (a terminal gets Ctrl-D from the caller)."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_WR)

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size."""
        if not self._tty:
            return
        try:
            self._api.exec_resize(self._id, height=rows, width=cols)
        except Exception as exc:
            raise _translate(exc, "resize the terminal") from exc

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, once Docker says the command ended (its output ends first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                state = self._api.exec_inspect(self._id)
            except Exception as exc:
                raise _translate(exc, "read the exit code") from exc
            if not state.get("Running"):
                return int(state.get("ExitCode") or 0)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the command is still running")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _running(self) -> bool:
        try:
            return bool(self._api.exec_inspect(self._id).get("Running"))
        except Exception:
            return False

    def _signal(self, name: str) -> None:
        container, user, marker = self._owner
        with contextlib.suppress(Exception):
            created = self._api.exec_create(
                container, ["sh", "-c", _SIGNAL_SESSION, "signal", marker, name], user=user
            )
            self._api.exec_start(created["Id"])

    def close(self) -> None:
        """Close the socket; a command still running is hung up on (SIGHUP to the
        session's processes, then SIGKILL if it stays), as a terminal closing would."""
        if self._closed:
            return
        self._closed = True
        if self._running():
            self._signal("HUP")
            deadline = time.monotonic() + 2
            while self._running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._running():
                self._signal("KILL")
        for closer in (self._raw, self._wrapper):
            with contextlib.suppress(OSError):
                closer.close()
