"""SSH repositories, the pure parts: deploy key and known_hosts checks (hostile input
refused, the key never echoed), the parameters a task needs for an ssh URL, and what the
workspace gets (the key as a secret file, never in the setup script or git's config)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner.engine.workspace import (
    REPO_CREDENTIAL_FILE,
    REPO_SSH_KEY_FILE,
    REPO_SSH_KEY_PATH,
    repo_setup,
)
from provisioner.errors import MissingParameter, ParameterError
from provisioner.gitwork.forges import forge_for
from provisioner.gitwork.ssh import check_known_hosts, check_ssh_key, ssh_command
from provisioner.gitwork.urls import is_ssh_url, redact_url, split_repo_url
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.params import REDACTED, redact
from provisioner.templating.render import render_workspace
from provisioner.templating.schema import TemplateConfig
from tests.stored import new_task

HOST_LINE = (
    "[git.corp]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcCCFJh88Wc5RaSuvRfyMzh/WVG70pdrmb9"
)
URL = "ssh://git@git.corp:2222/team/app.git"


def keygen(tmp_path: Path, name: str, *extra: str, passphrase: str = "") -> str:
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-N", passphrase, "-C", "t", "-f", str(path), *extra],
        check=True,
        capture_output=True,
    )
    return path.read_text()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> str:
    return keygen(tmp_path_factory.mktemp("keys"), "k", "-t", "ed25519")


def body(key: str) -> list[str]:
    return [line for line in key.splitlines() if not line.startswith("-----")]


def test_private_keys_of_each_format_pass_and_are_normalized(tmp_path: Path, key: str) -> None:
    assert check_ssh_key(key) == key
    assert check_ssh_key(key.replace("\n", "\r\n")) == key
    assert check_ssh_key("\n  " + key.rstrip("\n")) == key  # pasted: no final newline
    for fmt in (("-t", "rsa", "-b", "1024", "-m", "PEM"), ("-t", "ecdsa", "-m", "PKCS8")):
        other = keygen(tmp_path, f"k{fmt[1]}", *fmt)
        assert check_ssh_key(other) == other


def test_hostile_or_unusable_keys_are_refused_without_being_echoed(
    tmp_path: Path, key: str
) -> None:
    lines = key.splitlines()
    secret_lines = body(key)
    locked = keygen(tmp_path, "locked", "-t", "ed25519", passphrase="pass-phrase")
    pem = ("-t", "rsa", "-b", "1024", "-m", "PEM")
    pem_locked = keygen(tmp_path, "pem", *pem, passphrase="pass-phrase")
    pub = (tmp_path / "locked.pub").read_text()
    cases = {
        "empty": ("", "give the deploy key"),
        "oversized": (key + "A" * 17000, "longer than"),
        "escape": (key.replace(lines[1], lines[1] + "\x1b[2J"), "control"),
        "nul": (key.replace(lines[1], lines[1][:5] + "\x00"), "control"),
        "unicode": (key.replace(lines[1], lines[1] + "é"), "non-ASCII"),
        "public key": (pub, "public key"),
        "not a key": ("hunter2", "not a private key"),
        "no end": ("\n".join(lines[:-1]), "END line"),
        "other end": ("\n".join([*lines[:-1], "-----END RSA PRIVATE KEY-----"]), "END line"),
        "shell": (key.replace(lines[1], "$(id)"), "base64"),
        "injected line": (key.replace(lines[1], lines[1] + "\nHost *"), "base64"),
        "passphrase": (locked, "passphrase"),
        "pem passphrase": (pem_locked, "passphrase"),
    }
    for name, (value, why) in cases.items():
        with pytest.raises(ParameterError) as caught:
            check_ssh_key(value)
        message = str(caught.value)
        assert why in message, name
        assert not [line for line in secret_lines if line[:20] in message], name


def test_known_hosts_lines_pass_and_anything_else_is_refused() -> None:
    hashed = (
        "|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= " + HOST_LINE.split(" ", 1)[1]
    )
    text = f"# the forge\n{HOST_LINE} comment here\r\n\n{hashed}\n@revoked * {HOST_LINE[16:]}\n"
    assert check_known_hosts(text).endswith("\n") and "\r" not in check_known_hosts(text)
    assert check_known_hosts("") == ""
    bad = [
        f"{HOST_LINE}\x1b]0;title\x07",
        f"{HOST_LINE}\x00",
        "git.corp ssh-ed25519",  # no key
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",  # no host
        "git.corp ssh-evil AAAAC3NzaC1lZDI1NTE5",
        "git.corp ssh-ed25519 $(id)",
        "$(touch /tmp/x) ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        "git.corp ssh-ed25519 notbase64!",
        "Host *\n  ProxyCommand sh -c id",  # ssh_config, not known_hosts
        "@cert-authority",
        "x" * 70000,
        "\n".join([HOST_LINE] * 201),
    ]
    for value in bad:
        with pytest.raises(ParameterError):
            check_known_hosts(value)


def test_the_ssh_command_offers_only_the_key_and_asks_nothing() -> None:
    strict = ssh_command("/k/repo-ssh-key", "/k/known_hosts", accept_new=False)
    assert strict.startswith("ssh -i /k/repo-ssh-key -o IdentitiesOnly=yes")
    for option in (
        "IdentityAgent=none",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/k/known_hosts",
        "GlobalKnownHostsFile=/dev/null",
    ):
        assert f"-o {option}" in strict  # fmt: skip
    assert "StrictHostKeyChecking=accept-new" in ssh_command(None, "/kh", accept_new=True)


def test_ssh_urls_are_read_and_scrubbed() -> None:
    assert is_ssh_url("git@github.com:o/r.git") and is_ssh_url("SSH://h/r")
    assert not is_ssh_url("https://github.com/o/r.git") and not is_ssh_url("/srv/r.git")
    assert split_repo_url("git@github.com:o/r.git") == ("github.com", "/o/r.git")
    assert split_repo_url(URL) == ("git.corp", "/team/app.git")
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"  # a login name
    assert redact_url("git:hunter2@github.com:o/r.git") == "github.com:o/r.git"
    assert redact_url("ssh://git:hunter2@h:22/r") == "ssh://h:22/r"
    assert redact_url("ssh://git@h/r") == "ssh://git@h/r"
    assert redact_url("https://tok3n@h/r") == "https://h/r"
    assert forge_for("git@github.com:org/app.git", None, None).project == "org/app"


def scripted(**repo: object) -> Template:
    template = Catalog().get("scripted")
    if not repo:
        return template
    config = template.config.model_dump()
    config["repo"] = {**config["repo"], **repo}
    return Template(
        name=template.name,
        path=template.path,
        config=TemplateConfig.model_validate(config),
        presets=template.presets,
        version=template.version,
    )


def test_an_ssh_task_needs_a_key_and_the_hosts_key(key: str) -> None:
    template = scripted()
    with pytest.raises(MissingParameter, match="deploy key") as caught:
        render_workspace(template, None, {"repo": URL, "repo_known_hosts": HOST_LINE})
    assert caught.value.name == "repo_ssh_key"
    with pytest.raises(MissingParameter, match="host's key") as caught:
        render_workspace(template, None, {"repo": URL, "repo_ssh_key": key})
    assert "ssh_accept_new" in (caught.value.hint or "")
    # a template that trusts a first-seen key, or pins the keys itself, needs none
    render_workspace(scripted(ssh_accept_new=True), None, {"repo": URL, "repo_ssh_key": key})
    pinned = scripted(known_hosts=HOST_LINE)
    render_workspace(pinned, None, {"repo": URL, "repo_ssh_key": key})
    # ...and then a task may not swap them for its own
    with pytest.raises(ParameterError, match="pins the ssh host keys"):
        render_workspace(
            pinned, None, {"repo": URL, "repo_ssh_key": key, "repo_known_hosts": HOST_LINE}
        )
    with pytest.raises(ValueError, match="known_hosts"):
        scripted(known_hosts="Host *\n  ProxyCommand id")
    # a key given with an https URL (a server-wide DOCKYARD_SECRET_REPO_SSH_KEY, say) is
    # left unused: it neither reaches the workspace nor stops the task
    for given in (key, "not a key"):
        params = {"repo": "https://h/r.git", "repo_ssh_key": given, "repo_credential": "t"}
        _, files = repo_setup(new_task(name="t-1"), render_workspace(template, None, params))
        assert set(files) == {REPO_CREDENTIAL_FILE}
    with pytest.raises(ParameterError) as refused:
        render_workspace(
            template, None, {"repo": URL, "repo_ssh_key": "x\x1b", "repo_known_hosts": HOST_LINE}
        )
    assert "\x1b" not in str(refused.value)


def test_the_workspace_gets_the_key_as_a_secret_file_only(key: str) -> None:
    template = scripted()
    given = {"repo": URL, "repo_ssh_key": key.replace("\n", "\r\n"), "repo_known_hosts": HOST_LINE}
    spec = render_workspace(template, None, given)
    script, files = repo_setup(new_task(name="t-1"), spec)
    assert files == {REPO_SSH_KEY_FILE: key}  # normalized; no token file for ssh
    assert script is not None
    assert not [line for line in body(key) if line in script]
    assert f"core.sshCommand 'ssh -i {REPO_SSH_KEY_PATH} -o IdentitiesOnly=yes" in script
    assert "StrictHostKeyChecking=yes" in script and HOST_LINE in script
    # stored and shown masked, like every secret
    assert redact(template, spec.parameters)["repo_ssh_key"] == REDACTED
    # a stored task's masked key is not checked again (its spec is rendered again at start)
    render_workspace(template, None, {**given, "repo_ssh_key": REDACTED})
