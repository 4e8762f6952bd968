"""The built-in aider template end to end: a real aider in a workspace, a fake model on the host.

The fake OpenAI-compatible server answers with canned whole-file edits, so the test checks
what a user cares about: the prompt reaches the model, the edit lands in the workspace,
the task goes idle when aider waits for input, and a follow-up is delivered and applied.
The workspace is a clone of a repository served from this host over ssh with a deploy key
(tests/git_server.py: a real sshd), so the same task also proves that aider's edit of a
tracked file is exactly what `task diff` shows (none of aider's own files, commits or
.gitignore lines), that the key pushes the work back, and that the key is nowhere else.
The first run builds the aider image (pip install aider-chat; about a minute here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner import paths
from provisioner.templating.catalog import Catalog
from tests.docker.agent_script import diagnose
from tests.docker.conftest import ServerHandle
from tests.docker.templates import cleanup_templates, remove_variant_images
from tests.fake_model_server import (
    FakeModelServer,
    Reply,
    docker_bridge_gateway,
    last_user_text,
    message_texts,
)
from tests.git_server import git, serve_repository_ssh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CREATE = "Make hello.py print a greeting from aider"
CHANGE = "Change hello.py so that it greets Dockyard instead"
ORIGINAL = 'print("hello")\n'
FIRST = 'print("hello from aider")\n'
SECOND = 'print("hello, Dockyard")\n'
# the repository the task clones: the file aider edits is tracked, beside others it leaves
REPO_FILES = {"hello.py": ORIGINAL, "README.md": "# greetings\n", ".gitignore": "*.log\n"}
ASK = "What have we changed so far?"
API_KEY = "sk-aider-test-key"
# First start builds the image; on a fresh machine that also means the base image.
BUILD_TIMEOUT_S = 900


def whole_edit(path: str, content: str, note: str) -> str:
    """A reply in aider's `whole` edit format: the file name, then the whole file, fenced."""
    return f"{note}\n\n{path}\n```python\n{content}```\n"


def responder(request: dict[str, Any], api: str) -> Reply | str:
    prompt = last_user_text(request)
    if CHANGE in prompt:
        return Reply(text=whole_edit("hello.py", SECOND, "Updating the greeting."))
    if CREATE in prompt:
        return Reply(text=whole_edit("hello.py", FIRST, "Here is the new file."))
    return "Nothing to do."


