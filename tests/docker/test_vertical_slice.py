"""The first vertical slice against the real daemon, driven through the CLI."""

from __future__ import annotations

import json
import time

import pytest

from tests.docker.conftest import ServerHandle


def create(server: ServerHandle, prompt: str, *extra: str) -> str:
    result = server.cli(
        "task",
        "create",
        "--template",
        "scripted",
        "--preset",
        "default",
        "-q",
        "--wait",
        *extra,
        prompt,
    )
    task_id = result.stdout.strip()
    assert len(task_id) == 36, result.stdout
    return task_id


@pytest.fixture
def task(server: ServerHandle) -> str:
    task_id = create(server, "hello world")
    yield task_id
    server.cli("task", "delete", "-y", task_id, check=False)


def test_task_runs_prompt_and_answers_follow_up(server: ServerHandle, task: str) -> None:
    status = server.wait_idle(task)
    assert status["template"] == "scripted" and status["preset"] == "default"
    for key in ("id", "name", "status", "state", "phase", "message", "created_at", "updated_at"):
        assert key in status
    assert "Done: hello world" in server.output(task)

    server.cli("task", "send", task, "tell me more")
    server.wait_output(task, "Done: tell me more")
    server.wait_idle(task)

    logs = server.logs(task)
    inputs = [e["content"] for e in logs if e["type"] == "input"]
    assert inputs == ["hello world", "tell me more"]
    assert {"id", "type", "content", "time"} <= set(logs[0])

    events = server.cli("task", "list", "-o", "json").stdout
    assert task in {t["id"] for t in json.loads(events)}


def test_write_creates_file_in_workspace(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "send", task, "/write notes/todo.txt ship it")
    server.wait_output(task, "Wrote notes/todo.txt")
    code, out = server.exec(task, "cat", "/workspace/notes/todo.txt")
    assert code == 0 and out == "ship it\n"


def test_prompt_sent_while_working_is_delivered_after(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "send", task, "/sleep 2")
    # The bridge reports working the moment a prompt arrives, never idle before it's taken.
    assert server.status(task)["state"] == "working"
    server.cli("task", "send", task, "first queued")
    server.cli("task", "send", task, "second queued")
    server.wait_output(task, "Done: second queued", timeout=30)
    out = server.output(task)
    assert out.index("Done") < out.index("Working on: first queued")
    assert out.index("Done: first queued") < out.index("Working on: second queued")
    inputs = [e["content"] for e in server.logs(task) if e["type"] == "input"]
    assert inputs[-3:] == ["/sleep 2", "first queued", "second queued"]


def test_pause_and_resume_keep_the_workspace(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "send", task, "/write kept.txt still here")
    server.wait_output(task, "Wrote kept.txt")
    server.wait_idle(task)

    server.cli("task", "pause", task)
    status = server.status(task)
    assert status["status"] == "paused"
    assert server.container(task).status == "exited"
    assert "Done: hello world" in server.output(task)  # logs stay readable while paused

    server.cli("task", "resume", task)
    server.wait_idle(task)
    code, out = server.exec(task, "cat", "/workspace/kept.txt")
    assert code == 0 and out == "still here\n"
    # The agent continues its session: no second run of the initial prompt.
    out = server.output(task)
    assert out.count("Working on: hello world") == 1
    assert any(line.startswith("Resumed") for line in out)
    server.cli("task", "send", task, "after resume")
    server.wait_output(task, "Done: after resume")


def test_send_to_paused_task_resumes_it(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "pause", task)
    assert server.status(task)["status"] == "paused"
    result = server.cli("task", "send", task, "are you there?")
    assert "Sent to" in result.stdout
    server.wait_output(task, "Done: are you there?", timeout=60)
    server.wait_idle(task)
    logs = server.logs(task)
    inputs = [e for e in logs if e["type"] == "input"]
    assert [e["content"] for e in inputs] == ["hello world", "are you there?"]
    assert all(e["delivery"] == "taken" for e in inputs)
    assert server.output(task).count("Working on: hello world") == 1


def test_agent_exit_code_becomes_error(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.cli("task", "send", task, "/exit 3")
    status = server.wait_for(task, lambda s: s["status"] == "error", 30, "error")
    assert "code 3" in status["message"]
    assert "Exiting with code 3" in status["message"]  # the last lines say what happened
    assert "Exiting with code 3" in server.output(task)


def test_killed_container_becomes_error(server: ServerHandle, task: str) -> None:
    server.wait_idle(task)
    server.container(task).kill()
    status = server.wait_for(task, lambda s: s["status"] == "error", 30, "error")
    assert "killed by signal 9" in status["message"], status["message"]


def test_delete_removes_container_and_volumes(server: ServerHandle) -> None:
    task_id = create(server, "short lived")
    assert server.containers(task_id) and len(server.volumes(task_id)) == 2
    server.cli("task", "delete", "-y", task_id)
    assert server.containers(task_id) == []
    assert server.volumes(task_id) == []
    result = server.cli("task", "status", task_id, check=False)
    assert result.exit_code == 1 and "No task" in result.stderr


def test_workspace_is_hardened(server: ServerHandle, task: str) -> None:
    attrs = server.container(task).attrs
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in attrs["HostConfig"]["SecurityOpt"]
    assert attrs["HostConfig"]["Init"] is True
    assert attrs["HostConfig"]["Memory"] == 512 * 1024 * 1024
    labels = attrs["Config"]["Labels"]
    assert labels["dockyard.task"] == task and labels["dockyard.instance"] == server.instance


def test_names_and_errors(server: ServerHandle) -> None:
    result = server.cli("task", "create", "--template", "nope", "x", check=False)
    assert result.exit_code == 1 and "Unknown template 'nope'" in result.stderr
    result = server.cli(
        "task",
        "create",
        "--template",
        "scripted",
        "--param",
        "work_seconds=lots",
        "x",
        check=False,
    )
    assert result.exit_code == 1 and "work_seconds" in result.stderr
    result = server.cli("task", "status", "no-such-task", check=False)
    assert result.exit_code == 1 and "No task 'no-such-task'" in result.stderr


def test_named_task_is_addressed_by_name(server: ServerHandle) -> None:
    name = f"named-{int(time.time())}"
    server.cli("task", "create", "-t", "scripted", "--name", name, "-q", "hi there")
    try:
        server.wait_idle(name)
        assert server.status(name)["name"] == name
        dup = server.cli("task", "create", "-t", "scripted", "--name", name, "x", check=False)
        assert dup.exit_code == 1 and "already exists" in dup.stderr
    finally:
        server.cli("task", "delete", "-y", name)
