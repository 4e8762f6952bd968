"""Repositories over ssh with a deploy key, on the fake backend: the real bridge runs the
real setup, whose git and ssh clone from a real sshd on this host (git-shell as the forced
command, one authorized deploy key); the key stays a 0600 file only git's ssh reads, and a
wrong key or an unknown host key fails the setup with ssh's words and none of the key."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.engine.workspace import REPO_KNOWN_HOSTS_PATH, REPO_SSH_KEY_PATH
from provisioner.lifecycle import Status
from tests.fake_engine import FAST, Harness, bridge_cache, fake
from tests.git_server import GitServer, SshServer, git, serve_repository_ssh

SLOW = 90.0  # a clone, then the agent, on a loaded machine (never a timed assert)
FILES = {"README.md": "# demo\n", "src/app.py": "print('app')\n"}

__all__ = ["bridge_cache", "fake"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SshServer, GitServer, str]]:
    with serve_repository_ssh(tmp_path / "git", FILES) as found:
        yield found


def key_lines(key: str) -> list[str]:
    """The key's body lines: none may show up anywhere but its own file."""
    return [line for line in key.splitlines() if not line.startswith("-----")]


def test_a_task_clones_over_ssh_with_its_deploy_key_and_pushes_back(
    fake: Harness, served: tuple[SshServer, GitServer, str]
) -> None:
    ssh, repo, commit = served
    parameters = {
        **FAST,
        "repo": ssh.url,
        "repo_ssh_key": ssh.key.replace("\n", "\r\n"),  # pasted from Windows: fixed
        "repo_known_hosts": ssh.known_hosts,
    }
    name = fake.create("/write notes/todo.txt over ssh", parameters=parameters).name
    fake.wait_output(name, "Wrote notes/todo.txt", timeout=SLOW)
    task = fake.wait_idle(name, timeout=SLOW)
    assert task.base_commit == commit
    work = fake.backend.host_path(task.id, "/workspace")
    assert (work / "src" / "app.py").read_text() == "print('app')\n"

    key_file = fake.backend.host_path(task.id, REPO_SSH_KEY_PATH)
    assert key_file.read_text() == ssh.key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    known = fake.backend.host_path(task.id, REPO_KNOWN_HOSTS_PATH)
    assert known.read_text() == ssh.known_hosts
    # git's ssh names the key's file and pins the host; the key itself is in no config
    command = git(work, "config", "core.sshCommand")
    assert "IdentitiesOnly=yes" in command and "StrictHostKeyChecking=yes" in command
    assert str(key_file) in command
    assert git(work, "remote", "get-url", "origin").strip() == ssh.url

    # the same key pushes the work back
    pushed = fake.engine.gitwork.push(
        task, remote=None, branch="from-ssh", allowed_hosts=[], actor="test"
    )
    assert repo.branches()["from-ssh"] == pushed["commit"]

    # the key: nowhere in the database, the API's view, the events or the logs
    stored = [
        (fake.home / "dockyard.db").read_bytes().decode(errors="replace"),
        repr(fake.task(name).public()),
        repr(fake.store.events(task.id)),
        "\n".join(fake.output(name)),
        (work / ".git" / "config").read_text(),
    ]
    for line in key_lines(ssh.key):
        assert not [text for text in stored if line in text]


def test_a_wrong_key_or_an_unknown_host_is_a_setup_error_without_the_key(
    fake: Harness, served: tuple[SshServer, GitServer, str]
) -> None:
    ssh, _, _ = served
    cases = {
        "stranger": {"repo_ssh_key": ssh.stranger_key, "repo_known_hosts": ssh.known_hosts},
        "impostor": {"repo_ssh_key": ssh.key, "repo_known_hosts": ssh.impostor_known_hosts},
    }
    names = {
        case: fake.create("hello", parameters={**FAST, "repo": ssh.url, **values}).name
        for case, values in cases.items()
    }
    messages = {}
    for case, name in names.items():
        task = fake.wait_status(name, Status.ERROR, timeout=SLOW)
        assert task.phase == "setup"
        assert ssh.url in task.message and "failed" in task.message
        messages[case] = task.message
        shown = task.message + repr(fake.store.events(task.id)) + "\n".join(fake.output(name))
        for line in key_lines(ssh.key) + key_lines(ssh.stranger_key):
            assert line not in shown
    assert "Permission denied (publickey)" in messages["stranger"]
    assert "Host key verification failed" in messages["impostor"]


def test_a_template_may_trust_the_first_host_key_it_sees(
    fake: Harness, served: tuple[SshServer, GitServer, str]
) -> None:
    ssh, _, commit = served
    fake.add_scripted_variant("ssh-tofu", repo={"ssh_accept_new": True})
    parameters = {**FAST, "repo": ssh.url, "repo_ssh_key": ssh.key}
    name = fake.create("hello", template="ssh-tofu", parameters=parameters).name
    task = fake.wait_idle(name, timeout=SLOW)
    assert task.base_commit == commit
    work = fake.backend.host_path(task.id, "/workspace")
    assert "StrictHostKeyChecking=accept-new" in git(work, "config", "core.sshCommand")
    # the key seen first is kept, and trusted from then on
    known = fake.backend.host_path(task.id, REPO_KNOWN_HOSTS_PATH).read_text()
    assert ssh.known_hosts.split()[2] in known
