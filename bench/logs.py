"""Log following: `/flood N` in a scripted task, read the way `dockyard task logs -f` reads
(GET /api/v2/tasks/{id}/logs?after=..&wait=10 in a loop), against `docker logs -f`
(SDK `container.logs(stream=True, follow=True, timestamps=True)`) of a raw container in
which the same agent prints the same N lines.

Per run:
  drain time   first flood line captured -> last flood line received by the follower
               (captured = the bridge's timestamp of the line / Docker's log timestamp)
  throughput   N / drain time
  latency      per line, received - captured; the run's median line
  send -> first line (Dockyard only): POST send -> first flood line received

    python bench/logs.py [--lines 2000] [--runs 5]
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import common

FLOOD = "flood line "


def dockyard_once(
    server: common.DockyardServer, task_id: str, after: int, n: int, rows: dict[str, common.Row]
) -> int:
    server.wait_idle(task_id, interval=0.02)
    captured: list[float] = []
    received: list[float] = []

    def on_entry(entry: dict[str, Any], now: float) -> None:
        if entry["type"] == "output" and entry["content"].startswith(FLOOD):
            captured.append(common.iso_time(entry["time"]))
            received.append(now)

    t_send = time.time()
    server.send(task_id, f"/flood {n}")
    after = common.follow_until(
        server, task_id, after, lambda e: e["content"] == f"{FLOOD}{n}", on_entry
    )
    if len(received) != n:
        raise RuntimeError(f"followed {len(received)} flood lines, expected {n}")
    drain = received[-1] - captured[0]
    rows["dockyard: drain time"].add(drain)
    rows["dockyard: throughput"].add(n / drain)
    rows["dockyard: line latency"].add(
        statistics.median(r - c for r, c in zip(received, captured, strict=True))
    )
    rows["dockyard: send -> first line"].add(received[0] - t_send)
    return after


def docker_once(image: str, spec: Any, n: int, rows: dict[str, common.Row]) -> None:
    agent = " ".join(["python3", "-u", *spec.agent_command[1:]])
    # the sleep lets the log stream attach before the first line
    script = f"sleep 1; printf '/flood {n}\\n/exit 0\\n' | {agent}"
    container = common.docker_client().containers.run(
        image, ["sh", "-c", script], **common.raw_run_kwargs(spec)
    )
    captured: list[float] = []
    received: list[float] = []
    try:
        pending = b""
        for chunk in container.logs(stream=True, follow=True, timestamps=True):
            now = time.time()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                stamp, _, text = line.decode(errors="replace").partition(" ")
                if FLOOD in text:  # the first one follows the `> ` prompt
                    captured.append(common.iso_time(stamp))
                    received.append(now)
            if len(captured) >= n:
                break
    finally:
        container.remove(force=True)
    if len(received) != n:
        raise RuntimeError(f"followed {len(received)} flood lines, expected {n}")
    drain = received[-1] - captured[0]
    rows["docker logs -f: drain time"].add(drain)
    rows["docker logs -f: throughput"].add(n / drain)
    rows["docker logs -f: line latency"].add(
        statistics.median(r - c for r, c in zip(received, captured, strict=True))
    )


def main(args: Any, stack: contextlib.ExitStack) -> None:
    spec = common.scripted_spec(work_seconds=0)
    image = common.scripted_image(spec)
    server = common.start_server(stack)
    task_id = server.create("bench logs", work_seconds=0)["id"]
    server.wait_idle(task_id)
    after = int(server.logs(task_id)["last_id"])
    while (page := server.logs(task_id, after=after))["logs"]:
        after = int(page["last_id"])

    R = common.Row
    order = [
        R("docker logs -f: drain time"),
        R("dockyard: drain time", baseline="docker logs -f: drain time"),
        R("docker logs -f: throughput", unit="lines/s"),
        R("dockyard: throughput", unit="lines/s", baseline="docker logs -f: throughput"),
        R("docker logs -f: line latency"),
        R("dockyard: line latency", baseline="docker logs -f: line latency"),
        R("dockyard: send -> first line"),
    ]
    rows = {r.name: r for r in order}
    for i in range(args.warmup + args.runs):
        target = rows if i >= args.warmup else {r.name: R(r.name) for r in order}
        try:
            after = dockyard_once(server, task_id, after, args.lines, target)
        except Exception as exc:  # one bad run is reported, not fatal
            rows["dockyard: drain time"].failures.append(f"{type(exc).__name__}: {exc}")
        try:
            docker_once(image, spec, args.lines, target)
        except Exception as exc:
            rows["docker logs -f: drain time"].failures.append(f"{type(exc).__name__}: {exc}")
    common.print_table(
        f"logs: following /flood {args.lines} ({args.runs} runs)",
        order,
        [
            "target: Dockyard follows at least as fast as docker logs -f "
            "(throughput ratio >= 1.00x)",
            "the raw container runs the same agent with stdin piped (python3 -u), "
            "Dockyard's runs under the bridge's pty",
        ],
    )


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], runs=5)
    p.add_argument("--lines", type=int, default=2000, help="lines per flood (default %(default)s)")
    ns = p.parse_args()
    common.run(lambda stack: main(ns, stack))
