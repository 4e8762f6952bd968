"""`dockyard task diff|pull|apply|push` against the real server on the fake backend (the
real bridge clones from a real git server over HTTP with a token), and the routes'
abuse cases: hostile repository URLs and refs, other users' tasks, no credential."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli as dockyard
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.fake_forge import fake_forge
from tests.git_server import GitServer, git, serve_repository
from tests.serving import admin_env, admin_headers, serve

# a clone over HTTP, then the agent: generous on a loaded machine (never a timed assert)
SLOW = 90.0

__all__ = ["bridge_cache"]

FILES = {"README.md": "# demo\n", "src/app.py": "print('app')\n"}
URL_SHAPE = "an https://, ssh:// or user@host:path URL"


class Served:
    def __init__(self, h: Harness, url: str, cli_home: Path, repo: GitServer, base: str) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}
        self.repo = repo
        self.base = base

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(dockyard, list(args), env=self.env)

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = admin_headers(self.h.home)
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("repo-cli")
    with (
        serve_repository(root / "git", FILES) as (repo, base),
        harness_at(root / "home", bridge_cache) as h,
        serve(h.engine, h.home) as url,
    ):
        yield Served(h, url, root / "cli-home", repo, base)


def _local_clone(served: Served, where: Path) -> Path:
    url = served.repo.url.replace("http://", f"http://u:{served.repo.token}@")
    git(where.parent, "clone", "-q", url, where.name)
    return where


def test_diff_pull_apply_push_from_a_paused_task(served: Served, tmp_path: Path) -> None:
    params = [f"--param=repo={served.repo.url}", "--param=work_seconds=0.05"]
    token = f"--param=repo_credential={served.repo.token}"
    made = served("task", "create", "-q", "-t", "scripted", *params, token, "/write out.txt done")
    assert made.exit_code == 0, made.output
    name = served.h.task(made.stdout.strip()).name
    served.h.wait_output(name, "Wrote out.txt", timeout=SLOW)
    served.h.wait_idle(name, timeout=SLOW)
    assert served("task", "pause", name).exit_code == 0
    served.h.wait_status(name, Status.PAUSED, timeout=SLOW)

    shown = served("task", "diff", name)
    assert shown.exit_code == 0, shown.output
    assert "out.txt  +1" in shown.output and "+done" in shown.output
    assert "Dockyard checkpoint: paused by user" in shown.output
    stat = json.loads(served("task", "diff", name, "--stat", "-o", "json").output)
    assert stat["diff"] is None and stat["base_commit"] == served.base
    status = json.loads(served("task", "status", name, "-o", "json").output)
    assert status["base_commit"] == served.base and status["checkpoint_commit"]

    local = _local_clone(served, tmp_path / "local")
    pulled = served("task", "pull", name, "--into", str(local))
    assert pulled.exit_code == 0, pulled.output
    branch = f"dockyard/{name}"
    assert git(local, "show", f"{branch}:out.txt") == "done\n"

    (local / "README.md").write_text("mine\n")
    refused = served("task", "apply", name, "--into", str(local))
    assert refused.exit_code == 1 and "uncommitted changes" in refused.output
    git(local, "checkout", "-q", "--", "README.md")
    applied = served("task", "apply", name, "--into", str(local))
    assert applied.exit_code == 0, applied.output
    assert (local / "out.txt").read_text() == "done\n"

    pushed = served("task", "push", name, "--branch", "from-dockyard")
    assert pushed.exit_code == 0, pushed.output
    assert served.repo.branches()["from-dockyard"] == status["checkpoint_commit"]
    assert "from-dockyard" in (served.h.task(name).output or "")
    # the token appears nowhere the server keeps or shows
    everything = [
        served.api("GET", f"/api/dockyard/v1/tasks/{name}").text,
        served.api("GET", f"/api/dockyard/v1/tasks/{name}/events").text,
        served.api("GET", f"/api/dockyard/v1/tasks/{name}/logs").text,
        (served.h.home / "dockyard.db").read_bytes().decode(errors="replace"),
    ]
    assert not [text for text in everything if served.repo.token in text]


@pytest.mark.parametrize(
    ("repo", "said"),
    [
        ("ext::sh -c touch% /tmp/pwned", URL_SHAPE),
        ("ext::sh", URL_SHAPE),
        ("file:///etc", URL_SHAPE),
        ("/srv/git/repo", URL_SHAPE),
        ("-uhttps://x/y", URL_SHAPE),
        ("--upload-pack=touch", URL_SHAPE),
        ("https://user:hunter2@example.com/r.git", "carries credentials"),
        ("https://example.com/r.git\nx", URL_SHAPE),
        ("ssh://git:hunter2@example.com/r.git", "carries credentials"),
        ("git:hunter2@example.com:r.git", "carries credentials"),
        ("ssh://git@example.com/r.git", "needs a deploy key"),
        ("https://example.com/../etc", "'..'"),
        ("https://example.com/r.git?x=1", "no query"),
        ("https://example.com/r;id.git", "characters git URLs do not use"),
        ("https://" + "a" * 3000, URL_SHAPE),
    ],
)
def test_hostile_repository_urls_are_refused(served: Served, repo: str, said: str) -> None:
    reply = served.api(
        "POST",
        "/api/dockyard/v1/tasks",
        json={"template": "scripted", "prompt": "x", "parameters": {"repo": repo}},
    )
    assert reply.status_code == 400, reply.text
    assert said in reply.json()["detail"]
    assert "hunter2" not in reply.text


KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
KNOWN = "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcCCFJh88Wc5RaSuvRfyMzh\n"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"repo_ssh_key": KEY.replace(KEY_BODY[:9], "\x1b[2J\x1b]0;"), "repo_known_hosts": KNOWN},
         "printable"),
        ({"repo_ssh_key": KEY + "A" * 20000, "repo_known_hosts": KNOWN}, "16 KiB"),
        ({"repo_ssh_key": KEY.replace(KEY_BODY[:9], "$(id)`id`"), "repo_known_hosts": KNOWN},
         "base64"),
        ({"repo_ssh_key": KEY, "repo_known_hosts": KNOWN + "Host *\n ProxyCommand id\n"},
         "not a known_hosts line"),
        ({"repo_ssh_key": KEY, "repo_known_hosts": KNOWN.replace("\n", "\x1b[2J\n")},
         "printable"),
        ({"repo_ssh_key": KEY}, "host's key"),
        ({"repo_known_hosts": KNOWN}, "deploy key"),
    ],
)  # fmt: skip
def test_hostile_ssh_keys_and_host_keys_are_refused(
    served: Served, params: dict[str, str], said: str
) -> None:
    body = {"repo": "git@example.com:org/r.git", **params}
    reply = served.api(
        "POST",
        "/api/dockyard/v1/tasks",
        json={"template": "scripted", "prompt": "x", "parameters": body},
    )
    assert reply.status_code == 400, reply.text
    assert said in reply.json()["detail"]
    assert KEY_BODY[9:30] not in reply.text  # never the key, even a broken one


@pytest.mark.parametrize(
    "ref", ["--upload-pack=x", "-b", "a..b", "a b", "x;rm", "main.lock", ".hidden", "a//b"]
)
def test_hostile_refs_are_refused(served: Served, ref: str) -> None:
    params = {"repo": "https://example.com/r.git", "ref": ref}
    reply = served.api(
        "POST",
        "/api/dockyard/v1/tasks",
        json={"template": "scripted", "prompt": "x", "parameters": params},
    )
    assert reply.status_code == 400, reply.text


def test_hosts_outside_the_templates_allow_list_are_refused(served: Served) -> None:
    served.h.add_scripted_variant(
        "scripted-forge", repo={"allowed_hosts": ["git.example.com", "*.corp.example"]}
    )
    body = {"template": "scripted-forge", "prompt": "x"}
    for host, allowed in [
        ("git.example.com", True),
        ("a.corp.example", True),
        ("corp.example", False),
        ("evil.com", False),
        ("git.example.com.evil.com", False),
    ]:
        params = {"repo": f"https://{host}/r.git", "work_seconds": 0.05}
        reply = served.api("POST", "/api/dockyard/v1/tasks", json={**body, "parameters": params})
        if allowed:
            assert reply.status_code == 201, reply.text
            served.h.engine.delete(reply.json()["id"])
        else:
            assert reply.status_code == 400 and "not allowed" in reply.text, reply.text


def test_push_refuses_hostile_remotes_and_branches(served: Served) -> None:
    made = served.api(
        "POST",
        "/api/dockyard/v1/tasks",
        json={
            "template": "scripted",
            "prompt": "x",
            "parameters": {"repo": served.repo.url, "repo_credential": served.repo.token},
        },
    )
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    try:
        for body in (
            {"remote": "ext::sh -c id"},
            {"remote": "file:///tmp/x"},
            {"remote": "-oProxyCommand=id"},
            {"branch": "--force"},
            {"branch": "a..b"},
            {"branch": "x\u0007"},
        ):
            reply = served.api("POST", f"/api/dockyard/v1/tasks/{name}/push", json=body)
            assert reply.status_code == 400, (body, reply.text)
    finally:
        served.h.engine.delete(name)


def test_a_task_without_a_repository_says_so(served: Served) -> None:
    made = served("task", "create", "-q", "-t", "scripted", "--param=work_seconds=0.05", "hi")
    name = made.stdout.strip()
    try:
        result = served("task", "diff", name)
        assert result.exit_code == 1 and "has no repository" in result.output
    finally:
        served.h.engine.delete(name)


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_pr_pushes_then_opens_a_request_on_the_forge(served: Served, kind: str) -> None:
    with fake_forge(served.repo.token) as forge:
        template = served.h.add_scripted_variant(
            f"scripted-{kind}", repo={"forge": kind, "api_url": forge.url}
        )
        params = {"repo": served.repo.url, "repo_credential": served.repo.token}
        made = served.api(
            "POST",
            "/api/dockyard/v1/tasks",
            json={"template": template, "prompt": "/write pr.txt yes", "parameters": params},
        )
        name = made.json()["name"]
        served.h.wait_output(name, "Wrote pr.txt", timeout=SLOW)
        served.h.wait_idle(name, timeout=SLOW)
        result = served("task", "pr", name, "--title", "Add pr.txt")
        assert result.exit_code == 0, result.output
        assert result.output.strip().startswith(forge.url)
        assert served.repo.branches()[f"dockyard/{name}"]
        opened = forge.requests[-1]
        if kind == "github":
            assert opened["json"] == {
                "title": "Add pr.txt",
                "head": f"dockyard/{name}",
                "base": "main",
                "body": f"Made by Dockyard task {name}.",
            }
        else:
            assert opened["json"]["source_branch"] == f"dockyard/{name}"
            assert opened["json"]["target_branch"] == "main"
        assert result.output.strip() in (served.h.task(name).output or "")
        events = served.api("GET", f"/api/dockyard/v1/tasks/{name}/events").text
        assert served.repo.token not in events
        served.h.engine.delete(name)


def test_pr_says_what_to_configure_for_an_unknown_forge(served: Served) -> None:
    params = {"repo": served.repo.url, "repo_credential": served.repo.token}
    made = served.api(
        "POST",
        "/api/dockyard/v1/tasks",
        json={"template": "scripted", "prompt": "x", "parameters": params},
    )
    name = made.json()["name"]
    try:
        reply = served.api("POST", f"/api/dockyard/v1/tasks/{name}/pr", json={})
        assert reply.status_code == 400
        assert "repo.forge" in reply.json()["hint"]
    finally:
        served.h.engine.delete(name)
