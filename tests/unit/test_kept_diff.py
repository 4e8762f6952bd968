"""`task diff` and `task pull` once the workspace is gone (fast tier: the real bridge
clones from a real git server on the fake backend): a deleted task's answer from the copy
kept at delete, a finished task's from the copy kept before retention removed its
workspace, and a clear error when no copy exists. Members reach only their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.engine.kept import KeptBundles
from provisioner.gitwork import parse
from provisioner.gitwork.kept import KeptError, bounded_diffs, diff_name, diffs_of
from provisioner.queueing import parse_completion
from provisioner.retention import removed
from tests.fake_engine import bridge_cache, harness_at
from tests.git_server import git, serve_repository
from tests.serving import serve
from tests.unit.test_kept_pull import SLOW, Served

__all__ = ["bridge_cache"]


def test_kept_diff_rules() -> None:
    diff = {"files": [{"path": "a"}], "diff": "x" * 100, "commits": []}
    assert bounded_diffs({"base": diff}, 1000)["base"]["diff"] == "x" * 100
    small = bounded_diffs({"base": diff}, 10)["base"]
    assert small["diff"] is None and small["diff_omitted"] and small["files"] == [{"path": "a"}]
    assert diffs_of({"base": diff}) == {"base": diff}
    for bad in ([], {"other": diff}, {"base": "x"}, {"base": {"files": "a"}}):
        with pytest.raises(KeptError):
            diffs_of(bad)
    for hostile in ("../x", "a/b", "", "0" * 36):
        with pytest.raises(KeptError):
            diff_name(hostile)
    # both diffs of one script run, split at the separator line only
    sha = "a" * 40
    one = f"@@base {sha}\n@@from {sha}\n@@head {sha}\n@@branch b\n@@commits\n@@numstat\n"
    text = one + "@@diff\n+@@@@checkpoint\n" + "@@@@checkpoint\n" + one
    both = parse.kept_diffs(text, "@@@@checkpoint")
    assert both["base"]["diff"] == "+@@@@checkpoint\n" and both["checkpoint"]["files"] == []
    for bad in (one, text + "@@@@checkpoint\n"):
        with pytest.raises(parse.GitOutputError):
            parse.kept_diffs(bad, "@@@@checkpoint")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("kept-diff")
    with (
        serve_repository(root / "git", {"README.md": "# demo\n"}) as (repo, _),
        harness_at(root / "home", bridge_cache) as h,
        serve(h.engine, h.home) as url,
    ):
        h.add_scripted_variant("brief", lifecycle={"retention": "1s"})
        yield Served(h, url, root / "cli-home", repo)


def _task_with(served: Served, text: str, template: str = "scripted") -> str:
    params = {
        "repo": served.repo.url,
        "repo_credential": served.repo.token,
        "work_seconds": 0.05,
    }
    task = served.h.create(f"/write kept.txt {text}", template=template, parameters=params)
    served.h.wait_output(task.name, "Wrote kept.txt", timeout=SLOW)
    served.h.wait_idle(task.name, timeout=SLOW)
    return task.name


def test_diff_of_a_deleted_task_comes_from_its_kept_copy(served: Served) -> None:
    name = _task_with(served, "deleted but kept")
    assert served.api("DELETE", f"/api/dockyard/v1/tasks/{name}").status_code in (200, 204)
    shown = served("task", "diff", name)
    assert shown.exit_code == 0, shown.output
    assert "+deleted but kept" in shown.output and "kept.txt" in shown.output
    found = json.loads(served("task", "diff", name, "--stat", "-o", "json").output)
    assert [f["path"] for f in found["files"]] == ["kept.txt"]
    assert found["diff"] is None and found["kept_at"] and found["task"] == name
    # since the last checkpoint (the delete's): nothing more
    since = json.loads(served("task", "diff", name, "--since-checkpoint", "-o", "json").output)
    assert since["files"] == []
    # members: another's deleted task is not found; no credential: 401
    served.h.store.create_user("eve", "member")
    eve, _ = served.h.store.create_token("eve", "laptop", None)
    assert served.api("GET", f"/api/dockyard/v1/tasks/{name}/diff", token=eve).status_code == 404
    assert served.api("GET", f"/api/dockyard/v1/tasks/{name}/diff", token="").status_code == 401
    # hostile refs never reach a file
    for hostile in ("..%2Fkept", "%2E%2E", "*", f"{name}%00", "x" * 300):
        reply = served.api("GET", f"/api/dockyard/v1/tasks/{hostile}/diff")
        assert reply.status_code == 404, (hostile, reply.text)
    # nothing kept under the name: a 404 that says no copy is kept either
    missing = served.api("GET", "/api/dockyard/v1/tasks/never-was/diff")
    assert missing.status_code == 404 and "kept" in missing.json()["hint"]


def test_diff_and_pull_after_retention_removed_the_workspace(
    served: Served, tmp_path: Path
) -> None:
    name = _task_with(served, "outlived its workspace", template="brief")
    task = served.h.task(name)
    served.h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    served.h.wait_task(task.id, removed, "the workspace removed by retention")
    assert task.id not in served.h.backend.task_ids()
    events = [e["reason"] for e in served.h.store.events(task.id) if e["kind"] == "kept"]
    assert any("kept" in str(r) and "for task pull" in str(r) for r in events), events
    shown = served("task", "diff", name)
    assert shown.exit_code == 0, shown.output
    assert "+outlived its workspace" in shown.output
    local = tmp_path / "local"
    url = served.repo.url.replace("http://", f"http://u:{served.repo.token}@")
    git(tmp_path, "clone", "-q", url, local.name)
    pulled = served("task", "pull", name, "--into", str(local))
    assert pulled.exit_code == 0, pulled.output
    assert git(local, "show", f"dockyard/{name}:kept.txt") == "outlived its workspace\n"


def test_no_workspace_and_no_copy_is_a_clear_error(served: Served) -> None:
    name = _task_with(served, "lost")
    served.h.engine.kept = KeptBundles(served.h.home / "kept-none", max_bytes=0)  # keeps none
    try:
        task = served.h.task(name)
        served.h.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
        served.h.engine.retention = "1s"
        served.h.wait_task(task.id, removed, "the workspace removed by retention")
    finally:
        served.h.engine.retention = None
        served.h.engine.kept = KeptBundles(served.h.home / "kept")
    for route in ("diff", "bundle"):
        reply = served.api("GET", f"/api/dockyard/v1/tasks/{name}/{route}")
        assert reply.status_code == 409, reply.text
        assert "workspace is gone" in reply.json()["detail"]
        assert "retention" in reply.json()["hint"]
    said = served("task", "diff", name)
    assert said.exit_code != 0 and "no copy of its branch was kept" in said.output
