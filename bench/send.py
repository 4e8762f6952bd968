"""Send latency: `task send` to an idle scripted agent until the agent has taken the prompt,
against a raw `docker exec` round trip (`exec_run` of `true`) into the same workspace.

Three ways in, alternated on one idle task:
  dockyard API   POST /api/v2/tasks/{id}/send, then GET .../prompts/{pid} every 5 ms
                 until `taken` (the CLI polls every 300 ms; that is not counted here)
  bridge         the in-workspace bridge directly (provisioner.bridge.client.BridgeClient):
                 POST /message, then GET /dockyard/prompts every 5 ms until `taken`
  raw            container.exec_run(["true"]) into the workspace container

The prompt is `/write bench-send.txt x`: the agent answers at once and is idle again.

    python bench/send.py [--runs 20]
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import common

from provisioner.backends.base import BRIDGE_TOKEN_ENV
from provisioner.bridge.client import BridgeClient

POLL_S = 0.005
TEXT = "/write bench-send.txt x"


def via_api(server: common.DockyardServer, task_id: str, rows: dict[str, common.Row]) -> None:
    server.wait_idle(task_id, interval=0.02)
    t0 = time.perf_counter()
    prompt_id = server.send(task_id, TEXT)["prompt_id"]
    t_post = time.perf_counter()
    common.poll(lambda: server.prompt(task_id, prompt_id)["state"] == "taken", 30, POLL_S, "taken")
    t_taken = time.perf_counter()
    rows["dockyard API: POST send"].add(t_post - t0)
    rows["dockyard API: send -> taken"].add(t_taken - t0)


def via_bridge(
    server: common.DockyardServer, task_id: str, bridge: BridgeClient, rows: dict[str, common.Row]
) -> None:
    server.wait_idle(task_id, interval=0.02)
    t0 = time.perf_counter()
    prompt_id = bridge.send(TEXT)["id"]
    t_post = time.perf_counter()

    def taken() -> dict[str, Any] | None:
        mine = next(p for p in bridge.prompts() if p["id"] == prompt_id)
        return mine if mine["state"] == "taken" else None

    prompt = common.poll(taken, 30, POLL_S, "taken")
    t_taken = time.perf_counter()
    rows["bridge: POST /message"].add(t_post - t0)
    rows["bridge: POST /message -> taken"].add(t_taken - t0)
    inside = common.iso_time(prompt["taken_at"]) - common.iso_time(prompt["queued_at"])
    rows["bridge inside: queued -> taken"].add(inside)


def via_exec(container: Any, rows: dict[str, common.Row]) -> None:
    t0 = time.perf_counter()
    code, _ = container.exec_run(["true"])
    rows["raw: docker exec true"].add(time.perf_counter() - t0)
    if code != 0:
        raise RuntimeError(f"exec of true exited {code}")


def main(args: Any, stack: contextlib.ExitStack) -> None:
    common.scripted_image(common.scripted_spec(work_seconds=0))
    server = common.start_server(stack)
    task_id = server.create("bench send", work_seconds=0)["id"]
    server.wait_idle(task_id)
    container = server.container(task_id)
    networks = container.attrs["NetworkSettings"]["Networks"]
    ip = next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))
    # a fresh workspace's bridge token comes in its environment
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"] if "=" in e)
    if BRIDGE_TOKEN_ENV not in env:
        raise RuntimeError(f"the workspace has no {BRIDGE_TOKEN_ENV} in its environment")
    bridge = BridgeClient(f"http://{ip}:7777", env[BRIDGE_TOKEN_ENV])
    stack.callback(bridge.close)

    R = common.Row
    order = [
        R("raw: docker exec true"),
        R("dockyard API: send -> taken", baseline="raw: docker exec true"),
        R("dockyard API: POST send", baseline="raw: docker exec true"),
        R("bridge: POST /message -> taken", baseline="raw: docker exec true"),
        R("bridge: POST /message", baseline="raw: docker exec true"),
        R("bridge inside: queued -> taken", baseline="raw: docker exec true"),
    ]
    rows = {r.name: r for r in order}
    steps = (
        ("dockyard API: send -> taken", lambda target: via_api(server, task_id, target)),
        ("bridge: POST /message -> taken", lambda t: via_bridge(server, task_id, bridge, t)),
        ("raw: docker exec true", lambda target: via_exec(container, target)),
    )
    for i in range(args.warmup + args.runs):
        target = rows if i >= args.warmup else {r.name: R(r.name) for r in order}
        for name, step in steps:
            try:
                step(target)
            except Exception as exc:  # one bad run is reported, not fatal
                rows[name].failures.append(f"{type(exc).__name__}: {exc}")
    common.print_table(
        f"send: prompt to an idle scripted agent until taken ({args.runs} runs)",
        order,
        [
            "target: dockyard API send -> taken p50 under 50 ms",
            f"taken is polled every {POLL_S * 1000:g} ms; `dockyard task send` polls every "
            "300 ms, so its user-visible latency is higher",
        ],
    )


if __name__ == "__main__":
    ns = common.parser(__doc__.splitlines()[0], runs=20).parse_args()
    common.run(lambda stack: main(ns, stack))
