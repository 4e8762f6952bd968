"""Nothing the agent wrote is lost at delete: the server keeps a bundle of the task
branch, and `task pull` of the deleted task serves it (on the fake backend: the real
bridge clones from a real git server). Members reach only their own kept bundles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli as dockyard
from provisioner.engine.kept import KeptBundles
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.git_server import GitServer, git, serve_repository
from tests.serving import admin_env, admin_headers, serve

# a clone over HTTP, then the agent: generous on a loaded machine (never a timed assert)
SLOW = 90.0

__all__ = ["bridge_cache"]

FILES = {"README.md": "# demo\n"}


class Served:
    def __init__(self, h: Harness, url: str, cli_home: Path, repo: GitServer) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}
        self.repo = repo

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(dockyard, list(args), env=self.env)

    def api(self, method: str, path: str, token: str | None = None) -> httpx.Response:
        headers = admin_headers(self.h.home) if token is None else {}
        if token:
            headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("kept")
    with (
        serve_repository(root / "git", FILES) as (repo, _),
        harness_at(root / "home", bridge_cache) as h,
        serve(h.engine, h.home) as url,
    ):
        yield Served(h, url, root / "cli-home", repo)


def _deleted_task_with(served: Served, text: str) -> str:
    params = [f"--param=repo={served.repo.url}", "--param=work_seconds=0.05"]
    token = f"--param=repo_credential={served.repo.token}"
    made = served(
        "task", "create", "-q", "-t", "scripted", *params, token, f"/write kept.txt {text}"
    )
    assert made.exit_code == 0, made.output
    name = served.h.task(made.stdout.strip()).name
    served.h.wait_output(name, "Wrote kept.txt", timeout=SLOW)
    served.h.wait_idle(name, timeout=SLOW)
    assert served.api("DELETE", f"/api/dockyard/v1/tasks/{name}").status_code in (200, 204)
    return name


def test_pull_of_a_deleted_task_gets_its_work(served: Served, tmp_path: Path) -> None:
    name = _deleted_task_with(served, "kept")
    assert served("task", "status", name).exit_code != 0  # the task is gone
    kept = list((served.h.home / "kept").glob("*.bundle"))
    assert len(kept) == 1 and oct(kept[0].stat().st_mode)[-3:] == "600"
    # the token is in no kept file
    for path in (served.h.home / "kept").iterdir():
        assert served.repo.token.encode() not in path.read_bytes()

    local = tmp_path / "local"
    url = served.repo.url.replace("http://", f"http://u:{served.repo.token}@")
    git(tmp_path, "clone", "-q", url, local.name)
    pulled = served("task", "pull", name, "--into", str(local))
    assert pulled.exit_code == 0, pulled.output
    assert git(local, "show", f"dockyard/{name}:kept.txt") == "kept\n"

    # members: another's kept bundle is not found, as another's task is not
    store = served.h.store
    store.create_user("mallory", "member")
    mallory, _ = store.create_token("mallory", "laptop", None)
    reply = served.api("GET", f"/api/dockyard/v1/tasks/{name}/bundle", token=mallory)
    assert reply.status_code == 404, reply.text
    assert served.api("GET", f"/api/dockyard/v1/tasks/{name}/bundle", token="").status_code == 401
    # hostile refs never reach outside the kept folder
    task_id = kept[0].name.removesuffix(".bundle")
    for hostile in (f"..%2F{task_id}", f"{task_id}.bundle", "%2E%2E", "*", f"{task_id}%00"):
        reply = served.api("GET", f"/api/dockyard/v1/tasks/{hostile}/bundle")
        assert reply.status_code == 404, (hostile, reply.text)
    # the admin still reaches it by id
    assert served.api("GET", f"/api/dockyard/v1/tasks/{task_id}/bundle").status_code == 200


def test_a_bundle_over_the_limit_is_an_event_and_the_delete_goes_on(served: Served) -> None:
    served.h.engine.kept = KeptBundles(served.h.home / "kept-small", max_bytes=10)
    try:
        params = {"repo": served.repo.url, "repo_credential": served.repo.token}
        task = served.h.create("/write big.txt x", parameters={"work_seconds": 0.05, **params})
        served.h.wait_output(task.name, "Wrote big.txt", timeout=SLOW)
        served.h.wait_idle(task.name, timeout=SLOW)
        served.h.engine.gitwork.checkpoint(task, "test", actor="test")
        kept = served.h.engine.gitwork.keep(
            served.h.task(task.name), served.h.engine.kept, actor="test"
        )
        assert kept is None
        events = [e for e in served.h.store.events(task.id) if e["kind"] == "kept"]
        assert "over kept_bundles.max_mb" in str(events[-1]["reason"])
        served.h.engine.delete(task.name)
        assert not (served.h.home / "kept-small").exists()
    finally:
        served.h.engine.kept = KeptBundles(served.h.home / "kept")
