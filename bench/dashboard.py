"""The dashboard in Chromium: a board of 500 tasks and a task with a 200,000-line log.

Measured in the page (performance.now(), so the figures are the browser's own): the time
from navigation to the board's 500 rows drawn, a filter change redrawn, a change of one
task reaching its row over the live stream (measured from Python, 10 ms polls), the time
to read and show the 200,000 lines, and the frame time while scrolling through them
(300 jumps to random places, one per frame) and while scrolling the board (120 px, a
mouse wheel's notch, per frame). Also the server process's CPU time while one board is
open and nothing changes (the stream's own reading of the store), per second.
No Docker: a real server on a store filled directly, with a dead Docker backend.

    python bench/dashboard.py            # --runs 3 --tasks 500 --lines 200000 --changes 5
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, parser, print_table
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.model import utcnow
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore
from tests.browser import CHROMIUM
from tests.serving import admin_token, serve
from tests.stored import stored_task

STATUSES = [Status.PENDING, Status.PAUSED, Status.ERROR, Status.COMPLETED, Status.FAILED]
# the page's frame times while it scrolls: one jump per animation frame
SCROLL_JS = """async ([selector, steps, wheel]) => {
  const box = selector === 'window' ? document.scrollingElement : document.querySelector(selector);
  const frames = [];
  let last = performance.now();
  for (let i = 0; i < steps; i++) {
    const room = box.scrollHeight - box.clientHeight;
    box.scrollTop = wheel ? (i * wheel) % room : Math.random() * room;
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return frames;
}"""
READY_JS = """([selector, count]) => new Promise((resolve) => {
  const check = () => {
    if (document.querySelectorAll(selector).length >= count) resolve(performance.now());
    else requestAnimationFrame(check);
  };
  check();
})"""
LINES_JS = """(count) => new Promise((resolve) => {
  const check = () => {
    const box = document.querySelector('#logs');
    if (box && Number(box.dataset.lines) >= count) resolve(performance.now());
    else requestAnimationFrame(check);
  };
  check();
})"""
FILTER_JS = """async () => {
  const select = document.querySelector('#f-status');
  const start = performance.now();
  select.value = 'error';
  select.dispatchEvent(new Event('change'));
  await new Promise((r) => requestAnimationFrame(r));
  const shown = performance.now() - start;
  select.value = '';
  select.dispatchEvent(new Event('change'));
  return shown;
}"""


def fill(store: Store, tasks: int, lines: int) -> str:
    """`tasks` tasks for the admin (one with `lines` log lines); the long one's id."""
    for i in range(tasks - 1):
        stored_task(
            store,
            STATUSES[i % len(STATUSES)],
            owner="root",
            name=f"bench-{i:04d}",
            message=f"task {i} <b>says</b> \x1b[31mred\x1b[0m",
            tags=[f"t{i % 7}"],
        )
    long = stored_task(store, Status.PAUSED, owner="root", name="bench-long-log")
    now = utcnow()
    batch = 20000
    for start in range(0, lines, batch):
        entries: list[Any] = [
            {
                "seq": n + 1,
                "type": "output",
                "time": now,
                "content": f"line {n + 1}: \x1b[32mok\x1b[0m " + "x" * (n % 60),
            }
            for n in range(start, min(lines, start + batch))
        ]
        store.append_logs(long.id, entries)
    return long.id


def main() -> None:
    p = parser(__doc__.splitlines()[0], runs=3, warmup=False)
    p.add_argument("--tasks", type=int, default=500)
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--changes", type=int, default=5, help="live row changes timed per run")
    p.add_argument("--idle", type=float, default=5.0, help="s of an idle open board per run")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    rows = {
        "board": Row(f"board: {args.tasks} rows drawn after navigation"),
        "filter": Row("board: a status filter applied and drawn"),
        "live": Row("board: a task's change shown in its row (stream)"),
        "idle_cpu": Row("server: CPU s per s, one open board, no change", unit="ms/s"),
        "board_frame": Row("board: frame while wheel-scrolling (120 px a frame)"),
        "log": Row(f"log: {args.lines:,} lines read and drawn"),
        "log_frame": Row("log: frame while jumping to random places"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        dead = DockerClient(base_url=f"unix://{home}/no-docker.sock")
        store = Store(sqlite_url(home / "db.sqlite"))
        engine = Engine(
            store,
            DockerBackend("bench", dead),
            Catalog(versions=VersionStore(home / "templates")),
            BridgeBundler(home / "cache"),
        )
        with serve(engine, home) as url:
            token = admin_token(home)
            store.create_user("root", "admin") if store.user("root") is None else None
            print(f"filling the store: {args.tasks} tasks, {args.lines:,} log lines", flush=True)
            long_id = fill(store, args.tasks, args.lines)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for run in range(args.runs):
                    ctx = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
                    page = ctx.new_page()
                    page.goto("/login")
                    page.fill("#token", token)
                    page.click("button[type=submit]")
                    page.wait_for_url(url + "/")
                    page.goto("/#/")
                    page.reload()  # a fresh navigation, signed in
                    rows["board"].add(
                        page.evaluate(READY_JS, ["#board tbody tr", args.tasks]) / 1000
                    )
                    rows["filter"].add(page.evaluate(FILTER_JS) / 1000)
                    frames = page.evaluate(SCROLL_JS, ["window", 300, 120])
                    rows["board_frame"].samples.extend(f / 1000 for f in frames)
                    for change in range(args.changes):
                        target = store.list_tasks()[random.randrange(args.tasks)]
                        value = 90 - (run * args.changes + change) % 80
                        before = time.monotonic()
                        store.record(target.id, "priority", actor="bench", priority=value)
                        row = f"#board tr[data-id='{target.id}'] td:nth-child(7)"
                        while page.inner_text(row) != str(value):
                            time.sleep(0.01)
                        rows["live"].add(time.monotonic() - before)
                    # this process is the server (and the bench, asleep meanwhile): its
                    # CPU time over an idle spell is what keeping the board live costs
                    cpu, wall = time.process_time(), time.monotonic()
                    time.sleep(args.idle)
                    spent = (time.process_time() - cpu) / (time.monotonic() - wall)
                    rows["idle_cpu"].add(spent * 1000)
                    page.goto(f"/#/task/{long_id}")
                    start = page.evaluate("performance.now()")
                    done = page.evaluate(LINES_JS, args.lines)
                    rows["log"].add((done - start) / 1000)
                    frames = page.evaluate(SCROLL_JS, ["#logs", 300, 0])
                    rows["log_frame"].samples.extend(f / 1000 for f in frames)
                    print(f"run {run + 1}/{args.runs} done", flush=True)
                    ctx.close()
                browser.close()
        store.close()
    print_table(
        "dashboard in Chromium",
        list(rows.values()),
        [
            "frames: 60 Hz is 16.7 ms; a frame's time includes the browser's own work",
            "log: from the task page's route to the last of the lines in the virtual list",
        ],
    )


if __name__ == "__main__":
    main()
