"""The CLI as a user feels it: whole `dockyard` commands (a new process each, start-up and
imports included) against a running local server, each against the Docker command a user
would otherwise type, measured in the same run:

  dockyard --version             docker ps
  dockyard task list             docker ps
  dockyard task send T TEXT      docker exec C true            (send returns once taken)
  dockyard task create --wait    docker run -d IMAGE + docker exec C true (same image)

The server is `python -m provisioner.server` on a temporary home; the CLI finds it as the
local server (DOCKYARD_HOME, no DOCKYARD_URL), so it reads server.json and checks its health
like any local command. The scripted agent (work_seconds=0) answers at once.

`--compare DIR` also runs the CLI of another checkout (e.g. an older commit unpacked with
`git archive COMMIT cli provisioner | tar -x -C DIR`) against the same server, as extra rows.

    python bench/cli.py [--runs 10] [--compare DIR]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common

TEXT = "/write bench-cli.txt x"
ENTRY = "from cli.main import main; main()"  # what the `dockyard` console script runs


class Timed:
    """Runs whole commands and records their wall time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def dockyard(self, root: Path, *args: str) -> tuple[float, str]:
        return self.run([sys.executable, "-c", ENTRY, *args], cwd=root)

    def run(self, cmd: list[str], cwd: Path = common.REPO) -> tuple[float, str]:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd[3:] or cmd)} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        return took, done.stdout


def main(args: Any, stack: contextlib.ExitStack) -> None:
    image = common.scripted_image(common.scripted_spec(work_seconds=0))
    server = common.start_server(stack)
    roots = {"dockyard": common.REPO}
    if args.compare:
        roots["compared"] = Path(args.compare).resolve()
    env = {**os.environ, "DOCKYARD_HOME": str(server.home)}
    # PYTHONDONTWRITEBYTECODE (set on some machines, this one's included) would make every
    # command compile Dockyard's modules from source: a CLI installed by pip has them
    # compiled, so the commands timed here run with bytecode, compiled first (BYTECODE)
    for private in ("DOCKYARD_URL", "DOCKYARD_TOKEN"):
        env.pop(private, None)
    if args.from_source:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for root in roots.values():
            for package in ("cli", "provisioner"):  # a cached .pyc is read all the same
                for cache in root.glob(f"{package}/**/__pycache__"):
                    shutil.rmtree(cache, ignore_errors=True)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    timed = Timed(env)
    task_id = server.create("bench cli", work_seconds=0)["id"]
    server.wait_idle(task_id)
    container = server.container(task_id)
    stack.callback(lambda: common.remove_labelled(common.LABELS))  # the raw containers

    if not args.from_source:
        for root in roots.values():
            compile_bytecode(root)

    R = common.Row
    order: list[common.Row] = [R("docker ps"), R("docker exec true"), R("docker run -d + exec")]
    for who in roots:
        order += [
            R(f"{who} --version", baseline="docker ps"),
            R(f"{who} task list", baseline="docker ps"),
            R(f"{who} task send (until taken)", baseline="docker exec true"),
            R(f"{who} task create --wait", baseline="docker run -d + exec"),
        ]
    rows = {r.name: r for r in order}

    def raw_create() -> float:
        t0 = time.perf_counter()
        labels = [x for k, v in common.LABELS.items() for x in ("--label", f"{k}={v}")]
        _, out = timed.run(["docker", "run", "-d", *labels, image, "sleep", "infinity"])
        timed.run(["docker", "exec", out.strip(), "true"])
        return time.perf_counter() - t0

    def send(root: Path) -> float:
        server.wait_idle(task_id, interval=0.02)
        took, out = timed.dockyard(root, "task", "send", task_id, TEXT)
        if "taken" not in out:
            raise RuntimeError(f"send did not wait until taken: {out!r}")
        return took

    def create(root: Path) -> float:
        took, out = timed.dockyard(
            root, "task", "create", "-t", "scripted", "--param", "work_seconds=0", "--wait", "hi"
        )
        created = out.split("(", 1)[1].split(")", 1)[0]  # "Created task NAME (ID) from ..."
        server.delete(created)
        return took

    steps: list[tuple[str, Any]] = [
        ("docker ps", lambda: timed.run(["docker", "ps"])[0]),
        ("docker exec true", lambda: timed.run(["docker", "exec", container.id, "true"])[0]),
        ("docker run -d + exec", raw_create),
    ]
    for who, root in roots.items():
        steps += [
            (f"{who} --version", lambda root=root: timed.dockyard(root, "--version")[0]),
            (f"{who} task list", lambda root=root: timed.dockyard(root, "task", "list")[0]),
            (f"{who} task send (until taken)", lambda root=root: send(root)),
            (f"{who} task create --wait", lambda root=root: create(root)),
        ]
    for i in range(args.warmup + args.runs):
        for name, step in steps:
            try:
                value = step()
            except Exception as exc:  # one bad run is reported, not fatal
                rows[name].failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if i >= args.warmup:
                rows[name].add(value)
        common.remove_labelled(common.LABELS)  # this round's raw containers
    common.print_table(
        f"cli: whole dockyard commands against a running local server ({args.runs} runs)",
        order,
        [
            "targets: --version and task list under 120 ms, task send under 150 ms, "
            "task create --wait within 1.5x of docker run -d + docker exec",
            f"python3 -c pass alone: {interpreter_start(timed):.0f} ms (the floor of any command)",
            FROM_SOURCE if args.from_source else BYTECODE,
        ],
    )


BYTECODE = "bytecode: cli/ and provisioner/ compiled before timing, as pip install does"
FROM_SOURCE = "--from-source: no bytecode; every command compiled Dockyard's modules it imports"


def compile_bytecode(root: Path) -> None:
    """Compile a checkout's modules (into __pycache__, git-ignored) so that no timed
    command pays for compiling them."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "cli", "provisioner"], cwd=root, check=True
    )


def interpreter_start(timed: Timed) -> float:
    runs = [timed.run([sys.executable, "-c", "pass"])[0] for _ in range(5)]
    return sorted(runs)[2] * 1000


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], runs=10)
    p.add_argument("--compare", metavar="DIR", help="also run the CLI of this checkout")
    p.add_argument(
        "--from-source",
        action="store_true",
        help="time the commands without bytecode (PYTHONDONTWRITEBYTECODE=1, caches removed)",
    )
    ns = p.parse_args()
    common.run(lambda stack: main(ns, stack))
