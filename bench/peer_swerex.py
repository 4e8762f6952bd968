"""Peer: SWE-ReX (`swe-rex`) DockerDeployment starting a sandbox and running one command,
against Dockyard starting a workspace and having it do one thing, both from Dockyard's
base image.

  SWE-ReX   DockerDeployment(image=dockyard-bench-swerex:<hash>, pull="never").start()
            (`docker run` + swerex-remote until alive), then runtime.execute(`echo ok`)
  Dockyard  POST /api/v2/tasks (scripted agent, work_seconds=0) until idle, then the closest
            equivalent of one command: `task send "/write peer.txt ok"` and follow the
            logs until the agent's `Wrote peer.txt` shows. Dockyard has no exec API: the
            agent is what acts in a workspace. For reference the table also has a plain
            `docker exec echo ok` into the Dockyard workspace.

The SWE-ReX image is dockyard-base + python3-venv + a venv with swe-rex (the version the
host has), built once and kept (label dockyard.bench=1). SWE-ReX needs `swe-rex` and
`aiohttp` on the host; bench/README.md says how (a venv under bench/.venv).

    bench/.venv/bin/python bench/peer_swerex.py [--runs 5]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Any

import common

from provisioner.backends.docker_client import DockerClient
from provisioner.images import recipes

COMMAND = "/write peer.txt ok"
os.environ.setdefault("SWE_REX_LOG_STREAM_LEVEL", "WARNING")  # read when swerex is imported


def swerex_image(version: str) -> str:
    """dockyard-base + swe-rex; built when missing."""
    base = common.base_image()
    dockerfile = f"""FROM {base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3-pip python3-venv \\
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/swerex \\
 && /opt/swerex/bin/pip install --no-cache-dir swe-rex=={version} \\
 && ln -s /opt/swerex/bin/swerex-remote /usr/local/bin/swerex-remote
"""
    ref = f"dockyard-bench-swerex:{recipes.digest_of(dockerfile)}"
    docker = DockerClient()
    if not docker.image_exists(ref):
        print(f"building {ref} (pip install swe-rex=={version}; a minute or two)", file=sys.stderr)
        context = recipes.context_tar({"Dockerfile": dockerfile.encode()})
        docker.build(context, ref, {common.BENCH_LABEL: "1"}, lambda line: None)
    return ref


async def swerex_once(image: str, rows: dict[str, common.Row]) -> None:
    from swerex.deployment.docker import DockerDeployment
    from swerex.runtime.abstract import Command

    quiet = logging.getLogger("bench-swerex")
    quiet.setLevel(logging.WARNING)
    labels = [arg for k, v in common.LABELS.items() for arg in ("--label", f"{k}={v}")]
    deployment = DockerDeployment(
        image=image, pull="never", docker_args=labels, startup_timeout=60, logger=quiet
    )
    t0 = time.perf_counter()
    try:
        await deployment.start()
        t_started = time.perf_counter()
        result = await deployment.runtime.execute(Command(command="echo ok", shell=True))
        t_done = time.perf_counter()
        if result.exit_code != 0 or result.stdout.strip() != "ok":
            raise RuntimeError(f"echo ok gave {result!r}")
    finally:
        t_stop = time.perf_counter()
        await deployment.stop()
        rows["swe-rex: stop"].add(time.perf_counter() - t_stop)
    rows["swe-rex: start"].add(t_started - t0)
    rows["swe-rex: one command"].add(t_done - t_started)
    rows["swe-rex: start + command"].add(t_done - t0)


def dockyard_once(server: common.DockyardServer, rows: dict[str, common.Row]) -> None:
    t0 = time.time()
    task = server.create("peer benchmark", work_seconds=0)
    try:
        server.wait_idle(task["id"])
        idle = max(
            common.iso_time(e["time"])
            for e in server.events(task["id"])
            if e["kind"] == "state" and e["to_value"] == "idle"
        )
        after = int(server.logs(task["id"], after=0)["last_id"])
        t_send = time.time()
        server.send(task["id"], COMMAND)
        common.follow_until(
            server, task["id"], after, lambda e: e["content"].strip() == "Wrote peer.txt"
        )
        t_done = time.time()
        t_exec = time.perf_counter()
        server.container(task["id"]).exec_run(["echo", "ok"])
        rows["dockyard workspace: docker exec echo ok"].add(time.perf_counter() - t_exec)
    finally:
        t_delete = time.time()
        server.delete(task["id"])
        rows["dockyard: task delete"].add(time.time() - t_delete)
    rows["dockyard: create -> idle"].add(idle - t0)
    rows["dockyard: one command (send -> output)"].add(t_done - t_send)
    rows["dockyard: start + command"].add(idle - t0 + t_done - t_send)


def main(args: Any, stack: contextlib.ExitStack) -> None:
    R = common.Row
    order = [
        R("swe-rex: start"),
        R("dockyard: create -> idle", baseline="swe-rex: start"),
        R("swe-rex: one command"),
        R("dockyard: one command (send -> output)", baseline="swe-rex: one command"),
        R("dockyard workspace: docker exec echo ok", baseline="swe-rex: one command"),
        R("swe-rex: start + command"),
        R("dockyard: start + command", baseline="swe-rex: start + command"),
        R("swe-rex: stop"),
        R("dockyard: task delete", baseline="swe-rex: stop"),
    ]
    rows = {r.name: r for r in order}
    notes = [
        "SWE-ReX: `docker run --rm -p` as root without limits, then it polls is_alive "
        "every 0.25 s; Dockyard: a hardened container with two volumes and the bridge",
    ]
    image = None
    try:
        import swerex

        image = swerex_image(swerex.__version__)
    except ImportError as exc:
        why = (
            f"SWE-ReX is not importable with {sys.executable} ({exc}); install it: "
            "python -m venv --system-site-packages bench/.venv && "
            "bench/.venv/bin/pip install swe-rex aiohttp, then run with bench/.venv/bin/python"
        )
        rows["swe-rex: start"].failures.append(why)
    except Exception as exc:
        rows["swe-rex: start"].failures.append(f"cannot build the SWE-ReX image: {exc}")

    common.scripted_image(common.scripted_spec(work_seconds=0))
    server = common.start_server(stack)
    for i in range(args.warmup + args.runs):
        target = rows if i >= args.warmup else {r.name: R(r.name) for r in order}
        try:
            dockyard_once(server, target)
        except Exception as exc:  # one bad run is reported, not fatal
            rows["dockyard: create -> idle"].failures.append(f"{type(exc).__name__}: {exc}")
        if image is None:
            continue
        try:
            asyncio.run(swerex_once(image, target))
        except Exception as exc:
            rows["swe-rex: start"].failures.append(f"{type(exc).__name__}: {exc}")
    if image:
        notes.insert(0, f"SWE-ReX image {image}")
    common.print_table(f"peer: SWE-ReX vs Dockyard ({args.runs} runs)", order, notes)


if __name__ == "__main__":
    ns = common.parser(__doc__.splitlines()[0], runs=5).parse_args()
    common.run(lambda stack: main(ns, stack))
