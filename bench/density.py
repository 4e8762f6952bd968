"""Density: N idle scripted workspaces on one server. Measures the server's RSS (against
its own RSS with no task), its CPU while everything is idle, each workspace's memory (the
container cgroup's usage less inactive file cache, as `docker stats` shows it) against a
raw container running only the same agent, the RSS of the bridge and of the agent in every
workspace (host /proc), and list/status API latency at N against Docker's own list/inspect.

    python bench/density.py --n 10 [--runs 20]      (also --n 50, --n 100)
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

import common

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cgroup_mb(container: Any) -> float:
    stats = container.stats(stream=False, one_shot=True)["memory_stats"]
    inner = stats.get("stats") or {}
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return float(stats["usage"] - cache) / 2**20


def process_rss(container: Any) -> dict[str, float]:
    """RSS (MB) of the bridge and the agent in a container, from host /proc."""
    top = container.top()
    col = top["Titles"].index("PID")
    found: dict[str, float] = {}
    for proc in top["Processes"]:
        pid = int(proc[col])
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "bridge.pyz" in cmd:
                found["bridge"] = common.proc_rss_mb(pid)
            elif "scripted-agent" in cmd:
                found["agent"] = common.proc_rss_mb(pid)
    return found


def timed(fn: Any, runs: int, row: common.Row) -> None:
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        row.add(time.perf_counter() - t0)


def main(args: Any, stack: contextlib.ExitStack) -> None:
    n = args.n
    spec = common.scripted_spec(work_seconds=0)
    image = common.scripted_image(spec)
    client = common.docker_client()
    server = common.start_server(stack)
    R = common.Row
    rows = {
        r.name: r
        for r in [
            R("server RSS, 0 tasks", unit="MB"),
            R(f"server RSS, {n} idle", unit="MB", baseline="server RSS, 0 tasks"),
            R(f"server CPU, {n} idle", unit="%"),
            R("raw agent-only container memory", unit="MB"),
            R("workspace memory (cgroup)", unit="MB", baseline="raw agent-only container memory"),
            R("raw agent RSS", unit="MB"),
            R("bridge RSS", unit="MB", baseline="raw agent RSS"),
            R("agent RSS in workspace", unit="MB", baseline="raw agent RSS"),
            R("API GET /tasks, 0 tasks"),
            R(f"API GET /tasks, {n} idle", baseline="API GET /tasks, 0 tasks"),
            R(f"docker ps of {n} workspaces"),
            R("docker inspect one workspace"),
            R(f"API GET /tasks/{{id}}, {n} idle", baseline="docker inspect one workspace"),
            R(f"create {n} -> all idle"),
        ]
    }
    time.sleep(2)  # let the server finish starting up
    server.call("GET", "/tasks")
    for _ in range(args.runs):
        rows["server RSS, 0 tasks"].add(common.proc_rss_mb(server.pid))
    timed(lambda: server.call("GET", "/tasks"), args.runs, rows["API GET /tasks, 0 tasks"])

    # the baseline: the same agent alone in raw containers, waiting at its prompt
    for _ in range(min(n, 3)):
        container = client.containers.run(
            image, ["sleep", "infinity"], **common.raw_run_kwargs(spec)
        )
        stack.callback(container.remove, force=True)
        sock = common.exec_pty(container.id, spec.agent_command, spec.env)
        stack.callback(sock.close)
        common.read_until(sock, b"> ", 30, bytearray(), 0)
        time.sleep(0.5)
        rows["raw agent-only container memory"].add(cgroup_mb(container))
        rows["raw agent RSS"].add(process_rss(container).get("agent", float("nan")))

    t0 = time.time()
    ids = [server.create(f"density {i}", work_seconds=0)["id"] for i in range(n)]

    def all_idle() -> bool:
        tasks = [t for t in server.call("GET", "/tasks")["tasks"] if t["id"] in ids]
        bad = [t for t in tasks if t["status"] in ("error", "failed", "cancelled")]
        if bad:
            raise RuntimeError(
                f"{len(bad)} tasks failed, e.g. {bad[0]['name']}: {bad[0]['message']}"
            )
        return all(t["status"] == "active" and t["state"] == "idle" for t in tasks)

    common.poll(all_idle, 120 + 10 * n, 0.5, f"{n} tasks to be idle")
    rows[f"create {n} -> all idle"].add(time.time() - t0)
    time.sleep(3)  # settle: followers in their long polls, reconcile ticking

    cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
    for _ in range(args.runs):
        rows[f"server RSS, {n} idle"].add(common.proc_rss_mb(server.pid))
        time.sleep(0.5)
    cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0) * 100
    rows[f"server CPU, {n} idle"].add(cpu)

    containers = [server.container(i) for i in ids]
    for container in containers:
        rows["workspace memory (cgroup)"].add(cgroup_mb(container))
        rss = process_rss(container)
        rows["bridge RSS"].add(rss.get("bridge", float("nan")))
        rows["agent RSS in workspace"].add(rss.get("agent", float("nan")))

    flt = {"label": [f"{common.INSTANCE_LABEL}={server.instance}"]}
    timed(
        lambda: client.api.containers(filters=flt), args.runs, rows[f"docker ps of {n} workspaces"]
    )
    timed(lambda: server.call("GET", "/tasks"), args.runs, rows[f"API GET /tasks, {n} idle"])
    pick = random.Random(0)
    timed(
        lambda: client.api.inspect_container(pick.choice(containers).id),
        args.runs,
        rows["docker inspect one workspace"],
    )
    timed(
        lambda: server.call("GET", f"/tasks/{pick.choice(ids)}"),
        args.runs,
        rows[f"API GET /tasks/{{id}}, {n} idle"],
    )
    common.print_table(
        f"density: {n} idle scripted workspaces ({args.runs} samples per latency/RSS row)",
        list(rows.values()),
        [
            "targets at 100: server RSS under 300 MB, each bridge under 30 MB",
            "workspace/bridge/agent rows: one sample per workspace (median and p95 across them)",
            f"server CPU: its utime+stime over the {args.runs * 0.5:g} s RSS sampling window",
        ],
    )


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], runs=20, warmup=False)
    p.add_argument("--n", type=int, default=10, help="idle workspaces (default %(default)s)")
    ns = p.parse_args()
    common.run(lambda stack: main(ns, stack))
