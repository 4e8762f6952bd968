"""Repositories in and the work out, on the fake backend: the real bridge clones from a
real git server over HTTP with a token, checkpoints commit, diffs and bundles read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.lifecycle import Status
from provisioner.queueing import parse_completion
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.git_server import GitServer, git, serve_repository

# a clone over HTTP, then the agent: generous on a loaded machine (never a timed assert)
SLOW = 90.0

__all__ = ["bridge_cache", "fake"]

FILES = {"README.md": "# demo\n", "src/app.py": "print('app')\n", ".gitignore": "*.log\n"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitServer, str]]:
    with serve_repository(tmp_path / "git", FILES) as found:
        yield found


def _create(
    fake: Harness,
    server: GitServer,
    prompt: str = "hello",
    template: str = "scripted",
    **params: object,
) -> str:
    parameters = {**FAST, "repo": server.url, "repo_credential": server.token, **params}
    return fake.create(prompt, parameters=parameters, template=template).name


def test_a_task_starts_on_its_branch_from_the_cloned_repository(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, commit = served
    name = _create(fake, server)
    task = fake.wait_idle(name, timeout=SLOW)
    assert task.base_commit == commit
    work = fake.backend.host_path(task.id, "/workspace")
    assert (work / "src" / "app.py").read_text() == "print('app')\n"
    assert git(work, "symbolic-ref", "--short", "HEAD").strip() == f"dockyard/{name}"
    assert git(work, "rev-parse", "refs/dockyard/base").strip() == commit
    # shallow by default
    assert git(work, "rev-parse", "--is-shallow-repository").strip() == "true"
    # the token: asked for by the server, given by the helper, never in git's config
    assert any(a.startswith("Basic ") for a in server.authorizations)
    config = (work / ".git" / "config").read_text()
    assert server.token not in config
    assert "@" not in git(work, "remote", "get-url", "origin")
    events = fake.store.events(task.id)
    assert any(e["kind"] == "repo" and e["to_value"] == commit for e in events)


def test_pause_checkpoints_every_file_and_the_work_comes_out(
    fake: Harness, served: tuple[GitServer, str], tmp_path: Path
) -> None:
    server, commit = served
    name = _create(fake, server, "/write notes/todo.txt first thing")
    fake.wait_output(name, "Wrote notes/todo.txt", timeout=SLOW)
    task = fake.wait_idle(name, timeout=SLOW)
    work = fake.backend.host_path(task.id, "/workspace")
    (work / "debug.log").write_text("ignored\n")  # .gitignore says *.log
    (work / "README.md").write_text("# demo, edited\n")
    fake.engine.pause(name)
    task = fake.wait_status(name, Status.PAUSED, timeout=SLOW)
    head = git(work, "rev-parse", "HEAD").strip()
    assert task.checkpoint_commit == head != commit
    assert git(work, "log", "-1", "--format=%an <%ae>").strip() == "Dockyard <dockyard@localhost>"
    assert git(work, "show", "--name-only", "--format=", "HEAD").split() == [
        "README.md",
        "notes/todo.txt",
    ]
    assert git(work, "status", "--porcelain").strip() == "?? debug.log" or "debug.log" not in git(
        work, "ls-files"
    )
    events = [e for e in fake.store.events(task.id) if e["kind"] == "checkpoint"]
    assert events and events[-1]["to_value"] == head

    # the diff, from the stopped workspace
    diff = fake.engine.gitwork.diff(task, since_checkpoint=False, full=True)
    assert diff["base_commit"] == commit and diff["head_commit"] == head
    assert {f["path"] for f in diff["files"]} == {"README.md", "notes/todo.txt"}
    assert "+first thing" in diff["diff"]
    assert [c["commit"] for c in diff["commits"]] == [head]
    since = fake.engine.gitwork.diff(task, since_checkpoint=True, full=False)
    assert since["files"] == [] and since["diff"] is None

    # the bundle lands in a clone of the repository
    branch, base, held, data = fake.engine.gitwork.bundle(task, actor="test")
    assert held == f"refs/heads/{branch}"
    assert base == commit and data is not None
    local = tmp_path / "local"
    git(
        tmp_path, "clone", "-q", server.url.replace("http://", f"http://u:{server.token}@"), "local"
    )
    (tmp_path / "t.bundle").write_bytes(data)
    git(
        local, "fetch", "-q", str(tmp_path / "t.bundle"), f"refs/heads/{branch}:refs/heads/{branch}"
    )
    assert git(local, "rev-parse", branch).strip() == head

    # the push reaches the served repository, with the token, which nothing stored holds
    pushed = fake.engine.gitwork.push(
        task, remote=None, branch="feature/x", allowed_hosts=[], actor="test"
    )
    assert server.branches()["feature/x"] == head
    assert pushed["branch"] == "feature/x"
    assert "feature/x" in (fake.task(name).output or "")
    db = (fake.home / "dockyard.db").read_bytes()
    assert server.token.encode() not in db
    assert server.token not in repr(fake.task(name).public())
    assert server.token not in repr(fake.store.events(task.id))


def test_a_failed_clone_is_a_setup_error_with_gits_message(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, _ = served
    name = _create(fake, server, repo_credential="wrong-token")
    task = fake.wait_status(name, Status.ERROR, timeout=SLOW)
    assert task.phase == "setup"
    assert server.url in task.message and "failed" in task.message
    assert "wrong-token" not in task.message


def test_a_failing_checkpoint_is_an_event_and_never_holds_up_the_pause(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, _ = served
    name = _create(fake, server, "/write a.txt A")
    fake.wait_output(name, "Wrote a.txt", timeout=SLOW)
    task = fake.wait_idle(name, timeout=SLOW)
    work = fake.backend.host_path(task.id, "/workspace")
    (work / ".git" / "index.lock").write_text("")  # git cannot commit now
    fake.engine.pause(name)
    events = [e for e in fake.store.events(task.id) if e["kind"] == "checkpoint"]
    assert events and "failed" in events[-1]["reason"] and "index.lock" in events[-1]["reason"]
    assert fake.task(name).status == Status.PAUSED


def _checkpoints(fake: Harness, task_id: str) -> list[dict[str, object]]:
    return [e for e in fake.store.events(task_id) if e["kind"] == "checkpoint"]


def test_idle_auto_pause_and_completion_checkpoint_first(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, _ = served
    fake.add_scripted_variant("scripted-idle", lifecycle={"idle_timeout": 0.3})
    name = _create(fake, server, "/write idle.txt zzz", template="scripted-idle")
    task = fake.wait_status(name, Status.PAUSED, timeout=SLOW)
    work = fake.backend.host_path(task.id, "/workspace")
    assert git(work, "show", "HEAD:idle.txt") == "zzz\n"
    assert "auto-paused" in str(_checkpoints(fake, task.id)[-1]["reason"])

    other = _create(fake, server, "/write done.txt ok")
    fake.wait_output(other, "Wrote done.txt", timeout=SLOW)
    done = fake.wait_idle(other, timeout=SLOW)
    fake.engine.complete(other, parse_completion({"outcome": "SUCCESS"}), actor="test")
    work = fake.backend.host_path(done.id, "/workspace")
    assert git(work, "show", "HEAD:done.txt") == "ok\n"
    assert "completion" in str(_checkpoints(fake, done.id)[-1]["reason"])


def test_delete_of_a_running_task_checkpoints_before_removing(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, _ = served
    name = _create(fake, server, "/write gone.txt bye")
    fake.wait_output(name, "Wrote gone.txt", timeout=SLOW)
    task = fake.wait_idle(name, timeout=SLOW)
    fake.backend.calls.clear()
    fake.engine.delete(name)
    calls = [c for c in fake.backend.calls if c[1] == task.id]
    assert ("exec_on_disk", task.id) in calls
    assert calls.index(("exec_on_disk", task.id)) < calls.index(("remove", task.id))
