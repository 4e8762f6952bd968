"""A fake backend for the fast tier: the REAL bridge in a host process, only the container
is fake.

In the spirit of httpx's MockTransport and SWE-ReX's dummy runtime, it implements the
`Backend` protocol without Docker so the engine can run whole task lifecycles in unit
tests. What is faked is the container, nothing above it:

- a workspace is a directory under `root` (its "disk": workspace, home, /opt/dockyard);
- start spawns the bridge zipapp the engine handed over (the same bytes a container would
  run) as a host process with the task's bridge config, its container paths mapped into
  that directory and its listen address moved to a free loopback port; the bridge then
  runs the agent under a real pty, exactly as in a container;
- stop sends SIGTERM (as `docker stop`) and keeps the directory; remove deletes it;
- observe reports the process: running with the bridge's endpoint once it listens, or
  its exit code (a signal N as 128+N, like Docker).

Container paths are mapped textually (in the agent and resume commands, env values, the
setup script and exec'd commands): the template's workdir, the agent's home, BRIDGE_DIR,
plus `files` (container path -> host path) standing in for what an image would COPY in; by
default the built-in scripted agent at /usr/local/bin/scripted-agent.

Faults for tests: `image_error` (ensure_image raises ImageBuildError), `create_error` (an
exception create raises, e.g. BackendUnavailable for a daemon that is down), `down`
(every call raises BackendUnavailable), `start_delay` (seconds start blocks: a slow start),
`stop_delay` (seconds a running workspace takes to stop, as one slow to shut down under
`docker stop`), `started_delay` (seconds start takes to return after the workspace runs: a
slow daemon's answer) and `die(task_id, exit_code)` (the workspace stops by itself with that code).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner import paths
from provisioner.backends.base import (
    BRIDGE_DIR,
    BridgeBundle,
    Observed,
    ProgressFn,
    WorkspaceSession,
    dial,
)
from provisioner.backends.fake_session import FakeSession
from provisioner.errors import BackendError, BackendUnavailable, ImageBuildError
from provisioner.images import recipes
from provisioner.spec import WorkspaceSpec

SCRIPTED_AGENT = "/usr/local/bin/scripted-agent"
LISTENING = re.compile(rb"listening on [\d.]+:(\d+)")
STOP_TIMEOUT_S = 10.0


def default_files() -> dict[str, Path]:
    """What the built-in images COPY in that agents need: the scripted agent."""
    return {SCRIPTED_AGENT: paths.builtin_templates_dir() / "scripted" / "scripted_agent.py"}


@dataclass
class _Workspace:
    """One task's fake container."""

    task_id: str
    name: str
    root: Path
    spec: WorkspaceSpec
    image: str
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    starts: int = 0
    forced_exit: int | None = None  # die(): the code the "container" exits with
    output_from: int = 0  # where the current start's output begins
    mapping: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        """The container's output (the bridge's stdout and stderr), kept across starts."""
        return self.root / "output.log"


