"""One Backend in front of several: each task goes to the backend its template names."""

from __future__ import annotations

import socket
from collections.abc import Callable

from provisioner.backends.base import (
    Backend,
    BridgeBundle,
    Observed,
    ProgressFn,
    WorkspaceSession,
)
from provisioner.errors import BackendError
from provisioner.spec import WorkspaceSpec


class BackendRouter:
    """Dispatches per task; the engine sees a single backend."""

    name = "router"

    def __init__(
        self,
        backends: dict[str, Backend],
        backend_of: Callable[[str], str | None],
        default: str = "docker",
    ) -> None:
        self.backends = backends
        self._backend_of = backend_of  # task id -> backend name; None for unknown tasks
        self.default = default

    def _for_name(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            known = ", ".join(sorted(self.backends))
            raise BackendError(f"Unknown backend {name!r} (backends: {known})") from None

    def _for(self, task_id: str) -> Backend:
        return self._for_name(self._backend_of(task_id) or self.default)

    @property
    def instance(self) -> str:
        """The instance label shared by every backend of this server."""
        return str(getattr(self.backends[self.default], "instance", ""))

    def ping(self) -> None:
        """The default backend must answer (others are checked when used)."""
        self.backends[self.default].ping()

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """Prepare the image with the backend the spec's template names."""
        return self._for_name(spec.backend).ensure_image(spec, progress)

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,
    ) -> None:
        """Create on the template's backend."""
        backend = self._for_name(spec.backend)
        backend.create(task_id, task_name, spec, image, bridge, progress=progress)

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """Whether the template's backend can fork."""
        return self._for_name(spec.backend).can_fork(spec)

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Fork on the child's template's backend (a fork runs its parent's template)."""
        self._for_name(spec.backend).fork_volumes(parent_id, child_id, spec, image)

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Start on the task's backend."""
        self._for(task_id).start(task_id, bridge, progress=progress)

    def stop(self, task_id: str) -> None:
        """Stop on the task's backend."""
        self._for(task_id).stop(task_id)

    def remove(self, task_id: str) -> None:
        """Remove everywhere: an orphan's backend may be unknown."""
        name = self._backend_of(task_id)
        targets = [self._for_name(name)] if name else list(self.backends.values())
        for backend in targets:
            backend.remove(task_id)

    def observe(self, task_id: str) -> Observed:
        """Observe on the task's backend."""
        return self._for(task_id).observe(task_id)

    def tail(self, task_id: str, lines: int) -> list[str]:
        """Tail on the task's backend."""
        return self._for(task_id).tail(task_id, lines)

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """Exec on the task's backend."""
        return self._for(task_id).exec(task_id, argv)

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        return self._for(task_id).exec_on_disk(task_id, argv, timeout=timeout, network=network)

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
        """A session on the task's backend."""
        return self._for(task_id).open_session(
            task_id, argv, tty=tty, size=size, root=root, env=env
        )

    def address(self, task_id: str) -> str:
        """The address on the task's backend."""
        return self._for(task_id).address(task_id)

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A stream to the port on the task's backend."""
        return self._for(task_id).open_port(task_id, port)

    def running_task_ids(self) -> set[str]:
        """Running tasks across every backend."""
        return set().union(*(b.running_task_ids() for b in self.backends.values()))

    def task_ids(self) -> set[str]:
        """Tasks with resources on any backend."""
        return set().union(*(b.task_ids() for b in self.backends.values()))
