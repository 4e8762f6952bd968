"""Shared pieces of the benchmarks: statistics, the table, a Dockyard server on a temporary
home, the scripted template's image, and cleanup of everything a run created.

Every container and volume a benchmark creates itself carries `dockyard.bench=1` plus
`dockyard.bench.run=<this run>`; Dockyard's own workspaces carry Dockyard's labels
(`dockyard.instance=<the temp home's instance>`). Both sets are removed at the end of a
run, also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/x.py` from anywhere uses this checkout
    sys.path.insert(0, str(REPO))

from provisioner.backends.docker_client import DockerClient  # noqa: E402
from provisioner.images.builder import ImageBuilder  # noqa: E402
from provisioner.paths import admin_token_path  # noqa: E402
from provisioner.spec import WorkspaceSpec  # noqa: E402
from provisioner.templating.catalog import Catalog  # noqa: E402
from provisioner.templating.render import render_workspace  # noqa: E402

BENCH_LABEL = "dockyard.bench"
RUN_LABEL = "dockyard.bench.run"
RUN_ID = uuid.uuid4().hex[:12]
LABELS = {BENCH_LABEL: "1", RUN_LABEL: RUN_ID}
INSTANCE_LABEL = "dockyard.instance"  # provisioner.backends.docker.LABEL_INSTANCE
TASK_LABEL = "dockyard.task"


# statistics and the table ---------------------------------------------------------------
def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def p95(xs: list[float]) -> float:
    """Nearest-rank 95th percentile (with few runs it is simply the slowest)."""
    if not xs:
        return math.nan
    ordered = sorted(xs)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


@dataclass
class Row:
    """One measured quantity; `baseline` names the row its median is divided by."""

    name: str
    unit: str = "s"  # s (shown as ms below 10 s), MB, lines/s, %, ...
    baseline: str | None = None
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 10 else f"{value:.2f} s"
    if unit == "lines/s":
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"


def print_table(title: str, rows: list[Row], notes: Sequence[str] = ()) -> None:
    """median and p95 per row and the ratio of medians to the row's baseline."""
    by_name = {r.name: r for r in rows}
    header = ("measurement", "n", "median", "p95", "ratio", "baseline")
    lines = []
    for r in rows:
        ratio = "-"
        base = by_name.get(r.baseline or "")
        if base is not None and r.samples and base.samples and median(base.samples):
            ratio = f"{median(r.samples) / median(base.samples):.2f}x"
        lines.append(
            (
                r.name,
                str(len(r.samples)),
                fmt(median(r.samples), r.unit),
                fmt(p95(r.samples), r.unit),
                ratio,
                r.baseline or "",
            )
        )
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    print(f"\n## {title}")
    print(machine_line())
    for n, line in enumerate([header, *lines]):
        cells = [
            c.ljust(w) if i in (0, 5) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        for failure in r.failures:
            print(f"! {r.name}: {failure}")
    for note in notes:
        print(f"note: {note}")
    sys.stdout.flush()


_MACHINE: str | None = None


def machine_line() -> str:
    """`nproc`, memory, Docker version and the date: where the figures came from."""
    global _MACHINE
    if _MACHINE is None:
        mem = "?"
        with contextlib.suppress(OSError):
            kb = int(Path("/proc/meminfo").read_text().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
        try:
            dv = docker_client().version().get("Version", "?")
        except Exception:
            dv = "?"
        _MACHINE = (
            f"machine: {os.cpu_count()} cpu, {mem} RAM, docker {dv}, python "
            f"{platform.python_version()}, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
        )
    return _MACHINE


def parser(description: str, runs: int, warmup: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--runs", type=int, default=runs, help="measured repetitions (default %(default)s)"
    )
    if warmup:
        p.add_argument("--warmup", type=int, default=1, help="unmeasured repetitions first")
    return p


def iso_time(text: str) -> float:
    """A Dockyard timestamp (ISO 8601, Z) or Docker's (RFC 3339, ns) as Unix seconds."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:  # Python parses at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    return datetime.fromisoformat(text).timestamp()


def poll(pred: Callable[[], Any], timeout: float, interval: float, what: str) -> Any:
    """Call pred until it returns something truthy; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# docker and cleanup -----------------------------------------------------------------------
_DOCKER: docker.DockerClient | None = None


def docker_client() -> docker.DockerClient:
    global _DOCKER
    if _DOCKER is None:
        _DOCKER = docker.from_env(timeout=120)
    return _DOCKER


def remove_labelled(labels: dict[str, str]) -> int:
    """Force-remove every container, then every volume, carrying all `labels`."""
    client = docker_client()
    flt = {"label": [f"{k}={v}" for k, v in labels.items()]}
    removed = 0
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True)
            removed += 1
    for v in client.volumes.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            v.remove(force=True)
            removed += 1
    return removed


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C during it is ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(main: Callable[[contextlib.ExitStack], None]) -> None:
    """Run a benchmark: cleanups registered on the stack, then this run's labelled leftovers,
    are removed at the end whatever happens; exits 0 (130 after Ctrl-C)."""
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    code = 0
    stack = contextlib.ExitStack()
    try:
        docker_client().ping()
        main(stack)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        with shielded():
            try:
                stack.close()
            finally:
                left = remove_labelled(LABELS)
                if left:
                    print(f"removed {left} leftover bench containers/volumes", file=sys.stderr)
    sys.exit(code)


# the scripted template ---------------------------------------------------------------------
def scripted_spec(work_seconds: float = 0) -> WorkspaceSpec:
    """The built-in scripted template rendered as a task with these parameters would be."""
    tpl = Catalog().get("scripted")
    return render_workspace(tpl, tpl.default_preset(), {"work_seconds": work_seconds})


def scripted_image(spec: WorkspaceSpec) -> str:
    """The scripted template's image ref, built (once, cached by content hash) if missing."""
    builder = ImageBuilder(DockerClient())

    def progress(line: str) -> None:
        print(f"  [image] {line}", file=sys.stderr)

    return builder.ensure_image(spec.image, spec.template, spec.build, progress)


def base_image() -> str:
    """Dockyard's base image ref (dockyard-base:<hash>), built if missing."""
    return ImageBuilder(DockerClient()).ensure_base()


def raw_run_kwargs(spec: WorkspaceSpec) -> dict[str, Any]:
    """`containers.run` arguments with the limits and hardening Dockyard gives a workspace
    (no volumes, no bridge): the raw-Docker baseline's container."""
    nano = int(spec.cpus * 1e9) if spec.cpus else None
    return {
        "detach": True,
        "labels": dict(LABELS),
        "user": "1000:1000",
        "working_dir": spec.workdir,
        "environment": {"HOME": "/home/agent", **spec.env},
        "mem_limit": spec.memory,
        "memswap_limit": spec.memory,
        "nano_cpus": nano,
        "pids_limit": spec.pids,
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }


def exec_pty(container_id: str, cmd: list[str], env: dict[str, str]) -> socket.socket:
    """Start `cmd` in the container under a tty with stdin open; its raw socket."""
    api = docker_client().api
    exec_id = api.exec_create(container_id, cmd, stdin=True, tty=True, environment=env)["Id"]
    sock = api.exec_start(exec_id, socket=True, tty=True)
    raw: socket.socket = sock._sock  # the SDK wraps it in a SocketIO
    return raw


def read_until(sock: socket.socket, marker: bytes, timeout: float, seen: bytearray, at: int) -> int:
    """Read from `sock` into `seen` until `marker` shows at or after index `at`; the index
    just past it (so the next wait starts there)."""
    deadline = time.monotonic() + timeout
    while (found := seen.find(marker, at)) < 0:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"stream ended before {marker!r}: {bytes(seen[-200:])!r}")
        seen += chunk
    return found + len(marker)


