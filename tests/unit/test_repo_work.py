"""Repositories in and the work out, on the fake backend: the real bridge clones from a
real git server over HTTP with a token, checkpoints commit, diffs and bundles read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.git_server import GitServer, git, serve_repository

__all__ = ["bridge_cache", "fake"]

FILES = {"README.md": "# demo\n", "src/app.py": "print('app')\n", ".gitignore": "*.log\n"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitServer, str]]:
    with serve_repository(tmp_path / "git", FILES) as found:
        yield found


def _create(fake: Harness, server: GitServer, prompt: str = "hello", **params: object) -> str:
    parameters = {**FAST, "repo": server.url, "repo_credential": server.token, **params}
    return fake.create(prompt, parameters=parameters).name


def test_a_task_starts_on_its_branch_from_the_cloned_repository(
    fake: Harness, served: tuple[GitServer, str]
) -> None:
    server, commit = served
    name = _create(fake, server)
    task = fake.wait_idle(name)
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
