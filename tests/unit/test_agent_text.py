"""What a hooks-driven agent said, on its way from the bridge's transcript to the reader:
the task's message (the follower), the stored logs with their source, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli.main import cli
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.follower import message_from
from provisioner.engine.workspace import BridgeBundler
from provisioner.lifecycle import Status
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog
from tests.postgres import column_names, drop_columns
from tests.serving import admin_env, serve
from tests.stored import stored_task


def out(content: str, source: str | None = None, **extra: Any) -> dict[str, object]:
    entry: dict[str, object] = {"type": "output", "content": content, **extra}
    if source is not None:
        entry["source"] = source
    return entry


# -- the task's message ------------------------------------------------------------------


def test_message_is_the_last_meaningful_output_line() -> None:
    # an agent whose screen is its output (no source): as ever
    entries = [out("Looking at auth.py"), out("Fixed it."), out("  "), out(">")]
    assert message_from(entries, "old") == "Fixed it."
    assert message_from([{"type": "input", "content": "do it"}], "old") == "old"
    assert message_from([], "old") == "old"
    assert message_from([out("x" * 300)], "") == "x" * 200
    # the setup script's lines count (a long setup says what it does)
    assert message_from([out("installing deps", "setup")], "") == "installing deps"


def test_message_prefers_what_the_agent_said_over_its_screen() -> None:
    entries = [
        out("\u276f Create hello.py", "screen"),
        out("I'll create the file.", "agent"),
        out("[tool] Write hello.py", "agent"),
        out("Created hello.py.", "agent"),
        out("", "agent"),
        out("? for shortcuts", "screen"),  # drawn after the reply
        out("(shift+tab to cycle)", "screen", partial=True),
    ]
    assert message_from(entries, "agent started") == "Created hello.py."


def test_screen_chrome_never_replaces_the_message() -> None:
    # the redraw after the reply comes in a later batch: the reply stays the message
    chrome = [out("\u23f5\u23f5 bypass permissions on (shift+tab to cycle)", "screen")]
    assert message_from(chrome, "Created hello.py.") == "Created hello.py."
    assert message_from(chrome, "agent started") == "agent started"
    # setup lines and agent lines in one batch: the agent's word wins
    assert message_from([out("Said.", "agent"), out("setup done", "setup")], "") == "Said."


# -- the stored logs ---------------------------------------------------------------------


def make_task(store: Store, status: Status = Status.ACTIVE) -> str:
    task = stored_task(
        store,
        status,
        id="00000000-0000-0000-0000-000000000001",
        name="t",
        template="claude-code",
        bridge_token="tok",
    )
    return task.id


def test_store_keeps_each_lines_source(store: Store) -> None:
    task = make_task(store)
    entries = [
        {"seq": 1, "type": "output", "content": "installing", "source": "setup"},
        {"seq": 2, "type": "output", "content": "(shift+tab to cycle)", "source": "screen"},
        {"seq": 3, "type": "output", "content": "Created hello.py.", "source": "agent"},
        {"seq": 4, "type": "output", "content": "plain"},
        {"seq": 5, "type": "output", "content": "odd", "source": ["not", "a", "name"]},
    ]
    assert store.append_logs(task, entries) == 5
    assert store.append_logs(task, entries[2:3]) == 0  # the same seq again: stored once
    store.system_log(task, "agent started")
    rows = store.logs(task)
    assert [(r["seq"], r["content"], r["source"]) for r in rows] == [
        (1, "installing", "setup"),
        (2, "(shift+tab to cycle)", "screen"),
        (3, "Created hello.py.", "agent"),
        (4, "plain", None),
        (5, "odd", None),
        (None, "agent started", None),
    ]


def test_an_older_database_gets_the_source_column(store_url: str) -> None:
    store = Store(store_url)
    task = make_task(store)
    store.append_logs(task, [{"seq": 1, "type": "output", "content": "before"}])
    store.close()
    drop_columns(store_url, "logs", ["source"])  # as the table was before it had the column
    store = Store(store_url)
    store.append_logs(task, [{"seq": 2, "type": "output", "content": "after", "source": "agent"}])
    assert [(r["content"], r["source"]) for r in store.logs(task)] == [
        ("before", None),
        ("after", "agent"),
    ]
    store.close()
    Store(store_url).close()  # and opening it again changes nothing


# -- through the API to `dockyard task logs` ---------------------------------------------


def test_task_logs_show_what_the_agent_said_and_hide_its_screen(
    store: Store, tmp_path: Path
) -> None:
    task = make_task(store, Status.COMPLETED)  # nothing for the engine to do
    store.append_logs(
        task,
        [
            {"seq": 1, "type": "output", "content": "seeded", "source": "setup"},
            {"seq": 2, "type": "input", "content": "Create hello.py", "prompt_id": "p1"},
            {"seq": 3, "type": "output", "content": "\u276f Create hello.py", "source": "screen"},
            {"seq": 4, "type": "output", "content": "[tool] Write hello.py", "source": "agent"},
            {"seq": 5, "type": "output", "content": "Created hello.py.", "source": "agent"},
            {"seq": 6, "type": "output", "content": "(shift+tab to cycle)", "source": "screen"},
        ],
    )
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    engine = Engine(
        store, DockerBackend("test", dead), Catalog(), BridgeBundler(tmp_path / "cache")
    )
    try:
        with serve(engine, tmp_path) as url:

            def run(*args: str) -> Any:
                result = CliRunner().invoke(
                    cli, ["task", "logs", task, *args], env=admin_env(url, tmp_path)
                )
                assert result.exit_code == 0, result.output
                return result

            text = run()
            assert text.stdout == (
                "seeded\n>>> Create hello.py\n[tool] Write hello.py\nCreated hello.py.\n"
            )
            assert "2 lines of the agent's screen hidden; --screen shows them" in text.stderr
            everything = run("--screen")
            assert everything.stdout.count("\n") == 6 and everything.stderr == ""
            assert "(shift+tab to cycle)\n" in everything.stdout
            entries = json.loads(run("-o", "json").stdout)
            assert [(e["content"], e.get("source")) for e in entries] == [
                ("seeded", "setup"),
                ("Create hello.py", None),
                ("[tool] Write hello.py", "agent"),
                ("Created hello.py.", "agent"),
            ]
            entries = json.loads(run("-o", "json", "--screen").stdout)
            assert [e.get("source") for e in entries].count("screen") == 2
    finally:
        store.close()


def test_an_older_database_gets_new_task_columns(store_url: str) -> None:
    Store(store_url).close()
    # make it look like an earlier Dockyard's
    drop_columns(store_url, "tasks", ["kind", "policy", "phases", "lease_until"])
    store = Store(store_url)
    assert {"kind", "policy", "phases", "lease_until"} <= column_names(store_url, "tasks")
    assert store.list_tasks() == []
    store.close()
