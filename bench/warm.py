"""Warm pools: task create -> idle from a preset with `prebuilds`, against a cold create.

A copy of the scripted template gets a preset with `prebuilds: 2`; the server keeps two
workspaces of it initialized. Each run creates one cold task (template scripted) and one
warm task (the pooled preset, which claims a ready workspace), then waits for the pool
to refill so every warm run finds a member ready.

    python bench/warm.py [--runs 5]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import yaml

from provisioner import paths

POOLED = "scripted-warm"


def make_template(root: Path) -> None:
    folder = root / POOLED
    shutil.copytree(paths.builtin_templates_dir() / "scripted", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest["name"] = POOLED
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "presets").mkdir()
    (folder / "presets" / "pooled.yaml").write_text(
        "default: true\nprebuilds: 2\nparameters:\n  work_seconds: 0\n"
    )


def ready_members(server: common.DockyardServer) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = server.call("GET", "/pools")["members"]
    return [m for m in members if m["status"] == "active" and m["state"] == "idle"]


def timed_create(server: common.DockyardServer, template: str) -> tuple[float, bool]:
    t0 = time.time()
    task = server.call(
        "POST",
        "/tasks",
        json={"template": template, "prompt": "hello", "parameters": {"work_seconds": 0}},
    )
    server.wait_idle(task["id"], interval=0.01)
    took = time.time() - t0
    claimed = any(e["from_value"] == "pool" for e in server.events(task["id"]))
    server.delete(task["id"])
    return took, claimed


def main(args: Any, stack: contextlib.ExitStack) -> None:
    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-templates-"))
    stack.callback(shutil.rmtree, root, True)
    make_template(root)
    os.environ["DOCKYARD_TEMPLATE_PATH"] = str(root)
    server = common.start_server(stack)
    cold = common.Row("cold: create -> idle")
    warm = common.Row("warm: create -> idle (claimed)", baseline=cold.name)
    for i in range(args.warmup + args.runs):
        common.poll(lambda: len(ready_members(server)) >= 2 or None, 180, 0.2, "a full pool")
        took_cold, _ = timed_create(server, "scripted")
        took_warm, claimed = timed_create(server, POOLED)
        if i < args.warmup:
            continue
        cold.add(took_cold)
        if claimed:
            warm.add(took_warm)
        else:
            warm.failures.append("a warm create did not claim a pool member")
    common.print_table(
        f"warm pools: scripted agent, pool of 2 ({args.runs} runs)",
        [cold, warm],
        ["warm = claimed an idle pool member, then took and answered the prompt"],
    )


if __name__ == "__main__":
    ns = common.parser(__doc__.splitlines()[0], runs=5).parse_args()
    common.run(lambda stack: main(ns, stack))
