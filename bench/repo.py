"""Repositories: `task diff` and `task pull` of a task cloned from a big repository,
against plain `git diff` and `git fetch` of the same repository on this host.

A repository with --files files (10,000) and about --history-mb MB of history (100: one
commit of the files, then commits of incompressible blobs) is served from this host over
HTTP with a token (tests/git_server.py). A scripted task clones it (shallow, as by
default), writes --changed files, and is measured running and paused (the paused diff
and pull run in a helper container beside the workspace's volumes). The baselines run in
a full local clone holding the same changes: `git diff` (plus `git status`, which is what
shows untracked files), and `git fetch` of the same branch from the served repository.

    python bench/repo.py [--runs 5] [--files 10000] [--history-mb 100] [--changed 20]
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from tests.fake_model_server import docker_bridge_gateway
from tests.git_server import GIT_ENV, git, serve_repository

BLOB_MB = 4


def fast_import(bare: Path, files: int, history_mb: int) -> None:
    """Add to the served repository's main: one commit of `files` small files, then
    commits of random blobs until about `history_mb` MB (git fast-import: seconds)."""
    rng = random.Random(7)
    stream = bytearray()
    stream += b"commit refs/heads/main\nmark :1\ncommitter Bench <b@x> 1700000000 +0000\n"
    stream += b"data 5\nfiles\nfrom refs/heads/main^0\n"
    for i in range(files):
        body = f"file {i}\n".encode() + bytes(rng.getrandbits(8) for _ in range(64)).hex().encode()
        stream += f"M 100644 inline src/d{i % 100:02d}/f{i:05d}.txt\ndata {len(body)}\n".encode()
        stream += body + b"\n"
    for n in range(max(history_mb // BLOB_MB, 0)):
        blob = os.urandom(BLOB_MB * 1024 * 1024)
        stream += f"commit refs/heads/main\ncommitter Bench <b@x> {1700000001 + n} +0000\n".encode()
        stream += (
            f"data 6\nblob{n:02d}\nM 100644 inline history/blob.bin\ndata {len(blob)}\n".encode()
        )
        stream += blob + b"\n"
    # the big blob leaves the tip, so a shallow clone stays small (as a real repo's would)
    stream += b"commit refs/heads/main\ncommitter Bench <b@x> 1800000000 +0000\n"
    stream += b"data 4\ntip\nD history/blob.bin\n\n"
    env = {**os.environ, **GIT_ENV}
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=bytes(stream), cwd=bare, env=env, check=True
    )
    git(bare, "gc", "--quiet")


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(args: Any, stack: contextlib.ExitStack) -> None:
    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-repo-"))
    stack.callback(shutil.rmtree, root, True)
    repo, _ = stack.enter_context(
        serve_repository(root / "git", {"README.md": "bench\n"}, host=docker_bridge_gateway())
    )
    print(f"making the repository: {args.files} files, ~{args.history_mb} MB of history")
    fast_import(repo.bare, args.files, args.history_mb)
    size = sum(p.stat().st_size for p in repo.bare.rglob("*") if p.is_file()) / 1e6
    server = common.start_server(stack)
    task = server.create(
        "/write bench-0.txt changed",
        work_seconds=0,
        repo=repo.url,
        repo_credential=repo.token,
    )
    server.wait_idle(task["id"], timeout=600)
    for i in range(1, args.changed):
        server.send(task["id"], f"/write bench-{i}.txt changed {i}")
    server.wait_idle(task["id"], timeout=120)
    name = server.task(task["id"])["name"]
    branch = f"dockyard/{name}"

    # the baseline's clone: the full history, the same changes, uncommitted
    local = root / "local"
    git(root, "clone", "-q", repo.url.replace("http://", f"http://u:{repo.token}@"), "local")
    for i in range(args.changed):
        (local / f"bench-{i}.txt").write_text(f"changed {i}\n" if i else "changed\n")
    base = git(local, "rev-parse", "HEAD").strip()

    def plain_diff() -> None:
        git(local, "status", "--porcelain")
        git(local, "diff", base)

    def task_diff() -> None:
        server.call("GET", f"/tasks/{task['id']}/diff")

    fetched = root / "fetched"
    git(root, "clone", "-q", str(local), "fetched")

    def task_pull() -> None:
        reply = server.http.get(f"/tasks/{task['id']}/bundle", timeout=600)
        reply.raise_for_status()
        bundle = root / "t.bundle"
        bundle.write_bytes(reply.content)
        git(
            fetched,
            "fetch",
            "-q",
            str(bundle),
            f"+{reply.headers['x-dockyard-ref']}:refs/heads/{branch}",
        )

    def plain_fetch() -> None:
        git(
            fetched,
            "fetch",
            "-q",
            repo.url.replace("http://", f"http://u:{repo.token}@"),
            f"+refs/heads/{branch}:refs/heads/{branch}-plain",
        )

    rows = {
        "git diff": common.Row("git diff + git status (local clone)"),
        "diff running": common.Row(
            "task diff, running", baseline="git diff + git status (local clone)"
        ),
        "diff paused": common.Row(
            "task diff, paused (helper)", baseline="git diff + git status (local clone)"
        ),
        "git fetch": common.Row("git fetch of the branch (HTTP)"),
        "pull running": common.Row("task pull, running", baseline="git fetch of the branch (HTTP)"),
        "pull paused": common.Row(
            "task pull, paused (helper)", baseline="git fetch of the branch (HTTP)"
        ),
    }
    server.call("POST", f"/tasks/{task['id']}/push", json={})  # the branch, for git fetch
    for i in range(args.warmup + args.runs):
        took = {
            "git diff": timed(plain_diff),
            "diff running": timed(task_diff),
            "git fetch": timed(plain_fetch),
            "pull running": timed(task_pull),
        }
        if i >= args.warmup:
            for key, value in took.items():
                rows[key].add(value)
    server.call("POST", f"/tasks/{task['id']}/pause")
    for i in range(args.warmup + args.runs):
        took = {"diff paused": timed(task_diff), "pull paused": timed(task_pull)}
        if i >= args.warmup:
            for key, value in took.items():
                rows[key].add(value)
    common.print_table(
        f"repositories: {args.files} files, {size:.0f} MB repository, {args.changed} files "
        f"changed ({args.runs} runs)",
        list(rows.values()),
        [
            "task diff: GET .../tasks/T/diff (commits, numstat, full diff, untracked too)",
            "task pull: GET .../bundle (checkpoint first when running) + git fetch of it",
        ],
    )


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], runs=5)
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--history-mb", type=int, default=100)
    p.add_argument("--changed", type=int, default=20)
    ns = p.parse_args()
    common.run(lambda stack: main(ns, stack))
