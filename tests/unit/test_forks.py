"""Forks on a real engine (fake backend: the real bridge and scripted agent as local
processes, a directory as each workspace's disk): the child starts from a copy of the
parent's disk and its agent resumes the parent's session before taking its own prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner.bridge.runtime.statedir import RUN_STATE_FILE, StateDir
from provisioner.durations import parse_retention
from provisioner.errors import ParameterError, TaskConflict
from provisioner.model import QueueFields
from provisioner.queueing import parse_completion
from provisioner.retention import removed
from tests.fake_engine import Harness, bridge_cache, fake
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache", "fake"]


def test_a_state_dir_copied_from_another_workspace_keeps_only_its_run_state(
    tmp_path: Path,
) -> None:
    root = tmp_path / "bridge"
    first = StateDir(root, "parent-id")
    first.save_run_state(first.load_run_state())
    first.save_prompts([{"id": "p"}], initial_prompt_queued=True)
    first.transcript_path.write_text('{"seq": 1}\n')
    (root / "reports").mkdir()  # anything else the parent's bridge kept goes too
    again = StateDir(root, "parent-id")  # the parent restarting: all of it is its own
    assert again.has_history and again.prompts_path.exists()
    forked = StateDir(root, "child-id")
    assert not forked.has_history
    assert sorted(p.name for p in root.iterdir()) == [RUN_STATE_FILE, "workspace"]
    assert (root / "workspace").read_text().strip() == "child-id"
    assert json.loads((root / RUN_STATE_FILE).read_text())["version"] == 1


def test_a_fork_continues_the_parents_files_and_session(fake: Harness) -> None:
    parent = fake.create("/write notes.txt hello from the parent", name="parent")
    fake.wait_idle(parent.id)
    fake.engine.send(parent.id, "second thought")
    fake.wait_output(parent.id, "Done: second thought")
    fake.wait_idle(parent.id)

    child = fake.create("/write child.txt mine", name="child", queue=QueueFields(parent="parent"))
    assert child.parent_id == parent.id
    fake.wait_idle(child.id)
    out = fake.wait_output(child.id, "Wrote child.txt")
    # resumed with the parent's context (two inputs), then took its own prompt once
    assert "Resumed (previous context: 2 inputs)" in out
    assert out.index("Resumed (previous context: 2 inputs)") < out.index("Wrote child.txt")
    assert "Scripted agent ready." not in out and "Wrote notes.txt" not in out
    inputs = [e["content"] for e in fake.store.logs(child.id) if e["type"] == "input"]
    assert inputs == ["/write child.txt mine"]
    copied = fake.backend.host_path(child.id, "/workspace/notes.txt")
    assert copied.read_text() == "hello from the parent\n"
    # the disks are separate from now on
    assert not fake.backend.host_path(parent.id, "/workspace/child.txt").exists()
    assert fake.task(parent.id).status.value == "active"
    child_events = [(e["kind"], e["from_value"]) for e in fake.store.events(child.id)]
    assert ("fork", "parent") in child_events
    parent_events = [(e["kind"], e["to_value"]) for e in fake.store.events(parent.id)]
    assert ("fork", "child") in parent_events


def test_forks_that_cannot_work_are_refused_before_anything_is_stored(fake: Harness) -> None:
    other = fake.create("someone else's", owner="bob", name="bobs")
    with pytest.raises(ParameterError, match="Unknown parent"):
        fake.create("x", queue=QueueFields(parent="bobs"))  # not found among mine
    holder = fake.create("/sleep 600", name="holder")
    waiter = fake.create("after it", name="waiter", queue=QueueFields(depends_on=("holder",)))
    with pytest.raises(TaskConflict, match="has not started"):
        fake.create("x", queue=QueueFields(parent="waiter"))
    fake.add_scripted_variant("scripted-copy")
    tf_parent = fake.create("/write a b", name="tf")
    fake.wait_idle(tf_parent.id)
    with pytest.raises(ParameterError, match="runs its parent's template"):
        fake.create("x", template="scripted-copy", queue=QueueFields(parent="tf"))
    # a backend that cannot copy a disk (Terraform's) refuses at create
    fake.backend.can_fork = lambda spec: False  # type: ignore[method-assign]
    with pytest.raises(ParameterError, match="cannot fork"):
        fake.create("x", queue=QueueFields(parent="tf"))
    names = {t.name for t in fake.store.list_tasks()}
    assert names == {other.name, holder.name, waiter.name, tf_parent.name}


def test_retention_removes_a_finished_tasks_workspace_and_keeps_its_logs(
    fake: Harness,
) -> None:
    fake.add_scripted_variant("scripted-brief", lifecycle={"retention": "1s"})
    kept = fake.create("kept", name="kept")  # the template says nothing: the server's keep
    brief = fake.create("brief", name="brief", template="scripted-brief")
    for task in (kept, brief):
        fake.wait_idle(task.id)
        fake.engine.complete(task.id, parse_completion({"outcome": "SUCCESS"}))
    gone = fake.wait_task(brief.id, removed, "the workspace removed by retention")
    assert brief.id not in fake.backend.task_ids()
    assert "retention" in gone.workspace["reason"]  # type: ignore[index]
    assert "Done: brief" in fake.output(brief.id), "the logs are kept"
    events = [(e["kind"], e["actor"]) for e in fake.store.events(brief.id)]
    assert events.count(("retention", "policy")) == 1
    with pytest.raises(TaskConflict, match="workspace was removed"):
        fake.create("x", template="scripted-brief", queue=QueueFields(parent="brief"))
    # kept by the default until the server's default says otherwise
    assert kept.id in fake.backend.task_ids() and not removed(fake.task(kept.id))
    fake.engine.retention = "1s"
    fake.wait_task(kept.id, removed, "the workspace removed by the server's retention")
    assert kept.id not in fake.backend.task_ids()


@pytest.mark.parametrize("value", ["1y", "24", "-1h", "1h; rm -rf /", "9999999w", ""])
def test_a_bad_retention_is_refused(value: str) -> None:
    with pytest.raises(ParameterError):
        parse_retention(value)
    assert parse_retention("keep") is None and parse_retention("24h") == 86400


@pytest.fixture
def served(fake: Harness) -> Iterator[tuple[Harness, str]]:
    with serve(fake.engine, fake.home) as url:
        yield fake, url


def test_fork_through_the_api_and_cli(served: tuple[Harness, str], tmp_path: Path) -> None:
    h, url = served
    h.store.create_user("alice", "member")
    alice, _ = h.store.create_token("alice", "laptop", None)
    me = httpx.get(f"{url}/api/v2/me", headers=admin_headers(h.home), timeout=HTTP_TIMEOUT).json()[
        "user"
    ]
    parent = h.create("/write a.txt from admin", name="base", owner=me)
    h.wait_idle(parent.id)
    # another user's task is not found as a parent: neither by name nor by id
    for ref in ("base", parent.id):
        reply = httpx.post(
            f"{url}/api/v2/tasks",
            headers={"Authorization": f"Bearer {alice}"},
            json={"prompt": "steal it", "parent": ref},
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code in (400, 404), reply.text
        assert "base" not in reply.text or "Unknown parent" in reply.text
    env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(tmp_path / "cli")}
    made = CliRunner().invoke(
        dockyard, ["task", "create", "--parent", "base", "--name", "kid", "-q", "go on"], env=env
    )
    assert made.exit_code == 0, made.output
    kid = h.wait_idle("kid")
    assert (kid.template, kid.template_version) == (parent.template, parent.template_version)
    status = CliRunner().invoke(dockyard, ["task", "status", "kid"], env=env)
    assert f"forked from: {parent.id}" in status.output
    assert h.backend.host_path(kid.id, "/workspace/a.txt").read_text() == "from admin\n"