class FakeBackend:
    """Workspaces as bridge processes on this host (see the module docstring)."""

    name = "fake"

    def __init__(self, root: Path, files: dict[str, Path] | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.files = default_files() if files is None else files
        self._workspaces: dict[str, _Workspace] = {}
        self._lock = threading.RLock()
        # faults
        self.down = False
        self.image_error: str | None = None
        self.create_error: Exception | None = None
        self.start_delay = 0.0
        self._closed = False  # set by close(): a start still under way spawns nothing
        self.stop_delay = 0.0
        self.started_delay = 0.0
        # what happened (for assertions)
        self.calls: list[tuple[str, str]] = []
        self.sessions: list[tuple[str, list[str], bool, bool]] = []  # (task, argv, tty, root)

    # helpers ----------------------------------------------------------------------
    def _check_up(self, call: str, task_id: str = "") -> None:
        self.calls.append((call, task_id))
        if self.down:
            raise BackendUnavailable("the fake backend is down (as if Docker were not running)")

    def _get(self, task_id: str) -> _Workspace | None:
        with self._lock:
            return self._workspaces.get(task_id)

    def _map(self, text: str, mapping: dict[str, str]) -> str:
        """Container paths in `text` replaced by their host paths (whole path prefixes)."""
        if not mapping:
            return text
        alternatives = "|".join(re.escape(p) for p in sorted(mapping, key=len, reverse=True))
        pattern = re.compile(f"(?<![\\w.-])({alternatives})(?=$|[/\\s'\";:)])")
        return pattern.sub(lambda m: mapping[m.group(1)], text)

    def _map_all(self, values: Iterable[str] | None, mapping: dict[str, str]) -> list[str] | None:
        return None if values is None else [self._map(v, mapping) for v in values]

    def _host_config(self, ws: _Workspace, bridge: BridgeBundle) -> dict[str, Any]:
        """The task's bridge config with its container paths mapped into the workspace."""
        config: dict[str, Any] = json.loads(bridge.config_json)
        mapping = ws.mapping
        config["agent_command"] = self._map_all(config.get("agent_command"), mapping)
        config["resume_command"] = self._map_all(config.get("resume_command"), mapping)
        for key in ("cwd", "token_file", "state_dir"):
            if isinstance(config.get(key), str):
                config[key] = self._map(config[key], mapping)
        if isinstance(config.get("setup_script"), str):
            config["setup_script"] = self._map(config["setup_script"], mapping)
        config["env"] = {k: self._map(v, mapping) for k, v in (config.get("env") or {}).items()}
        config["listen"] = "127.0.0.1:0"  # the bridge reports the port it got
        return config

    def _environment(self, ws: _Workspace) -> dict[str, str]:
        """A container's environment: nothing of the test process's own."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": ws.mapping[recipes.AGENT_HOME],
            "LANG": "C.UTF-8",
        }

    def _zipapp(self, bridge: BridgeBundle) -> Path:
        path = self.root / f"bridge-{bridge.digest}.pyz"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_bytes(bridge.zipapp)
            partial.replace(path)
        return path

    # the Backend protocol ------------------------------------------------------------
    def ping(self) -> None:
        """Raise BackendUnavailable while `down`."""
        self._check_up("ping")

    def ensure_image(self, spec: WorkspaceSpec, progress: ProgressFn) -> str:
        """No image is built: a tag named after the template (or ImageBuildError)."""
        self._check_up("ensure_image")
        if self.image_error is not None:
            progress(f"building {spec.template}: {self.image_error}")
            raise ImageBuildError(f"image build failed: {self.image_error}")
        digest = hashlib.sha256(repr((spec.image, spec.build)).encode()).hexdigest()[:12]
        progress(f"using fake image for {spec.template}")
        return f"fake/{spec.template}:{digest}"

    def create(
        self,
        task_id: str,
        task_name: str,
        spec: WorkspaceSpec,
        image: str,
        bridge: BridgeBundle,
        progress: ProgressFn | None = None,
    ) -> None:
        """Make the workspace's directories (idempotent: an existing one is reused)."""
        self._check_up("create", task_id)
        if self.create_error is not None:
            raise self.create_error
        with self._lock:
            if task_id in self._workspaces:
                return
            root = self.root / task_id
            mapping = {
                spec.workdir: str(root / "workspace"),
                recipes.AGENT_HOME: str(root / "home"),
                BRIDGE_DIR: str(root / "opt-dockyard"),
                **{k: str(v) for k, v in self.files.items()},
            }
            for key in ("workspace", "home", "opt-dockyard"):
                (root / key).mkdir(parents=True, exist_ok=True)
            self._workspaces[task_id] = _Workspace(
                task_id, task_name, root, spec, image, mapping=mapping
            )

    def can_fork(self, spec: WorkspaceSpec) -> bool:
        """As the real wiring: the Docker backend forks, the Terraform one does not."""
        return spec.backend != "terraform"

    def fork_volumes(self, parent_id: str, child_id: str, spec: WorkspaceSpec, image: str) -> None:
        """Copy the parent's disk directories (its workspace and home) for the child."""
        self._check_up("fork_volumes", child_id)
        with self._lock:
            if child_id in self._workspaces:
                return  # created already: its disk is its own now
        parent, child = self.root / parent_id, self.root / child_id
        if not (parent / "home").is_dir():
            raise BackendError(f"task {parent_id} has no workspace disk to fork")
        shutil.rmtree(child, ignore_errors=True)  # a copy cut short before
        for key in ("workspace", "home"):
            try:  # symlinks as symlinks, like cp -a
                shutil.copytree(parent / key, child / key, symlinks=True, dirs_exist_ok=True)
            except shutil.Error as exc:
                # the parent may be running: a file it replaced meanwhile is not copied
                # (the copy is crash-consistent); anything else is a failure
                lost = [src for src, _dst, _why in exc.args[0] if Path(src).exists()]
                if lost:
                    raise BackendError(f"copying {parent_id}'s disk failed: {exc}") from exc

    def start(self, task_id: str, bridge: BridgeBundle, progress: ProgressFn | None = None) -> None:
        """Spawn the bridge (with the bundle's config and token) unless it runs."""
        self._check_up("start", task_id)
        if self.start_delay:
            time.sleep(self.start_delay)
        with self._lock:
            if self._closed:
                # an engine's start still under way as its test ends: a bridge spawned now
                # would outlive the test (nobody is left to kill it)
                raise BackendError("the fake backend is closed")
            ws = self._workspaces.get(task_id)
            if ws is None:
                raise BackendError(f"task {task_id} has no workspace container to start")
            if ws.proc is not None and ws.proc.poll() is None:
                return
            opt = Path(ws.mapping[BRIDGE_DIR])
            token = opt / "token"
            token.write_text(bridge.token)
            token.chmod(0o600)
            config = opt / "bridge.json"
            config.write_text(json.dumps(self._host_config(ws, bridge)))
            config.chmod(0o600)
            zipapp = self._zipapp(bridge)
            ws.starts += 1
            ws.port = None
            ws.exit_code = None
            ws.oom_killed = False
            ws.forced_exit = None
            with ws.output.open("ab") as out:
                ws.output_from = out.tell()  # this start's lines begin here
                ws.proc = subprocess.Popen(
                    [sys.executable, "-S", str(zipapp), "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ws.mapping[ws.spec.workdir],
                    env=self._environment(ws),
                    start_new_session=True,  # its own process group: stop reaches it alone
                )
        if self.started_delay:
            time.sleep(self.started_delay)  # running already, but the call returns late

    def _end(self, ws: _Workspace, sig: int) -> None:
        proc = ws.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # as Docker does after its grace period
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, task_id: str) -> None:
        """SIGTERM the bridge (as `docker stop`); the directory (its disk) stays."""
        self._check_up("stop", task_id)
        ws = self._get(task_id)
        if ws is not None and ws.proc is not None and ws.proc.poll() is None:
            if self.stop_delay:
                time.sleep(self.stop_delay)  # a workspace slow to shut down
            self._end(ws, signal.SIGTERM)

    def remove(self, task_id: str) -> None:
        """Kill the bridge and delete the workspace's directory."""
        self._check_up("remove", task_id)
        with self._lock:
            ws = self._workspaces.pop(task_id, None)
        if ws is not None:
            self._end(ws, signal.SIGKILL)
            shutil.rmtree(ws.root, ignore_errors=True)

    def observe(self, task_id: str) -> Observed:
        """The process's state, and the bridge's endpoint once it listens."""
        self._check_up("observe", task_id)
        ws = self._get(task_id)
        if ws is None:
            return Observed(exists=False)
        proc = ws.proc
        if proc is None:
            return Observed(exists=True, running=False, exit_code=0)  # created, never started
        code = proc.poll()
        if code is None:
            return Observed(exists=True, running=True, endpoint=self._endpoint(ws))
        if ws.forced_exit is not None:
            code = ws.forced_exit
        elif code < 0:
            code = 128 - code  # killed by signal N: Docker says 128+N
        return Observed(exists=True, running=False, exit_code=code, oom_killed=ws.oom_killed)

    def _endpoint(self, ws: _Workspace) -> str | None:
        if ws.port is None:
            try:
                with ws.output.open("rb") as out:
                    out.seek(ws.output_from)
                    found = LISTENING.findall(out.read())
            except OSError:
                found = []
            if not found:
                return None
            ws.port = int(found[0])
        return f"http://127.0.0.1:{ws.port}"

    def tail(self, task_id: str, lines: int) -> list[str]:
        """The last lines the bridge printed (across starts, like `docker logs`)."""
        self._check_up("tail", task_id)
        ws = self._get(task_id)
        if ws is None or not ws.output.exists():
            return []
        text = ws.output.read_text(errors="replace")
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def exec(self, task_id: str, argv: list[str]) -> tuple[int, str]:
        """Run `argv` (container paths mapped) in the workspace's directory."""
        self._check_up("exec", task_id)
        ws = self._get(task_id)
        if ws is None or ws.proc is None or ws.proc.poll() is not None:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        return self._run_in(ws, argv, 60)

    def exec_on_disk(
        self, task_id: str, argv: list[str], *, timeout: float, network: bool = False
    ) -> tuple[int, str]:
        """Run `argv` (container paths mapped) on the workspace's directory, running or
        not (as a helper beside a stopped container's volumes would)."""
        self._check_up("exec_on_disk", task_id)
        ws = self._get(task_id)
        if ws is None:
            raise BackendError(f"task {task_id} has no workspace (its disk is gone)")
        try:
            return self._run_in(ws, argv, timeout)
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"a command on task {task_id}'s disk ran past {timeout:g}s") from exc

    def _run_in(self, ws: _Workspace, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run `argv` (container paths mapped) in the workspace's directory and
        environment; (exit code, output: stdout and stderr together)."""
        done = subprocess.run(
            [self._map(a, ws.mapping) for a in argv],
            cwd=ws.mapping[ws.spec.workdir],
            env=self._environment(ws),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        return done.returncode, done.stdout.decode(errors="replace")

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
        """`argv` (container paths mapped) in the workspace's directory, under a pty with
        `tty`; `root` is recorded only (a host process cannot become root here)."""
        self._check_up("open_session", task_id)
        ws = self._get(task_id)
        if ws is None or ws.proc is None or ws.proc.poll() is not None:
            raise BackendError(f"task {task_id} has no running workspace to run a command in")
        self.sessions.append((task_id, list(argv), tty, root))
        environment = {**self._environment(ws), **(env or {})}
        return FakeSession(
            [self._map(a, ws.mapping) for a in argv],
            cwd=ws.mapping[ws.spec.workdir],
            env=environment,
            tty=tty,
            size=size,
        )

    def address(self, task_id: str) -> str:
        """Loopback: a fake workspace's programs listen on this host."""
        ws = self._get(task_id)
        if ws is None or ws.proc is None or ws.proc.poll() is not None:
            raise BackendError(f"task {task_id} has no running workspace")
        return "127.0.0.1"

    def open_port(self, task_id: str, port: int) -> socket.socket:
        """A connection to the port at the workspace's address."""
        return dial(self.address(task_id), port)

    def running_task_ids(self) -> set[str]:
        """Tasks whose bridge process is alive."""
        self._check_up("running_task_ids")
        with self._lock:
            items = list(self._workspaces.values())
        return {ws.task_id for ws in items if ws.proc is not None and ws.proc.poll() is None}

    def task_ids(self) -> set[str]:
        """Tasks with a workspace (running or not)."""
        self._check_up("task_ids")
        with self._lock:
            return set(self._workspaces)

    # faults and inspection for tests ---------------------------------------------------
    def die(self, task_id: str, exit_code: int = 1, *, oom_killed: bool = False) -> None:
        """The workspace stops by itself: its processes are killed, it reports `exit_code`."""
        ws = self._get(task_id)
        if ws is None or ws.proc is None:
            raise BackendError(f"task {task_id} has no workspace to kill")
        ws.forced_exit = exit_code
        ws.oom_killed = oom_killed
        self._end(ws, signal.SIGKILL)

    def host_path(self, task_id: str, container_path: str) -> Path:
        """Where a container path of the task's workspace is on this host."""
        ws = self._get(task_id)
        if ws is None:
            raise BackendError(f"task {task_id} has no workspace")
        return Path(self._map(container_path, ws.mapping))

    def starts(self, task_id: str) -> int:
        """How many times the task's workspace was started."""
        ws = self._get(task_id)
        return 0 if ws is None else ws.starts

    def close(self) -> None:
        """Kill every bridge process and start no more (the directories stay for
        inspection)."""
        with self._lock:
            self._closed = True
            items = list(self._workspaces.values())
        for ws in items:
            self._end(ws, signal.SIGKILL)
