"""The Coder Tasks guide's own scripts (tests/coder_seed/, verbatim) against a Dockyard
server: bash, curl and jq with CODER_URL and CODER_SESSION_TOKEN, and `coder` being
`dockyard`. The real server runs on the fake backend (the real bridge and scripted agent
on this host)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import coder_compat as cc
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.serving import serve

__all__ = ["bridge_cache"]

SCRIPTS = Path(__file__).parent.parent / "coder_seed"
ROOT = Path(__file__).parent.parent.parent
FAST = "  work_seconds: 0.05\n"
PRESET = "Real World App: Angular + Django"
# Coder allows capitals in template names; a Dockyard template keeps its Coder name
TEMPLATES = {
    "tasks-test-preinstall": {
        "angular": "name: 'Real World App: Angular + Django'\nparameters:\n" + FAST,
        "plain": "name: Plain\ndefault: true\nparameters:\n" + FAST,
    },
    "my-template": {
        "default": "name: Default\ndefault: true\nparameters:\n" + FAST,
    },
}

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl") and shutil.which("jq")),
    reason="bash, curl and jq run the scripts (scripts/setup.sh installs them)",
)


class Shell:
    """Runs a script as a Coder user would, moved to Dockyard."""

    def __init__(self, h: Harness, url: str, root: Path) -> None:
        self.h = h
        token, _ = h.store.create_token(self._user(), "coder-scripts", None)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        # `coder` is `dockyard` (users alias it); this test runs this checkout's
        (bin_dir / "coder").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cli.main "$@"\n')
        # the guide polls every 30 s and waits 60 s for a start: a fifth of a second here
        (bin_dir / "sleep").write_text("#!/bin/sh\nexec /bin/sleep 0.2\n")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "CODER_"))}
        self.env = {
            **env,
            "PATH": f"{bin_dir}:{env['PATH']}",
            "PYTHONPATH": str(ROOT),
            "CODER_URL": url,
            "CODER_SESSION_TOKEN": token,
            "DOCKYARD_HOME": str(root / "cli-home"),  # no local server of its own
            "XDG_CONFIG_HOME": str(root / "config"),  # no stored logins
        }

    @staticmethod
    def _user() -> str:
        return "carol"

    def run(self, script: str, timeout: float = 120, **fill: str) -> str:
        text = (SCRIPTS / script).read_text()
        for placeholder, value in fill.items():
            text = text.replace(placeholder, value)
        return self.run_text(text, timeout, script)

    def run_text(self, text: str, timeout: float = 120, script: str = "-") -> str:
        done = subprocess.run(
            ["bash", "-c", text],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (script, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def tasks(self) -> dict[str, str]:
        """carol's tasks: name -> prompt."""
        return {t.name: t.prompt for t in self.h.store.list_tasks(owner=self._user())}

    def clean(self) -> None:
        for task in self.h.store.list_tasks(owner=self._user()):
            self.h.engine.delete(task.id)


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Shell]:
    root = tmp_path_factory.mktemp("coder-seed")
    with harness_at(root / "home", bridge_cache) as h:
        h.add_scripted_variant(
            "tasks-test-preinstall",
            TEMPLATES["tasks-test-preinstall"],
            coder_name="Tasks-test-preinstall",
        )
        h.add_scripted_variant("my-template", TEMPLATES["my-template"])
        h.store.create_user("carol", "member")
        with serve(h.engine, h.home) as url:
            yield Shell(h, url, root)


@pytest.fixture
def sh(shell: Shell) -> Iterator[Shell]:
    yield shell
    shell.clean()


def test_find_a_templates_presets_with_curl_and_jq_then_create(sh: Shell) -> None:
    out = sh.run("find-presets-and-create.sh")
    listed = [json.loads(chunk) for chunk in _json_values(out)]
    assert {"name": "Real World App: Angular + Django", "default": False} in listed
    assert {"name": "Plain", "default": True} in listed
    made = sh.tasks()
    assert list(made.values()) == ["Your prompt describing what the agent should do"]
    task = sh.h.store.get(next(iter(made)))
    assert (task.template, task.preset) == ("tasks-test-preinstall", PRESET)


def test_the_create_examples(sh: Shell) -> None:
    sh.run("create-examples.sh")
    made = sh.tasks()
    assert sorted(made.values()) == [
        "Add dark mode to the frontend",
        "Fix the bug in auth.py",
        "Implement dark mode toggle",
    ]
    assert made["dark-mode-task"] == "Implement dark mode toggle"


