"""The Terraform backend: a template's Terraform files, applied per task in its own directory.

Create renders the files into `$DOCKYARD_HOME/terraform/<task-id>/` and applies them with
`running = false`; start, stop and delete are Terraform runs too (apply with `running =
true`, apply with `running = false`, destroy). The template's outputs name the container
(`container`) and the bridge's address (`bridge_endpoint`); observe reads them from the
local state and asks Docker about that container, so it costs no Terraform run.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from provisioner.backends.base import BridgeBundle, Observed, ProgressFn, WorkspaceSession, dial
from provisioner.backends.docker_client import ContainerInfo, DockerClient
from provisioner.backends.terraform_runner import TerraformRunner
from provisioner.backends.terraform_workdir import (
    BRIDGE_SUBDIR,
    OUTPUT_CONTAINER,
    OUTPUT_ENDPOINT,
    STATE_FILE,
    dockyard_variables,
    free_port,
    has_resources,
    is_task_dir,
    parse_outputs,
    read_variables,
    task_workdir,
    terraform_variables,
    write_bridge,
    write_variables,
    write_workdir,
)
from provisioner.errors import BackendError
from provisioner.images.builder import ImageBuilder
from provisioner.spec import WorkspaceSpec

log = logging.getLogger(__name__)


class TerraformBackend:
    """Workspaces made by Terraform, with state kept per task under the Dockyard home."""

    name = "terraform"

    def __init__(
        self,
        instance: str,
        home: Path,
        docker: DockerClient | None = None,
        runner: TerraformRunner | None = None,
        images: ImageBuilder | None = None,
    ) -> None:
        self.instance = instance
        self.root = home / "terraform"
        self.docker = docker or DockerClient()
        self.images = images or ImageBuilder(self.docker)
        self.runner = runner or TerraformRunner()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._outputs: dict[str, dict[str, Any]] = {}  # last readable outputs per task

    def _lock(self, task_id: str) -> threading.Lock:
        # One Terraform run per task at a time (its state lock would fail the second one).
        with self._guard:
            return self._locks.setdefault(task_id, threading.Lock())

    def _dir(self, task_id: str) -> Path:
        return task_workdir(self.root, task_id)

    def ping(self) -> None:
        """Raise BackendUnavailable unless `terraform version` runs."""
        self.runner.version()

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """The same image the Docker backend would use (passed to Terraform as `image`)."""
        return self.images.ensure_image(spec.image, spec.template, spec.build, progress)

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,
    ) -> None:
        """Render the working dir, init and apply (stopped); an existing workspace is kept."""
        if spec.terraform is None:
            raise BackendError(f"template {spec.template!r} has no terraform section")
        with self._lock(task_id):
            if self.observe(task_id).exists:
                return
            workdir = self._dir(task_id)
            port = read_variables(workdir).get("bridge_port") or free_port()
            variables = terraform_variables(
                spec,
                dockyard_variables(
                    task_id=task_id,
                    task_name=task_name,
                    instance=self.instance,
                    spec=spec,
                    image=image,
                    bridge_dir=workdir / BRIDGE_SUBDIR,
                    bridge_port=int(port),
                    running=False,
                ),
            )
            write_workdir(workdir, spec, variables)
            write_bridge(workdir, bridge)
            self.runner.init(workdir, progress)
            self.runner.apply(workdir, progress)
            missing = {OUTPUT_ENDPOINT, OUTPUT_CONTAINER} - set(self.runner.outputs(workdir))
            if missing:
                raise BackendError(
                    f"template {spec.template!r}: its Terraform declares no output "
                    + " or ".join(sorted(missing))
                )

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """Never: a Terraform template decides what its workspace's disk is, and Dockyard
        cannot copy resources it does not know."""
        return False

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Refused (create refuses a fork of a Terraform template before this)."""
        raise BackendError("the terraform backend cannot fork a workspace")

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Apply with running = true (the bridge files are refreshed first)."""
        with self._lock(task_id):
            workdir = self._dir(task_id)
            if not read_variables(workdir):
                raise BackendError(f"task {task_id} has no Terraform workspace to start")
            write_bridge(workdir, bridge)
            self._converge(task_id, True, progress)

    def stop(self, task_id: str) -> None:
        """Apply with running = false; what the template keeps (volumes, container) stays."""
        with self._lock(task_id):
            if read_variables(self._dir(task_id)):
                self._converge(task_id, False, None)

    def _converge(self, task_id: str, running: bool, progress: ProgressFn | None) -> None:
        workdir = self._dir(task_id)
        variables = read_variables(workdir)
        actual = self.observe(task_id).running
        if variables.get("running") == running:
            if actual == running:
                return
            # Terraform thinks it is already so (the container stopped by itself, or was
            # started by hand): flip `running` once so its trigger replaces the resource.
            self._apply_running(workdir, variables, not running, progress)
        self._apply_running(workdir, variables, running, progress)

    def _apply_running(
        self,
        workdir: Path,
        variables: dict[str, Any],
        running: bool,
        progress: ProgressFn | None,
    ) -> None:
        variables["running"] = running
        write_variables(workdir, variables)
        self.runner.apply(workdir, progress)

    def remove(self, task_id: str) -> None:
        """Destroy everything the task's Terraform made, then forget its directory."""
        with self._lock(task_id):
            workdir = self._dir(task_id)
            if not workdir.is_dir():
                return
            if self._state_has_resources(workdir):
                self.runner.init(workdir)
                self.runner.destroy(workdir)
            shutil.rmtree(workdir)
            self._outputs.pop(task_id, None)

    @staticmethod
    def _state_has_resources(workdir: Path) -> bool:
        try:
            return has_resources((workdir / STATE_FILE).read_text())
        except OSError:
            return False

    def outputs(self, task_id: str) -> dict[str, Any]:
        """The outputs recorded in the task's state (the last readable ones, if mid-write)."""
        try:
            text = (self._dir(task_id) / STATE_FILE).read_text()
        except OSError:
            self._outputs.pop(task_id, None)
            return {}
        try:
            outputs = parse_outputs(text)
        except ValueError:
            return self._outputs.get(task_id, {})
        self._outputs[task_id] = outputs
        return outputs

    def _container(self, task_id: str) -> tuple[ContainerInfo | None, dict[str, Any]]:
        outputs = self.outputs(task_id)
        name = outputs.get(OUTPUT_CONTAINER)
        return (self.docker.inspect(str(name)) if name else None), outputs

    def observe(self, task_id: str) -> Observed:
        """Not created / running / stopped, from the state's outputs and `docker inspect`."""
        info, outputs = self._container(task_id)
        if info is None:
            return Observed(exists=False)
        endpoint = outputs.get(OUTPUT_ENDPOINT)
        return Observed(
            exists=True,
            running=info.running,
            exit_code=None if info.running else info.exit_code,
            oom_killed=info.oom_killed,
            error=info.error,
            endpoint=str(endpoint) if info.running and endpoint else None,
            restarting=info.status == "restarting",
        )

    def tail(self, task_id: str, lines: int) -> list[str]:
        """Last lines of the container's output."""
        info, _ = self._container(task_id)
        return self.docker.logs_tail(info.id, lines) if info else []

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """docker exec in the container named in the outputs (its user, its workdir)."""
        info, _ = self._container(task_id)
        if info is None or not info.running:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        return self.docker.exec(info.id, argv)

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        """In the running container only: what a Terraform template's workspace keeps on
        disk while stopped is its configuration's business."""
        info, _ = self._container(task_id)
        if info is None or not info.running:
            raise BackendError(
                f"task {task_id}'s workspace is not running, and a Terraform workspace's "
                "disk is read only while it runs; resume it first"
            )
        return self.docker.exec(info.id, argv)

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
        """docker exec in the container named in the outputs (its user unless `root`)."""
        info, _ = self._container(task_id)
        if info is None or not info.running:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        return self.docker.exec_session(
            info.id,
            argv,
            tty=tty,
            size=size,
            user="0:0" if root else "",
            workdir=None,
            env=env or {},
        )

    def address(self, task_id: str) -> str:
        """The container's address, as the template's bridge endpoint names it."""
        info, _ = self._container(task_id)
        if info is None or not info.running or not info.ip_address:
            raise BackendError(f"task {task_id} has no running workspace")
        return info.ip_address

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A connection to the port at the workspace's address."""
        return dial(self.address(task_id), port)

    def task_ids(self) -> set[str]:
        """Tasks with a working directory (so with state) under this home."""
        if not self.root.is_dir():
            return set()
        return {path.name for path in self.root.iterdir() if is_task_dir(path)}

    def running_task_ids(self) -> set[str]:
        """Tasks whose container named in the outputs is running."""
        running = set()
        for task_id in self.task_ids():
            info, _ = self._container(task_id)
            if info is not None and info.running:
                running.add(task_id)
        return running