def blob(text: str) -> str:
    """The git object id of a file holding `text`."""
    done = subprocess.run(
        ["git", "hash-object", "--stdin"], input=text, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_aider_edits_files_and_takes_follow_ups(server: ServerHandle, tmp_path: Path) -> None:
    with (
        FakeModelServer(responder) as fake,
        serve_repository_ssh(tmp_path / "git", REPO_FILES, host=docker_bridge_gateway()) as (
            ssh,
            repo,
            base,
        ),
    ):
        started = time.monotonic()
        result = server.cli(
            "task",
            "create",
            "--template",
            "aider",
            "--param",
            f"repo={ssh.url}",
            "--param",
            f"repo_ssh_key={ssh.key}",
            "--param",
            f"repo_known_hosts={ssh.known_hosts}",
            "--param",
            f"base_url={fake.openai_base_url_for_containers}",
            "--param",
            "model=fake-model",
            "--param",
            f"api_key={API_KEY}",
            "-q",
            "--wait",
            "--timeout",
            str(BUILD_TIMEOUT_S),
            CREATE,
        )
        task = result.stdout.strip().splitlines()[-1]
        ready_s = time.monotonic() - started
        try:
            # --wait returned at idle: aider took the prompt, answered and waits again
            status = server.wait_idle(task, timeout=120)
            assert status["template"] == "aider" and status["preset"] == "default"
            assert status["parameters"]["api_key"] != API_KEY  # a secret: redacted
            assert status["base_commit"] == base  # cloned over ssh with the deploy key
            code, out = server.exec(task, "cat", "/workspace/hello.py")
            assert code == 0, diagnose(server, task, fake)
            assert out == FIRST

            calls = fake.model_requests("openai")
            assert calls, diagnose(server, task, fake)
            assert CREATE in last_user_text(calls[0].body)
            assert calls[0].body["model"] == "fake-model"
            assert calls[0].headers.get("authorization") == f"Bearer {API_KEY}"
            # aider made no call but to the model (no update check, no price-map fetch)
            assert all(r.api == "openai" for r in fake.requests), diagnose(server, task, fake)

            before = len(calls)
            server.cli("task", "send", task, CHANGE)
            fake.wait_for_requests(before + 1, timeout=60, api="openai")
            server.wait_idle(task, timeout=120)
            code, out = server.exec(task, "cat", "/workspace/hello.py")
            assert (code, out) == (0, SECOND), diagnose(server, task, fake)
            follow_up = fake.model_requests("openai")[before]
            assert CHANGE in last_user_text(follow_up.body)
            # the follow-up carries the conversation so far: aider's session went on
            assert any(CREATE in text for text in message_texts(follow_up.body))

            # the diff is aider's edit of the tracked file, and nothing else: no commit of
            # aider's (--no-auto-commits, --no-dirty-commits), no .gitignore line
            # (--no-gitignore), none of its .aider* files (.git/info/exclude)
            shown = json.loads(server.cli("task", "diff", task, "-o", "json").stdout)
            assert shown["commits"] == [], shown["commits"]
            assert [f["path"] for f in shown["files"]] == ["hello.py"], shown["files"]
            assert shown["diff"] == (
                "diff --git a/hello.py b/hello.py\n"
                f"index {blob(ORIGINAL)[:7]}..{blob(SECOND)[:7]} 100644\n"
                "--- a/hello.py\n+++ b/hello.py\n@@ -1 +1 @@\n"
                f"-{ORIGINAL}+{SECOND}"
            ), shown["diff"]
            # the deploy key pushes it back (after a checkpoint commit of the work)
            server.cli("task", "push", task, "--branch", "aider-work")
            assert git(repo.bare, "show", "aider-work:hello.py") == SECOND
            # the key: nowhere in the API, logs, events, container or database
            container = server.container(status["id"])
            seen = [
                json.dumps(server.status(task)),
                json.dumps(server.logs(task)),
                server.cli("task", "events", task, "-o", "json").stdout,
                json.dumps(container.attrs),
                container.logs().decode(errors="replace"),
                (server.home / "dockyard.db").read_bytes().decode(errors="replace"),
            ]
            key_body = [line for line in ssh.key.splitlines() if "-----" not in line]
            assert not [text for text in seen for line in key_body if line in text]

            logs = server.logs(task)
            inputs = [e["content"] for e in logs if e["type"] == "input"]
            assert inputs == [CREATE, CHANGE]
            assert all(e["delivery"] == "taken" for e in logs if e["type"] == "input")

            # pause and resume: aider comes back with --restore-chat-history, runs no
            # prompt again, and the next call carries the earlier conversation
            server.cli("task", "pause", task)
            server.cli("task", "resume", task)
            server.wait_idle(task, timeout=120)
            assert len(fake.model_requests()) == before + 1
            server.cli("task", "send", task, ASK)
            recalled = fake.wait_for_requests(before + 2, timeout=60)[-1]
            assert ASK in last_user_text(recalled.body)
            history = "\n".join(message_texts(recalled.body))
            assert CREATE in history and CHANGE in history
            server.wait_idle(task, timeout=120)
            assert len(fake.model_requests()) == before + 2
            assert server.exec(task, "cat", "/workspace/hello.py") == (0, SECOND)
            assert fake.errors == []
            print(f"\naider task ready (image build included) in {ready_s:.1f} s")
        finally:
            server.cli("task", "delete", "-y", task, check=False)
        assert server.containers(task) == [] and server.volumes(task) == []


def add_aider_variant(server: ServerHandle, name: str, env: dict[str, str]) -> str:
    """Copy the built-in aider template as `name` with extra workspace env (same image)."""
    folder = server.home / "test-templates" / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(paths.builtin_templates_dir() / "aider", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest["name"] = name
    manifest["workspace"]["env"].update(env)
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    server.engine.catalog = Catalog(
        [paths.builtin_templates_dir(), folder.parent],
        [paths.builtin_presets_dir()],
        server.engine.catalog.versions,
    )
    return name


def test_aider_starts_without_network_calls_but_the_model(server: ServerHandle) -> None:
    """Every other HTTP(S) client in the workspace is sent to the fake server as its proxy.

    A CONNECT (pypi.org for an update check, GitHub for litellm's price map, ...) or any
    request but a chat completion would show up in its records.
    """
    with FakeModelServer(responder) as fake:
        proxy = fake.base_url_for_containers
        name = add_aider_variant(
            server,
            "aider-proxied",
            {key: proxy for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}
            | {"NO_PROXY": fake.gateway, "no_proxy": fake.gateway},
        )
        task = ""
        try:
            result = server.cli(
                "task",
                "create",
                "--template",
                name,
                "--param",
                f"base_url={fake.openai_base_url_for_containers}",
                "--param",
                f"api_key={API_KEY}",
                "-q",
                "--wait",
                "--timeout",
                str(BUILD_TIMEOUT_S),
                "Say hello",
            )
            task = result.stdout.strip().splitlines()[-1]
            server.wait_idle(task, timeout=120)
            seen = [(r.method, r.path) for r in fake.requests]
            assert seen == [("POST", "/v1/chat/completions")], diagnose(server, task, fake)
            assert fake.requests[0].body["model"] == "gpt-4o"  # the template's default model
        finally:
            if task:
                server.cli("task", "delete", "-y", task, check=False)
            cleanup_templates(server)
            remove_variant_images(server, [name])