# a Dockyard server on a temporary home ------------------------------------------------------
class DockyardServer:
    """`python -m provisioner.server` on its own temporary DOCKYARD_HOME, used through its
    HTTP API (a subprocess, so its timing and memory are its own)."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.instance = ""
        self.http = httpx.Client(timeout=60, trust_env=False)

    # lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> DockyardServer:
        env = {**os.environ, "DOCKYARD_HOME": str(self.home)}
        for private in ("DOCKYARD_URL", "DOCKYARD_DATABASE_URL"):
            env.pop(private, None)
        log = open(self.home / "server.log", "wb")  # noqa: SIM115 (kept for the process's life)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner.server", "--home", str(self.home)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, not it: we delete its tasks first
        )
        log.close()
        address = self.home / "server.json"

        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = (self.home / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{tail}")
            with contextlib.suppress(OSError, ValueError):
                info: dict[str, Any] = json.loads(address.read_text())
                if info.get("pid") == self.proc.pid:
                    return info
            return None

        self.url = poll(ready, timeout, 0.05, "the Dockyard server to listen")["url"]
        self.http.base_url = httpx.URL(self.url + "/api/dockyard/v1")
        # the server wrote its local admin's token before it listened
        token = admin_token_path(self.home).read_text().strip()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.instance = json.loads((self.home / "instance.json").read_text())["id"]
        return self

    def stop(self) -> None:
        """Delete every task (and so its workspace), stop the server, sweep leftovers."""
        with shielded():
            try:
                if self.proc is not None and self.proc.poll() is None:
                    with contextlib.suppress(httpx.HTTPError):
                        for task in self.http.get("/tasks").json()["tasks"]:
                            with contextlib.suppress(httpx.HTTPError):
                                self.http.delete(f"/tasks/{task['id']}", timeout=120)
            finally:
                if self.proc is not None and self.proc.poll() is None:
                    self.proc.terminate()
                    try:
                        self.proc.wait(15)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(5)
                self.http.close()
                if self.instance:
                    remove_labelled({INSTANCE_LABEL: self.instance})
                shutil.rmtree(self.home, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # the API ------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def create(self, prompt: str, **parameters: Any) -> dict[str, Any]:
        body = {"template": "scripted", "prompt": prompt, "parameters": parameters}
        result: dict[str, Any] = self.call("POST", "/tasks", json=body)
        return result

    def task(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/tasks/{ref}")
        return result

    def wait_idle(self, ref: str, timeout: float = 120, interval: float = 0.05) -> dict[str, Any]:
        def idle() -> dict[str, Any] | None:
            task = self.task(ref)
            if task["status"] in ("error", "failed", "cancelled", "completed"):
                raise RuntimeError(f"task {task['name']} is {task['status']}: {task['message']}")
            ok = task["status"] == "active" and task["state"] == "idle"
            return task if ok else None

        result: dict[str, Any] = poll(idle, timeout, interval, f"task {ref} to be idle")
        return result

    def events(self, ref: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/tasks/{ref}/events")["events"]
        return result

    def send(self, ref: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/tasks/{ref}/send", json={"input": text})
        return result

    def prompt(self, ref: str, prompt_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/tasks/{ref}/prompts/{prompt_id}")
        return result

    def logs(self, ref: str, after: int = 0, wait: float = 0) -> dict[str, Any]:
        params = {"after": after, "wait": wait}
        result: dict[str, Any] = self.call(
            "GET", f"/tasks/{ref}/logs", params=params, timeout=wait + 30
        )
        return result

    def delete(self, ref: str) -> None:
        self.call("DELETE", f"/tasks/{ref}", timeout=120)

    def container(self, task_id: str) -> Any:
        """The task's workspace container (docker SDK object)."""
        flt = {"label": [f"{INSTANCE_LABEL}={self.instance}", f"{TASK_LABEL}={task_id}"]}
        (found,) = docker_client().containers.list(all=True, filters=flt)
        return found


def start_server(stack: contextlib.ExitStack) -> DockyardServer:
    """A started server whose tasks and workspaces go when the stack closes."""
    server = DockyardServer()
    stack.callback(server.stop)
    return server.start()


def follow_until(
    server: DockyardServer,
    ref: str,
    after: int,
    done: Callable[[dict[str, Any]], bool],
    on_entry: Callable[[dict[str, Any], float], None] = lambda e, t: None,
    timeout: float = 120,
) -> int:
    """`task logs -f`: long-poll the logs from `after` until an entry satisfies `done`;
    on_entry(entry, receive time) for each. Returns the last id seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = server.logs(ref, after=after, wait=10)
        now = time.time()
        finished = False
        for entry in page["logs"]:
            on_entry(entry, now)
            finished = finished or done(entry)
        after = int(page["last_id"])
        if finished:
            return after
    raise TimeoutError(f"the logs of {ref} never showed what was awaited")


def proc_rss_mb(pid: int) -> float:
    """Resident set size of a host process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan
