"""Startup: `task create` -> active -> idle for the scripted agent (image already built),
through the real HTTP API of a Dockyard server, against raw Docker doing the closest
equivalent: `containers.run` of the same image (same limits and hardening, no volumes,
no bridge) plus `exec` of the same agent command under a tty until its `> ` prompt shows,
then typing the same first prompt and waiting for its answer and the next `> `.

Dockyard's times come from the task's own history (event timestamps), its phase times
from the task's `phases` field; the client polls the task every 50 ms to know when to
read them. Runs alternate Dockyard / raw so that a busy machine hurts both alike.

    python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import common

PROMPT = "hello"


def dockyard_once(server: common.DockyardServer, rows: dict[str, common.Row]) -> None:
    t0 = time.time()
    task = server.create(PROMPT, work_seconds=0)
    t_post = time.time() - t0
    try:
        done = server.wait_idle(task["id"])
        events = server.events(task["id"])
        state = server.container(task["id"]).attrs["State"]
        running = common.iso_time(state["StartedAt"])
    finally:
        t_del = time.time()
        server.delete(task["id"])
        rows["dockyard: task delete"].add(time.time() - t_del)
    active = next(
        common.iso_time(e["time"])
        for e in events
        if e["kind"] == "status" and e["to_value"] == "active"
    )
    idle = next(
        common.iso_time(e["time"])
        for e in events
        if e["kind"] == "state" and e["to_value"] == "idle" and common.iso_time(e["time"]) >= active
    )
    rows["dockyard: POST /tasks"].add(t_post)
    rows["dockyard: create -> active"].add(active - t0)
    rows["dockyard: create -> idle"].add(idle - t0)
    phases: dict[str, Any] = {p["phase"]: p for p in done["phases"]}
    if phases:
        first = min(common.iso_time(p["started_at"]) for p in phases.values())
        rows["dockyard: create -> claimed (queue)"].add(first - t0)
    for name, phase in phases.items():
        key = f"dockyard: phase {name}"
        rows.setdefault(key, common.Row(key)).add(float(phase["duration_s"] or 0))
    if "create" in phases and "start" in phases:
        both = float(phases["create"]["duration_s"]) + float(phases["start"]["duration_s"])
        rows["dockyard: phases create+start"].add(both)
    rows["dockyard: active -> idle"].add(idle - active)
    if "start" in phases and "agent" in phases:
        # the start phase split at the moment Docker says the container runs
        start = common.iso_time(phases["start"]["started_at"])
        bridge_up = common.iso_time(phases["agent"]["started_at"])
        rows["dockyard: start: -> container running"].add(running - start)
        rows["dockyard: start: running -> bridge answers"].add(bridge_up - running)


def raw_once(spec: Any, image: str, rows: dict[str, common.Row]) -> None:
    client = common.docker_client()
    t0 = time.time()
    container = client.containers.run(image, ["sleep", "infinity"], **common.raw_run_kwargs(spec))
    try:
        t_run = time.time()
        sock = common.exec_pty(container.id, spec.agent_command, spec.env)
        with contextlib.closing(sock):
            seen = bytearray()
            at = common.read_until(sock, b"> ", 30, seen, 0)
            t_prompt = time.time()
            sock.sendall(PROMPT.encode() + b"\n")
            at = common.read_until(sock, f"Done: {PROMPT}".encode(), 30, seen, at)
            common.read_until(sock, b"> ", 30, seen, at)
            t_answered = time.time()
    finally:
        t_rm = time.time()
        container.remove(force=True)
        rows["raw: container remove"].add(time.time() - t_rm)
    rows["raw: containers.run"].add(t_run - t0)
    rows["raw: run + exec -> prompt"].add(t_prompt - t0)
    rows["raw: run + exec -> answered"].add(t_answered - t0)


def main(args: Any, stack: contextlib.ExitStack) -> None:
    spec = common.scripted_spec(work_seconds=0)
    image = common.scripted_image(spec)
    server = common.start_server(stack)
    R = common.Row
    order = [
        R("raw: run + exec -> prompt"),
        R("dockyard: create -> active", baseline="raw: run + exec -> prompt"),
        R("raw: run + exec -> answered"),
        R("dockyard: create -> idle", baseline="raw: run + exec -> answered"),
        R("dockyard: POST /tasks"),
        R("dockyard: create -> claimed (queue)"),
        R("raw: containers.run"),
        R("dockyard: phases create+start", baseline="raw: containers.run"),
        R("dockyard: start: -> container running"),
        R("dockyard: start: running -> bridge answers"),
        R("dockyard: active -> idle"),
        R("raw: container remove"),
        R("dockyard: task delete", baseline="raw: container remove"),
    ]
    rows = {r.name: r for r in order}
    steps = (
        ("dockyard: create -> idle", lambda target: dockyard_once(server, target)),
        ("raw: run + exec -> answered", lambda target: raw_once(spec, image, target)),
    )
    for i in range(args.warmup + args.runs):
        target = rows if i >= args.warmup else {r.name: R(r.name) for r in order}
        for name, step in steps:
            try:
                step(target)
            except Exception as exc:  # one bad run is reported, not fatal
                rows[name].failures.append(f"{type(exc).__name__}: {exc}")
    phase_rows = [r for k, r in rows.items() if k.startswith("dockyard: phase ")]
    print_rows = order[:8] + phase_rows + order[8:]
    common.print_table(
        f"startup: scripted agent, cached image {image} ({args.runs} runs)",
        print_rows,
        [
            "active = the bridge saw the agent at its prompt and quiet for the profile's "
            "quiet_ms (50 ms); idle = it also answered the first prompt (work_seconds=0)",
            "raw = containers.run (same image, limits, hardening; no volumes, no bridge) "
            "+ exec of the agent under a tty, read until `> `",
        ],
    )


if __name__ == "__main__":
    ns = common.parser(__doc__.splitlines()[0], runs=5).parse_args()
    common.run(lambda stack: main(ns, stack))
