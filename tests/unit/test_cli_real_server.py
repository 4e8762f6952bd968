"""The `dockyard` task commands against the REAL server (provisioner.server.main.create_app)
on an Engine whose backend is the fake one (the real bridge and scripted agent on this
host): the wording checked is what the server and CLI really say.

Ported from test_cli_commands.py, whose hand-written stand-in of the API had drifted
from the server."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli.tasks
from cli.main import cli as dockyard
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache"]


class Server:
    """The served engine and a way to run `dockyard ARGS` against it as its admin."""

    def __init__(self, h: Harness, url: str, cli_home: Path) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(dockyard, list(args), input=input, env=self.env)

    def reset(self) -> None:
        """Delete every task (and workspace) a previous test left."""
        self.h.backend.start_delay = 0.0
        for task in self.h.store.list_tasks(kind=None):
            self.h.engine.delete(task.id)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cli-real")
    with harness_at(root / "home", bridge_cache) as h:
        h.add_scripted_variant("bad-setup", setup="echo about to fail\nexit 1\n")
        with serve(h.engine, h.home) as url:
            yield Server(h, url, root / "cli-home")


@pytest.fixture
def run(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    server.reset()
    monkeypatch.setattr(cli.tasks, "WAIT_POLL_INTERVAL", 0.02)
    monkeypatch.setattr(cli.tasks, "WATCH_POLL_INTERVAL", 0.02)
    return server


WORK = "--param=work_seconds=0.05"


def create(run: Server, prompt: str = "fix the auth bug", *extra: str) -> str:
    """Create a scripted task quietly; its id."""
    result = run("task", "create", "-q", "-t", "scripted", WORK, *extra, prompt)
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip())


def status(run: Server, task: str) -> dict[str, Any]:
    return dict(json.loads(run("task", "status", task, "-o", "json").stdout))


# --- task create ---


def test_create_quiet_prints_only_the_id(run: Server) -> None:
    task_id = create(run)
    assert uuid.UUID(task_id)
    assert run.h.store.get(task_id).preset == "default"  # the template's default preset


def test_create_prints_name_id_template_and_preset(run: Server) -> None:
    result = run("task", "create", "-t", "scripted", "-p", "slow", "--name", "dm", "Dark mode")
    assert result.exit_code == 0, result.output
    (task,) = run.h.store.list_tasks()
    assert result.stdout == f"Created task dm ({task.id}) from scripted/slow\n"


def test_create_names_a_task_after_its_prompt(run: Server) -> None:
    task = run.h.store.get(create(run, "Fix the bug in auth.py"))
    assert re.fullmatch(r"fix-the-bug-in-auth-py-[0-9a-f]{4}", task.name)


def test_create_sends_params_and_reads_prompt_from_stdin(run: Server) -> None:
    args = ("task", "create", "-q", "-t", "scripted", "--param", "work_seconds=0.3", "--stdin")
    result = run(*args, input="Add tests\n")
    assert result.exit_code == 0, result.output
    task = run.h.store.get(result.stdout.strip())
    assert (task.prompt, task.parameters["work_seconds"]) == ("Add tests", 0.3)


def test_create_wait_follows_phases_until_idle(run: Server) -> None:
    result = run("task", "create", "-t", "scripted", WORK, "--wait", "fix it")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Created task fix-it-")
    assert re.fullmatch(r"ready in \d+\.\ds", lines[-1])
    # "  0.1s  initializing: image  preparing the image": elapsed, status, message
    timed = [re.fullmatch(r"\s*\d+\.\ds  (.+?)(  .*)?", line) for line in lines[1:-1]]
    assert all(timed), lines
    # a line per change: the message may change within one status, so collapse repeats
    shown = [m.group(1) for m in timed if m]
    shown = [status for i, status in enumerate(shown) if i == 0 or shown[i - 1] != status]
    # what it went through, in order (a fast phase may pass between two polls)
    order = ["pending", "initializing: image", "initializing: create", "initializing: start"]
    order += ["initializing: agent", "active: working", "active: idle"]
    assert shown == sorted(set(shown), key=order.index)
    assert shown[0] == "pending" and shown[-1] == "active: idle"


def test_a_created_task_comes_with_the_etag_a_status_long_poll_starts_from(run: Server) -> None:
    # `create --wait` long-polls from the POST's answer at once (no GET first): its ETag is
    # the one GET gives the task while unchanged (nothing is admitted while the server
    # drains), so the long-poll holds
    import httpx

    api = run.url + "/api/dockyard/v1"
    headers = admin_headers(run.h.home)
    assert httpx.post(api + "/drain", headers=headers, timeout=HTTP_TIMEOUT).status_code == 200
    try:
        body = {"template": "scripted", "prompt": "wait for it"}
        created = httpx.post(api + "/tasks", json=body, headers=headers, timeout=HTTP_TIMEOUT)
        assert created.status_code == 201, created.text
        etag = created.headers["etag"]
        task_id = created.json()["id"]
        got = httpx.get(f"{api}/tasks/{task_id}", headers=headers, timeout=HTTP_TIMEOUT)
        assert got.json() == created.json() and got.headers["etag"] == etag
        params: dict[str, Any] = {"wait": 0.2, "since": etag}
        held = httpx.get(
            f"{api}/tasks/{task_id}", params=params, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert held.headers["etag"] == etag
    finally:
        assert (
            httpx.post(api + "/undrain", headers=headers, timeout=HTTP_TIMEOUT).status_code == 200
        )


def test_create_wait_quiet_prints_only_the_id_at_the_end(run: Server) -> None:
    result = run("task", "create", "-q", "--wait", "-t", "scripted", WORK, "fix it")
    assert result.exit_code == 0, result.output
    (task,) = run.h.store.list_tasks()
    assert result.stdout == f"{task.id}\n"
    assert (task.status, task.state) == (Status.ACTIVE, "idle")


def test_create_wait_exits_1_with_the_message_on_error(run: Server) -> None:
    result = run("task", "create", "-t", "bad-setup", "--name", "please-fail", "--wait", "x")
    assert result.exit_code == 1
    assert "error: task please-fail ended in error: setup script failed with exit code 1" in (
        result.stderr
    )
    assert "about to fail" in result.stderr  # the last lines say why
    assert "hint: see what happened with: dockyard task logs please-fail" in result.stderr


def test_create_wait_times_out(run: Server) -> None:
    run.h.backend.start_delay = 2.0
    result = run(
        "task", "create", "-t", "scripted", "--name", "stuck", "--wait", "--timeout", "0.3", "x"
    )
    assert result.exit_code == 1
    assert re.search(r"error: task stuck is still (pending|initializing: \w+)", result.stderr)
    assert "after 0.3 s" in result.stderr
    assert "hint: keep watching with: dockyard task status stuck --watch" in result.stderr


def test_create_without_template_is_a_usage_error(run: Server) -> None:
    result = run("task", "create", "hello")
    assert result.exit_code == 2
    assert "give a --template" in result.stderr
    assert run.h.store.list_tasks() == []


@pytest.mark.parametrize("bad", ["model", "=opus"])
def test_create_with_bad_param_is_a_usage_error(run: Server, bad: str) -> None:
    result = run("task", "create", "-t", "scripted", "--param", bad, "hello")
    assert result.exit_code == 2
    assert f"Invalid value for '--param': expected K=V, got {bad!r}" in result.stderr
    assert run.h.store.list_tasks() == []


def test_create_needs_exactly_one_prompt(run: Server) -> None:
    missing = run("task", "create", "-t", "scripted")
    assert missing.exit_code == 2
    assert "missing prompt: give it as an argument or pipe it in with --stdin" in missing.stderr
    both = run("task", "create", "-t", "scripted", "--stdin", "hi", input="there")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    empty = run("task", "create", "-t", "scripted", "--stdin", input="  \n")
    assert "the prompt is empty" in empty.stderr
    assert run.h.store.list_tasks() == []


def test_create_server_error_is_one_line_with_hint(run: Server) -> None:
    result = run("task", "create", "-t", "nope", "hello")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: Unknown template 'nope' (templates: aider, bad-setup, claude-code, codex, "
        "goose, scripted, terraform-docker)\nhint: list them with: dockyard template list\n"
    )


def test_create_missing_required_parameter(run: Server) -> None:
    result = run("task", "create", "-t", "aider", "--param", "base_url=", "hello")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: Required parameter not provided: base_url\nhint: presets that set it: default\n"
    )
    assert run.h.store.list_tasks() == []


# --- task list / status ---


def test_list_json_table_and_quiet(run: Server) -> None:
    first = create(run, "one", "--name", "one")
    second = create(run, "two", "--name", "two")
    result = run("task", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)
    assert [t["id"] for t in tasks] == [second, first]  # newest first
    assert {"id", "name", "status", "state", "phase", "message"} <= set(tasks[0])
    assert "bridge_token" not in tasks[0]
    table = run("task", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "PHASE", "STATE", "UPDATED", "MESSAGE"]
    assert [row.split()[0] for row in table[1:]] == ["two", "one"]
    assert run("task", "list", "-q").stdout.split() == [second, first]


def test_list_filters_by_status(run: Server) -> None:
    task_id = create(run, "one")
    run.h.wait_idle(task_id)
    assert json.loads(run("task", "list", "--status", "pending", "-o", "json").stdout) == []
    active = json.loads(run("task", "list", "--status", "active", "-o", "json").stdout)
    assert [t["id"] for t in active] == [task_id]
    assert run("task", "list", "--status", "bogus").exit_code == 2


def test_status_row_and_phases(run: Server) -> None:
    task_id = create(run, "fix the auth bug", "--name", "fix-the-auth-bug")
    run.h.wait_idle(task_id)
    result = run("task", "status", "fix-the-auth-bug")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PHASE", "STATE", "UPDATED", "MESSAGE"]
    fields = lines[1].split()
    assert fields[:4] == ["fix-the-auth-bug", "active", "-", "idle"]
    assert lines[1].endswith("Done: fix the auth bug")  # the agent's last line
    assert any(line.startswith("phases:") for line in lines[2:]), lines


def test_status_json(run: Server) -> None:
    task_id = create(run)
    task = json.loads(run("task", "status", task_id, "-o", "json").stdout)
    keys = ("id", "name", "status", "state", "phase", "message", "template", "preset")
    assert set(keys) | {"created_at", "updated_at"} <= set(task)
    assert (task["id"], task["template"]) == (task_id, "scripted")
    assert "bridge_token" not in task


def test_status_watch_prints_a_row_per_change(run: Server) -> None:
    # The engine never gives two of the statuses `--watch` stops at (completed, failed): a
    # task ends by being deleted, which passes through cancelled for an instant; the watch
    # ends there, or with the task not found when it polls a moment later.
    task_id = create(run, "watch me")
    done = threading.Event()
    result: list[Result] = []

    def watch() -> None:
        result.append(run("task", "status", task_id, "--watch"))
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run.h.wait_idle(task_id)
    time.sleep(0.1)  # a watch poll or two past idle (it polls every 20 ms here)
    run.h.engine.delete(task_id)
    assert done.wait(30), "the watch did not end when the task was deleted"
    (watched,) = result
    rows = [line.split()[1:4] for line in watched.stdout.splitlines()]
    if watched.exit_code == 0:
        assert rows.pop()[0] == "cancelled"
    else:
        assert watched.exit_code == 1
        assert watched.stderr == (
            f"error: No task {task_id!r}\nhint: list tasks with: dockyard task list\n"
        )
    assert rows[0] == ["STATUS", "PHASE", "STATE"]
    assert rows[1][0] in ("pending", "initializing")
    assert rows[-1] == ["active", "-", "idle"]
    statuses = [r[0] for r in rows[1:]]
    assert statuses == sorted(statuses, key=["pending", "initializing", "active"].index)
    # a row per change only: no two neighbouring rows alike (the message may differ)
    lines = watched.stdout.splitlines()[1:]
    assert all(a != b for a, b in itertools.pairwise(lines))


def test_unknown_task_is_one_error_line_exit_1(run: Server) -> None:
    result = run("task", "status", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: No task 'nope'\nhint: list tasks with: dockyard task list\n"


# --- logs / send / pause / resume / delete ---


def test_logs_text_and_json(run: Server) -> None:
    task_id = create(run, "fix it")
    run.h.wait_idle(task_id)  # idle: every prompt taken (a line may be stored before that)
    text = run("task", "logs", task_id)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert ">>> fix it" in lines and "Working on: fix it" in lines and "Done: fix it" in lines
    assert lines.index(">>> fix it") < lines.index("Done: fix it")
    entries = json.loads(run("task", "logs", task_id, "-o", "json").stdout)
    assert {"input", "output"} <= {e["type"] for e in entries}
    assert set(entries[0]) == {"id", "type", "content", "time"}  # the image line
    assert all({"id", "type", "content", "time"} <= set(e) for e in entries)


def test_logs_follow_prints_new_entries_until_the_agent_stops(
    run: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's long poll wakes on new lines only, not when the task stops: with the
    # CLI's 10 s poll, -f would linger that long after the agent's last line.
    monkeypatch.setattr(cli.tasks, "FOLLOW_WAIT", 0.3)
    task_id = create(run, "fix it")
    run.h.wait_idle(task_id)
    run.h.engine.send(task_id, "/exit 0")  # the agent stops: the task ends
    result = run("task", "logs", "-f", task_id)
    assert result.exit_code == 0, result.output
    # the prompt may show as queued: the line arrived before its delivery state
    lines = [line.replace(">>> (queued) ", ">>> ") for line in result.stdout.splitlines()]
    assert lines.index(">>> fix it") < lines.index("Done: fix it") < lines.index(">>> /exit 0")
    assert lines.index(">>> /exit 0") < lines.index("Exiting with code 0")
    # read again once stopped, it shows as taken
    assert ">>> /exit 0" in run("task", "logs", task_id).stdout.splitlines()
    as_json = run("task", "logs", "-f", "-o", "json", task_id).stdout.splitlines()
    contents = [json.loads(line)["content"] for line in as_json]
    assert "fix it" in contents and "Exiting with code 0" in contents


def test_send_from_argument_and_stdin(run: Server) -> None:
    task_id = create(run, "fix it", "--name", "fix-it")
    result = run("task", "send", "fix-it", "focus on errors")
    assert result.exit_code == 0, result.output
    first, *rest = result.stdout.splitlines()
    assert re.fullmatch(r"Sent to fix-it \(prompt [0-9a-f]{32}\)", first)
    assert rest[-1] == "prompt taken by the agent"
    assert set(rest[:-1]) <= {"prompt queued", "prompt delivered"}
    quick = run("task", "send", "fix-it", "--no-wait", "--stdin", input="more\n")
    assert quick.exit_code == 0
    assert re.fullmatch(r"Sent to fix-it \(prompt [0-9a-f]{32}\)\n", quick.stdout)
    run.h.wait_output(task_id, "Done: more")
    sent = [p["content"] for p in run.h.store.prompts(task_id)]
    assert sent == ["fix it", "focus on errors", "more"]
    assert run("task", "send", "fix-it").exit_code == 2


def test_pause_and_resume_print_the_new_status(run: Server) -> None:
    task_id = create(run, "fix it", "--name", "fix-it")
    run.h.wait_idle(task_id)
    assert run("task", "pause", "fix-it").stdout == "fix-it: paused\n"
    assert run("task", "resume", "fix-it").stdout == "fix-it: initializing: start\n"
    run.h.wait_idle(task_id)


def test_pause_of_a_task_that_is_not_active_is_refused(run: Server) -> None:
    run.h.backend.start_delay = 1.0
    create(run, "fix it", "--name", "fix-it")
    result = run("task", "pause", "fix-it")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Cannot pause fix-it: it is ")


def test_delete_yes_continues_past_failures(run: Server) -> None:
    create(run, "one", "--name", "one")
    create(run, "two", "--name", "two")
    result = run("task", "delete", "-y", "one", "missing", "two")
    assert result.exit_code == 1
    assert result.stdout == "Deleted one\nDeleted two\n"
    assert result.stderr == "error: No task 'missing'\nhint: list tasks with: dockyard task list\n"
    assert run.h.store.list_tasks() == []
    # their workspaces go too: at once, or, when a provisioning still under way outlived
    # the delete's wait for it (a loaded machine), by the engine's orphan sweep (every 30 s)
    wait_until(lambda: run.h.backend.task_ids() == set(), 45, "the workspaces removed")


def test_delete_asks_first(run: Server) -> None:
    create(run, "one", "--name", "one")
    refused = run("task", "delete", "one", input="n\n")
    assert refused.exit_code == 1
    assert "Delete task one and its workspace?" in refused.output
    assert len(run.h.store.list_tasks()) == 1
    accepted = run("task", "delete", "one", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.endswith("Deleted one\n")
    assert run.h.store.list_tasks() == []