def test_create_and_wait_for_completion(sh: Shell) -> None:
    out = sh.run("create-and-wait.sh")
    lines = out.splitlines()
    assert lines[0].startswith("Created task: ")
    assert "Status: active, State: idle" in lines and "Task completed!" in lines
    # then `coder task logs`: the agent's answer to the prompt
    assert "Fix the authentication bug" in out.split("Task completed!", 1)[1]


def test_batch_create(sh: Shell) -> None:
    out = sh.run("batch-create.sh")
    assert len([line for line in out.splitlines() if line.startswith("Created: ")]) == 3
    assert sorted(sh.tasks().values()) == [
        "Add unit tests for user service",
        "Document the API endpoints",
        "Fix the CSS layout bug",
    ]


def test_interactive_follow_ups(sh: Shell) -> None:
    sh.run("interactive-session.sh")
    (task_id,) = [t.id for t in sh.h.store.list_tasks(owner="carol")]
    sent = [p["content"] for p in sh.h.store.prompts(task_id)]
    assert sent == [
        "Initial prompt",
        "Focus on error handling first",
        "The auth module is in src/auth/",
    ]


def test_the_api_reference_calls(sh: Shell) -> None:
    sh.run("batch-create.sh")
    listed = json.loads(sh.run("list-tasks.sh"))
    assert {t["initial_prompt"] for t in listed} >= {"Document the API endpoints"}
    name = next(t["name"] for t in listed if t["initial_prompt"] == "Fix the CSS layout bug")
    details = json.loads(sh.run("task-details.sh", **{"<task-name>": name}))
    assert details["name"] == name and details["owner_name"] == "carol"
    assert details["status"] in {"pending", "initializing", "active"}
    template = cc.template_id("my-template")
    presets = json.loads(sh.run("template-presets.sh", **{"<template-uuid>": template}))
    assert [p["Name"] for p in presets] == ["Default"]
    sh.env["VERSION_ID"] = presets_version = cc.version_id(
        "my-template", sh.h.engine.catalog.get("my-template").version
    )
    try:
        params = [json.loads(c) for c in _json_values(sh.run("template-parameters.sh"))]
    finally:
        del sh.env["VERSION_ID"]
    assert presets_version
    assert {"name": "work_seconds", "required": False, "default_value": "1"} in params


def test_coders_cli_conventions(sh: Shell) -> None:
    # CODER_URL and CODER_SESSION_TOKEN alone reach the server (no DOCKYARD_ variable)
    task_id = sh.run_text(
        'ID=$(echo "Prompt from stdin" | coder task create -q --template my-template --stdin)\n'
        'echo "The next step" | coder task send "$ID" --stdin >/dev/null\n'
        'echo "$ID"\n'
    ).strip()
    # both prompts answered: the two status reads below see one unchanging task
    sh.h.wait_output(task_id, "Done: The next step", timeout=60)
    sh.h.wait_idle(task_id, timeout=60)
    out = sh.run_text(
        f'coder task status "{task_id}" -c status,state\n'
        f"coder task status \"{task_id}\" | awk 'NR==2 {{print $2, $4}}'\n"
        "coder task list -o json\n"
        "coder task list -c name -c 'state changed'\n"
    )
    (task,) = sh.h.store.list_tasks(owner="carol")
    assert [p["content"] for p in sh.h.store.prompts(task.id)] == [
        "Prompt from stdin",
        "The next step",
    ]
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "STATE"]
    assert lines[1].split() == lines[2].split()  # the columns asked for = awk's $2 and $4
    assert lines[1].split() == ["active", "idle"]
    listed = json.loads("\n".join(lines[3:-2]))
    assert [t["name"] for t in listed] == [task.name]
    assert lines[-2].split() == ["NAME", "STATE", "CHANGED"] and lines[-1].startswith(task.name)


def test_an_unknown_column_is_refused(sh: Shell) -> None:
    done = subprocess.run(
        ["bash", "-c", "coder task list -c 'name,$(reboot)'"],
        env=sh.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "unknown column" in done.stderr


def _json_values(text: str) -> list[str]:
    """The JSON values jq printed one after another (pretty-printed objects), up to the
    first text that is not JSON (what a command after it printed)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    text = text.strip()
    while at < len(text):
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        found.append(json.dumps(value))
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return found
