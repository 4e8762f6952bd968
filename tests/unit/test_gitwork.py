"""The pure parts of git in and out of workspaces: URL, ref and host checks, the scripts'
argv (values never in the script's text), and reading what the scripts print. The
scripts also run here against a local repository (git is on every test machine)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

from provisioner.bridge.runtime.config import ConfigError, config_document, parse_config
from provisioner.bridge.runtime.launch import write_secret_files
from provisioner.bridge.runtime.statedir import StateDir
from provisioner.errors import ParameterError
from provisioner.gitwork import parse, scripts
from provisioner.gitwork.forges import check_title, forge_for
from provisioner.gitwork.urls import (
    check_ref,
    check_repo_url,
    host_allowed,
    redact_url,
    task_branch,
)
from tests.git_server import git


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git",
        "http://172.17.0.1:8080/repo.git",
        "https://git.example.com/a/b/c",
        "https://example.com/~user/r%20x.git",
        "ssh://git@github.com/o/r.git",
        "ssh://git.corp:2222/srv/r.git",
        "git@github.com:o/r.git",
        "github.com:o/r.git",
        "deploy@git.corp:/srv/git/r.git",
    ],
)
def test_plain_http_urls_pass(url: str) -> None:
    assert check_repo_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ext::sh -c id",
        "ext::sh%20-c%20id",
        "fd::17",
        "file:///etc/passwd",
        "/srv/repo",
        "../repo",
        "-oProxyCommand=id",
        "--upload-pack=id",
        "git://example.com/r.git",
        "ssh://git:hunter2@github.com/o/r.git",
        "ssh://@github.com/o/r.git",
        "ssh://-oProxyCommand=id/r.git",
        "ssh://github.com/o/r.git?x=1",
        "ssh://github.com/o/../../r.git",
        "git:hunter2@github.com:o/r.git",
        "-oProxyCommand=id@github.com:o/r.git",
        "git@-oProxyCommand=id:o/r.git",
        "git@github.com:-u/r.git",
        "git@github.com:",
        "git@github.com:o/$(id).git",
        "git@github.com:../etc",
        "git@github.com:o/r.git\nHost evil",
        "https://tok@github.com/o/r.git",
        "https://u:p@github.com/o/r.git",
        "https://github.com/o/r.git\n",
        "https://github.com/o/r.git\x00",
        "https://github.com/o/r.git ",
        "https://github.com/../../etc",
        "https://github.com/o/r.git?q=1",
        "https://github.com/o/r.git#frag",
        "https://github.com:0/o/r.git",
        "https://github.com:99999/o/r.git",
        "https://exa_mple.com/r.git",
        "https://github.com/o/$(id).git",
        "https://github.com/o/`id`.git",
        "https://github.com/o/r;id.git",
        "https://" + "a" * 2100,
    ],
)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(ParameterError):
        check_repo_url(url)


def test_credentials_in_a_refused_url_are_never_echoed() -> None:
    with pytest.raises(ParameterError) as caught:
        check_repo_url("https://user:hunter2@example.com/r.git")
    assert "hunter2" not in str(caught.value) and "repo_credential" in str(caught.value)
    assert redact_url("https://user:hunter2@example.com:8443/r.git") == (
        "https://example.com:8443/r.git"
    )
    assert redact_url("https://example.com/r.git") == "https://example.com/r.git"


def test_allowed_hosts() -> None:
    allowed = ["github.com", "*.corp.example"]
    assert host_allowed("GitHub.com", allowed)
    assert host_allowed("git.corp.example", allowed)
    assert not host_allowed("corp.example", allowed)
    assert not host_allowed("github.com.evil.com", allowed)
    assert not host_allowed("evilgithub.com", allowed)
    assert host_allowed("anything", [])
    with pytest.raises(ParameterError, match="not allowed"):
        check_repo_url("https://evil.com/r.git", allowed)


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/x-y", "a" * 40, "release+1", ""])
def test_refs_that_pass(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["-b", "--upload-pack=x", "a..b", "a b", "a;b", "a\nb", "x.lock", ".x", "x/", "a//b",
     "x/.y", "@{1}", "a~1", "a^", "a:b", "*", "a" * 201],
)  # fmt: skip
def test_refs_that_git_would_misread_are_refused(ref: str) -> None:
    with pytest.raises(ParameterError):
        check_ref(ref)


def test_values_reach_git_as_arguments_never_as_script_text() -> None:
    message = "'; rm -rf / #$(id)`id`"
    argv = scripts.checkpoint_argv("/workspace", message)
    assert argv[:2] == ["sh", "-c"] and argv[3:] == [scripts.SCRIPT_NAME, "/workspace", message]
    assert message not in argv[2]
    push = scripts.push_argv("/w", "https://x/r.git", "dockyard/t", "--force")
    assert push[-3:] == ["https://x/r.git", "dockyard/t", "--force"]
    assert '-- "$remote"' in push[2]
    assert scripts.bounded(["x"], 30) == ["timeout", "-k", "5", "30", "x"]


def test_the_clone_script_quotes_what_it_embeds() -> None:
    text = scripts.clone_script(
        url="https://example.com/r.git",
        shown_url="https://example.com/r.git",
        ref="main",
        depth=1,
        branch=task_branch("t-1"),
        helper_path="/home/agent/.dockyard/bridge/bin/git-credential-dockyard",
    )
    assert "--depth 1 -- origin main" in text
    assert "credential.https://example.com/.helper" in text
    assert "checkout -q -b dockyard/t-1 FETCH_HEAD" in text
    full = scripts.clone_script(
        url="https://e.com/r", shown_url="https://e.com/r", ref="", depth=0, branch="b",
        helper_path=None,
    )  # fmt: skip
    assert "--depth" not in full and "origin HEAD" in full and "credential" not in full


def test_the_credential_helper_answers_only_get(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    helper = tmp_path / "helper"
    helper.write_text(scripts.credential_helper(str(secret)))
    helper.chmod(0o700)
    got = subprocess.run([str(helper), "get"], capture_output=True, text=True, check=True)
    assert got.stdout == "username=x-access-token\npassword=s3cret\n"
    stored = subprocess.run([str(helper), "store"], capture_output=True, text=True, check=True)
    assert stored.stdout == ""


def test_reading_script_output() -> None:
    sha1, sha2 = "a" * 40, "b" * 40
    text = (
        f"@@base {sha1}\n@@from {sha1}\n@@head {sha2}\n@@branch dockyard/t\n@@commits\n"
        f"{sha2}\tDockyard\tDockyard checkpoint: pause\n@@numstat\n3\t1\tsrc/a.py\n-\t-\tbin.png\n"
        "@@diff\ndiff --git a/src/a.py b/src/a.py\n@@base looks like a key but is diff text\n"
    )
    found = parse.diff_result(text)
    assert found["commits"] == [
        {"commit": sha2, "author": "Dockyard", "subject": "Dockyard checkpoint: pause"}
    ]
    assert found["files"][1] == {"path": "bin.png", "added": None, "deleted": None}
    assert (found["added"], found["deleted"]) == (3, 1)
    assert found["diff"].endswith("@@base looks like a key but is diff text\n")
    with pytest.raises(parse.GitOutputError):
        parse.diff_result("@@base nope\n")
    assert parse.error_of("x\n@@error\nfatal: bad\n  thing\n") == "fatal: bad thing"


def test_bundles_are_checked() -> None:
    sha = "c" * 40
    good = base64.b64encode(b"# v2 git bundle\nrest").decode()
    ref = "@@ref refs/heads/dockyard/t\n"
    assert parse.bundle_of(f"@@base {sha}\n{ref}@@bundle\n{good}\n") == (
        sha,
        "refs/heads/dockyard/t",
        b"# v2 git bundle\nrest",
    )
    assert parse.bundle_of(f"@@base {sha}\n{ref}@@empty\n") == (sha, "refs/heads/dockyard/t", None)
    for bad in ("--upload-pack=x", "refs/tags/x", "refs/heads/../x", ""):
        with pytest.raises(parse.GitOutputError):
            parse.bundle_of(f"@@base {sha}\n@@ref {bad}\n@@empty\n")
    with pytest.raises(parse.GitOutputError):
        parse.bundle_of(f"@@base {sha}\n{ref}@@bundle\n!!!\n")
    with pytest.raises(parse.GitOutputError):
        parse.bundle_of(f"@@base {sha}\n{ref}@@bundle\n{base64.b64encode(b'#!/bin/sh').decode()}\n")


def test_setup_lines() -> None:
    sha = "d" * 40
    assert parse.base_commit_in(["x", f"{scripts.BASE_LINE}{sha}"]) == sha
    assert parse.base_commit_in([f"{scripts.BASE_LINE}not-a-sha"]) is None
    line = "dockyard-repo: cloning https://e.com/r (main) failed: fatal: auth failed"
    assert parse.clone_failure(["a", line, "b"]) == line.removeprefix("dockyard-repo: ")
    assert parse.clone_failure(["dockyard-repo: cloning https://e.com/r"]) is None


@pytest.mark.parametrize(
    "path", [".git/hooks/post-checkout", "a/../../etc/passwd", "x/.GIT/config", "/etc/passwd"]
)
def test_diffs_writing_outside_the_work_tree_are_caught(path: str) -> None:
    text = f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
    assert parse.unsafe_diff_paths(text)
    assert not parse.unsafe_diff_paths("diff --git a/src/x b/src/x\n+++ b/src/x\n")


def _repo(root: Path) -> Path:
    work = root / "w"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / ".gitignore").write_text("*.log\n")
    (work / "a.txt").write_text("a\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "base")
    git(work, "update-ref", scripts.BASE_REF, "HEAD")
    git(work, "checkout", "-q", "-b", "dockyard/t")
    return work


def _run(argv: list[str], cwd: Path) -> tuple[int, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def test_the_scripts_against_a_real_repository(tmp_path: Path) -> None:
    work = _repo(tmp_path)
    base = git(work, "rev-parse", "HEAD").strip()
    (work / "new.txt").write_text("new\n")
    (work / "x.log").write_text("ignored\n")
    git(work, "add", "a.txt")  # the agent's own index: left as it is by a diff
    index = (work / ".git" / "index").read_bytes()
    code, out = _run(scripts.diff_argv(str(work)), work)
    assert code == 0, out
    found = parse.diff_result(out)
    assert [f["path"] for f in found["files"]] == ["new.txt"]
    assert (work / ".git" / "index").read_bytes() == index
    code, out = _run(scripts.checkpoint_argv(str(work), "why"), work)
    assert code == 0, out
    commit = parse.read_output(out).keys["commit"]
    assert git(work, "log", "-1", "--format=%an %s").strip() == "Dockyard why"
    assert "x.log" not in git(work, "ls-files")
    code, out = _run(scripts.checkpoint_argv(str(work), "again"), work)
    assert "@@clean" in out
    code, out = _run(scripts.bundle_argv(str(work), "dockyard/t"), work)
    got_base, _, data = parse.bundle_of(out)
    assert got_base == base and data is not None
    code, out = _run(scripts.diff_argv(str(work), since_checkpoint=True), work)
    assert parse.diff_result(out)["from_commit"] == commit
    code, out = _run(scripts.diff_argv(str(tmp_path / "nowhere")), tmp_path)
    assert code != 0 and "@@error" in out
    (tmp_path / "plain").mkdir()
    code, out = _run(scripts.diff_argv(str(tmp_path / "plain")), tmp_path)
    assert code == scripts.NO_REPOSITORY and "no git repository" in parse.error_of(out)


def test_secret_files_reach_the_state_dir_0600(tmp_path: Path) -> None:
    data = {"agent_command": ["sh"], "secret_files": {"repo-credential": "tok"}}
    config = parse_config(data)
    assert config_document(config)["secret_files"] == {"repo-credential": "tok"}
    state = StateDir(str(tmp_path / "state"))
    write_secret_files(config, state)
    path = tmp_path / "state" / "secrets" / "repo-credential"
    assert path.read_text() == "tok"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for bad in ({"../x": "t"}, {"a/b": "t"}, {"x": 1}, ["x"]):
        with pytest.raises(ConfigError):
            parse_config({"agent_command": ["sh"], "secret_files": bad})


def test_a_workspace_claimed_under_another_name_bundles_its_checked_out_branch(
    tmp_path: Path,
) -> None:
    work = _repo(tmp_path)  # on dockyard/t, as a warm workspace's clone was
    (work / "b.txt").write_text("b\n")
    _run(scripts.checkpoint_argv(str(work), "x"), work)
    code, out = _run(scripts.bundle_argv(str(work), "dockyard/claimed-name"), work)
    assert code == 0, out
    _, ref, data = parse.bundle_of(out)
    assert ref == "refs/heads/dockyard/t" and data is not None


def test_forges_are_known_by_host_or_configured() -> None:
    github = forge_for("https://github.com/org/app.git", None, None)
    assert (github.kind, github.api, github.project) == (
        "github",
        "https://api.github.com",
        "org/app",
    )
    opened = github.open_request("dockyard/t", "main", "T", "B")
    assert opened.url == "https://api.github.com/repos/org/app/pulls"
    assert opened.json == {"title": "T", "head": "dockyard/t", "base": "main", "body": "B"}
    assert github.auth_headers("x") == {"Authorization": "Bearer x"}
    gitlab = forge_for("https://gitlab.com/group/sub/app", None, None)
    assert gitlab.repository().url == "https://gitlab.com/api/v4/projects/group%2Fsub%2Fapp"
    assert gitlab.auth_headers("x") == {"PRIVATE-TOKEN": "x"}
    assert gitlab.request_url({"web_url": "https://gitlab.com/mr/1"}) == "https://gitlab.com/mr/1"
    assert gitlab.request_url({"web_url": "javascript:alert(1)"}) is None
    ghe = forge_for("https://git.corp/o/r.git", "github", "https://git.corp/api/v3/")
    assert ghe.repository().url == "https://git.corp/api/v3/repos/o/r"
    with pytest.raises(ParameterError, match="which forge"):
        forge_for("https://git.corp/o/r.git", None, None)
    with pytest.raises(ParameterError, match="owner"):
        forge_for("https://github.com/app.git", None, None)
    with pytest.raises(ParameterError):
        check_title("", "")
    with pytest.raises(ParameterError):
        check_title("x" * 300, "")


def test_a_templates_own_repo_parameter_is_not_the_standard_one(tmp_path: Path) -> None:
    from provisioner.templating.schema import TemplateConfig

    own = TemplateConfig.model_validate(
        {"name": "t", "agent": {"command": ["x"]}, "parameters": [{"name": "repo"}]}
    )
    assert not own.clones_repo
    assert [p.name for p in own.parameters] == [
        "repo",
        "ref",
        "repo_depth",
        "repo_credential",
        "repo_ssh_key",
        "repo_known_hosts",
    ]
    standard = TemplateConfig.model_validate({"name": "t", "agent": {"command": ["x"]}})
    assert standard.clones_repo
    again = TemplateConfig.model_validate(standard.model_dump())
    assert again.clones_repo and len(again.parameters) == 6
