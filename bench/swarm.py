"""Swarm: N scripted tasks (work_seconds=0) on a 3-node Docker Swarm against N on the single
Docker backend, in the same run: each task's create -> idle (p50, p95), the whole batch's
wall time, and the spread per node, as ratios (swarm / docker).

The swarm is tests/swarm.py's: three dockerd in network namespaces on this one machine,
joined by veth pairs, with a registry (Debian's docker-registry) on a tmpfs. So it
measures the backend's own cost (push, placement, services, the nodes' pulls, host-mode
ports), not more cores: the nodes share this machine's CPUs with the single daemon.

Before each batch one task per node (one for Docker) is created and deleted, unmeasured:
the nodes pull the workspace image then, as a long-lived swarm's nodes have it already.
Everything goes at the end: the tasks, the servers' homes, the swarm (daemons,
namespaces, registry, tmpfs) and the registry-named images this machine's daemon got.

Needs root and the swarm harness's tools (dockerd, nsenter, unshare, ip, iptables,
docker-registry). The harness is one per machine: run it under the lock
`flock /tmp/dockyard-swarm.lock python3 bench/swarm.py [--tasks 50]`; `--tasks 3` is a
quick smoke run.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from typing import Any

import common
import yaml

from tests.swarm import Swarm, swarm_cluster, tools_missing
from tests.swarm import remove_registry_images as remove_pushed

NODES = 3


def batch(server: common.DockyardServer, n: int, label: str) -> tuple[list[float], float, list]:
    """Create n tasks at once; (each one's create -> idle, the batch's wall time, tasks)."""
    started: dict[str, float] = {}
    t0 = time.time()
    for i in range(n):
        before = time.time()
        started[server.create(f"{label} {i}", work_seconds=0)["id"]] = before

    def all_idle() -> list[dict[str, Any]] | None:
        tasks = [t for t in server.call("GET", "/tasks")["tasks"] if t["id"] in started]
        bad = [t for t in tasks if t["status"] in ("error", "failed", "cancelled")]
        if bad:
            raise RuntimeError(f"{len(bad)} {label} tasks failed, e.g. {bad[0]['message']}")
        idle = all(t["status"] == "active" and t["state"] == "idle" for t in tasks)
        return tasks if idle and len(tasks) == n else None

    common.poll(all_idle, 180 + 10 * n, 0.5, f"{n} {label} tasks to be idle")
    wall = time.time() - t0
    times, found = [], []
    for task_id, before in started.items():
        events = server.events(task_id)
        idle = min(
            common.iso_time(e["time"])
            for e in events
            if e["kind"] == "state" and e["to_value"] == "idle"
        )
        times.append(idle - before)
        found.append(server.task(task_id))
    return times, wall, found


def warm(server: common.DockyardServer, n: int, label: str) -> None:
    """n tasks made idle and deleted, unmeasured: the images reach the nodes."""
    ids = [server.create(f"{label} warm-up {i}", work_seconds=0)["id"] for i in range(n)]
    for task_id in ids:
        server.wait_idle(task_id, timeout=300, interval=0.2)
    for task_id in ids:
        server.delete(task_id)


def stop_quickly(server: common.DockyardServer) -> None:
    """Stop a swarm server without deleting its tasks one by one (each delete frees its
    disk on its node): the whole swarm goes right after."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(15)
        except Exception:
            server.proc.kill()
            server.proc.wait(5)
    server.proc = None
    server.stop()  # the rest of its cleanup: its home, labelled leftovers here


def remove_registry_images(registry: str) -> None:
    """The registry-named tags (and bridge images) this machine's daemon got from the
    swarm backend: the registry goes with the swarm."""
    removed = remove_pushed(common.docker_client(), registry)
    print(f"removed {removed} images named after the swarm's registry", file=sys.stderr)


def swarm_server(stack: contextlib.ExitStack, swarm: Swarm) -> common.DockyardServer:
    server = common.DockyardServer()
    stack.callback(stop_quickly, server)
    config = {"backend": "swarm", "swarm": swarm.settings()}
    (server.home / "config.yaml").write_text(yaml.safe_dump(config))
    return server.start()


def main(args: Any, stack: contextlib.ExitStack) -> None:
    n = args.tasks
    missing = tools_missing()
    if missing:
        sys.exit(f"the swarm harness needs {', '.join(missing)} (scripts/setup.sh installs them)")
    spec = common.scripted_spec(work_seconds=0)
    common.scripted_image(spec)
    R = common.Row
    rows = {
        r.name: r
        for r in [
            R("docker: create -> idle"),
            R("swarm: create -> idle", baseline="docker: create -> idle"),
            R(f"docker: {n} created -> all idle"),
            R(f"swarm: {n} created -> all idle", baseline=f"docker: {n} created -> all idle"),
        ]
    }

    docker_server = common.start_server(stack)
    warm(docker_server, 1, "docker")
    times, wall, _ = batch(docker_server, n, "docker")
    rows["docker: create -> idle"].samples = times
    rows[f"docker: {n} created -> all idle"].add(wall)
    docker_server.stop()

    swarm = stack.enter_context(swarm_cluster(nodes=NODES))
    stack.callback(remove_registry_images, swarm.registry)
    server = swarm_server(stack, swarm)
    warm(server, NODES, "swarm")
    times, wall, tasks = batch(server, n, "swarm")
    rows["swarm: create -> idle"].samples = times
    rows[f"swarm: {n} created -> all idle"].add(wall)

    per_node = collections.Counter(str(t.get("node") or "?") for t in tasks)
    fair = n / NODES
    spread = [
        f"{node}: {count} tasks ({count / fair:.2f}x of an even share)"
        for node, count in sorted(per_node.items())
    ]
    p95 = common.p95(rows["swarm: create -> idle"].samples) / common.p95(
        rows["docker: create -> idle"].samples
    )
    ratio = max(per_node.values()) / min(per_node.values()) if len(per_node) == NODES else 0
    common.print_table(
        f"swarm: {n} scripted tasks on {NODES} swarm nodes vs {n} on one Docker engine",
        list(rows.values()),
        [
            "create -> idle: POST /tasks until the task's first idle (the agent answered its "
            "first prompt), per task; the batch: the first POST until all are idle",
            f"create -> idle p95 ratio (swarm / docker): {p95:.2f}x",
            f"spread per node: {'; '.join(spread)}; busiest/idlest "
            + (f"{ratio:.2f}x" if ratio else "- (a node got none)"),
            "the swarm's nodes are dockerd in network namespaces on this same machine "
            "(tests/swarm.py): the backend's cost, not more cores",
            "each batch after an unmeasured warm-up (one task per node): nodes have the image",
        ],
    )


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], runs=1, warmup=False)
    p.add_argument("--tasks", type=int, default=50, help="tasks per backend (%(default)s)")
    ns = p.parse_args()
    if ns.tasks < 1:
        p.error("--tasks must be at least 1")
    common.run(lambda stack: main(ns, stack))
