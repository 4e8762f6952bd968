"""The engine's task lifecycle on the fake backend: the real Engine, SQLite store, catalog,
bridge and scripted agent; only the container is fake (provisioner/backends/fake.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from provisioner.engine import follower
from provisioner.errors import BackendUnavailable, TaskConflict, TaskNotFound
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake, wait_until

__all__ = ["bridge_cache", "fake"]


def inputs(h: Harness, task_id: str) -> list[str]:
    return [e["content"] for e in h.store.logs(task_id) if e["type"] == "input"]


def test_create_reconciles_to_active_idle_through_the_phases(fake: Harness) -> None:
    task = fake.create("hello world", owner="alice")
    assert task.status == Status.PENDING and task.owner == "alice"
    done = fake.wait_idle(task.id)
    out = fake.wait_output(task.id, "Done: hello world")
    assert out.count("Working on: hello world") == 1
    assert [p["phase"] for p in done.phases] == ["image", "create", "start", "agent"]
    assert all(p["duration_s"] is not None for p in done.phases)
    statuses = [e["to_value"] for e in fake.store.events(task.id) if e["kind"] == "status"]
    assert statuses == ["pending", "initializing", "active"]
    # the agent's last line, unless it was done before the follower took over: see
    # test_the_message_is_the_agents_last_line_even_when_it_answered_during_start
    assert done.message == "Done: hello world"
    [prompt] = fake.store.prompts(task.id)
    assert prompt["content"] == "hello world" and prompt["state"] == "taken"
    # one workspace, created and started once, its bridge and agent really running
    assert [c for c, t in fake.backend.calls if t == task.id and c in ("create", "start")] == [
        "create",
        "start",
    ]
    assert fake.backend.running_task_ids() == {task.id}
    assert fake.backend.host_path(task.id, "/workspace").is_dir()


def test_the_message_is_the_agents_last_line_even_when_it_answered_during_start(
    fake: Harness,
) -> None:
    fake.backend.started_delay = 0.4  # the agent answers before start() returns
    task = fake.create("hello world")
    fake.wait_idle(task.id)
    assert fake.output(task.id).count("Done: hello world") == 1
    fake.wait_task(task.id, lambda t: t.message == "Done: hello world", "the message")


def test_prompts_sent_while_working_wait_their_turn_and_none_is_lost(fake: Harness) -> None:
    task = fake.create("start")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/sleep 0.4")
    assert fake.task(task.id).state == "working"  # at once, before the bridge confirms
    replies = [fake.engine.send(task.id, f"follow-up {i}") for i in range(3)]
    states = {p["id"]: p["state"] for p in fake.store.prompts(task.id)}
    # queued in the bridge while the agent works: none of them taken yet
    assert all(states[r["prompt_id"]] in ("queued", "delivered") for r in replies)
    fake.wait_task(
        task.id,
        lambda t: (
            t.state == "idle" and all(p["state"] == "taken" for p in fake.store.prompts(t.id))
        ),
        "idle with every prompt taken",
    )
    sent = ["start", "/sleep 0.4"] + [f"follow-up {i}" for i in range(3)]
    assert inputs(fake, task.id) == sent
    out = fake.wait_output(task.id, "Done: follow-up 2")
    for i in range(3):
        assert out.count(f"Working on: follow-up {i}") == 1
    # each went in only once the previous one was done
    assert out.index("Done") < out.index("Working on: follow-up 0")
    assert out.index("Done: follow-up 0") < out.index("Working on: follow-up 1")
    seqs = [e["seq"] for e in fake.store.logs(task.id) if e["seq"] is not None]
    assert seqs == list(range(1, len(seqs) + 1))  # the store's transcript has no gap


def test_a_prompt_sent_to_an_idle_task_is_handed_over_by_its_follower_at_once(
    fake: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the follower's long poll on an idle bridge holds for the bridge's most (30 s): a
    # prompt taken well within that was handed over at once, not after the poll
    monkeypatch.setattr(follower, "POLL_WAIT_S", 30.0)
    task = fake.create("start")
    fake.wait_idle(task.id)
    time.sleep(0.3)  # the follower now sits in its long poll on an idle bridge
    handed_by: list[str] = []
    deliver = fake.engine.deliver_prompts

    def recorded(*args: Any) -> None:
        handed_by.append(threading.current_thread().name)
        deliver(*args)

    monkeypatch.setattr(fake.engine, "deliver_prompts", recorded)
    t0 = time.monotonic()
    reply = fake.engine.send(task.id, "next")
    wait_until(
        lambda: (fake.store.prompt(reply["prompt_id"]) or {}).get("state") == "taken",
        30,
        "the prompt taken",
    )
    # the poll did not hold it up (no speed test), and the API's thread never talked to
    # the bridge
    assert time.monotonic() - t0 < 20
    assert handed_by and all(name.startswith("follow-") for name in handed_by), handed_by


def test_a_prompt_sent_while_initializing_is_delivered_once_active(fake: Harness) -> None:
    fake.backend.start_delay = 0.4
    task = fake.create("first")
    fake.wait_status(task.id, Status.INITIALIZING)
    reply = fake.engine.send(task.id, "second")
    assert reply["state"] == "queued"
    fake.wait_output(task.id, "Done: second")
    out = fake.output(task.id)
    assert out.index("Done: first") < out.index("Working on: second")
    # its delivery state follows the lines that showed it (the next poll's sync)
    wait_until(
        lambda: (fake.store.prompt(reply["prompt_id"]) or {}).get("state") == "taken",
        30,
        "the prompt taken",
    )


def test_pause_and_a_send_that_resumes_keep_the_disk_and_never_rerun_the_prompt(
    fake: Harness,
) -> None:
    task = fake.create("write it")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/write notes.txt kept")
    fake.wait_output(task.id, "Wrote notes.txt")
    fake.wait_idle(task.id)
    paused = fake.engine.pause(task.id)
    assert paused.status == Status.PAUSED and paused.message == "paused"
    seen = fake.backend.observe(task.id)
    assert seen.exists and not seen.running  # stopped, not removed
    assert fake.backend.host_path(task.id, "/workspace/notes.txt").read_text() == "kept\n"
    with pytest.raises(TaskConflict):
        fake.engine.pause(task.id)
    # a prompt sent to a paused task resumes it (engine.resume is the same path, minus
    # the prompt: see the error and capacity tests)
    fake.engine.send(task.id, "again")
    out = fake.wait_output(task.id, "Done: again")
    assert "Resumed (previous context: 2 inputs)" in out
    assert out.count("Working on: write it") == 1  # the first prompt is not run again
    assert out.index("Resumed (previous context: 2 inputs)") < out.index("Working on: again")
    events = fake.store.events(task.id)
    assert any(e["reason"] == "resumed to take a prompt" for e in events)
    assert fake.backend.starts(task.id) == 2
    creates = [c for c, t in fake.backend.calls if t == task.id and c == "create"]
    assert creates == ["create"]  # resumed on the same disk
    # a resume starts the workspace again: it neither builds nor creates
    assert [p["phase"] for p in fake.task(task.id).phases] == ["start", "agent"]


def test_a_dying_workspace_is_an_error_with_its_cause_and_last_lines(fake: Harness) -> None:
    task = fake.create("before the crash")
    fake.wait_idle(task.id)
    fake.backend.die(task.id, exit_code=3)
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.message.startswith("workspace stopped: the container exited with code 3")
    assert "last output:" in failed.message and "Done: before the crash" in failed.message
    assert failed.error_class == "UNKNOWN"
    with pytest.raises(TaskConflict, match="resume it first"):
        fake.engine.send(task.id, "lost?")
    # an errored task resumes its session
    fake.engine.resume(task.id)
    fake.wait_idle(task.id)
    out = fake.wait_output(task.id, "Resumed (previous context: 1 inputs)")
    assert out.count("Working on: before the crash") == 1


def test_an_agent_that_exits_is_an_error_and_its_workspace_stops(fake: Harness) -> None:
    task = fake.create("hi")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/exit 3")
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.message.startswith("agent exited with code 3")
    assert "Exiting with code 3" in failed.message
    assert failed.error_class == "PERMANENT"
    wait_until(lambda: not fake.backend.observe(task.id).running, 30, "the workspace to stop")
    assert fake.backend.observe(task.id).exists  # kept for inspection


def test_an_image_build_failure_fails_in_phase_image(fake: Harness) -> None:
    fake.backend.image_error = "no space left on device"
    task = fake.create("never runs")
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.phase == "image" and failed.error_class == "PERMANENT"
    assert "no space left on device" in failed.message
    assert not fake.backend.observe(task.id).exists  # nothing was created
    # the build's output is in the task's logs
    assert any("no space left" in e["content"] for e in fake.store.logs(task.id))


def test_a_daemon_down_at_create_is_a_transient_error_in_phase_create(fake: Harness) -> None:
    fake.backend.create_error = BackendUnavailable("Cannot connect to the Docker daemon")
    task = fake.create("never runs")
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.phase == "create" and failed.error_class == "TRANSIENT"
    assert "Cannot connect to the Docker daemon" in failed.message
    # once it is back, a resume provisions it from where it stood
    fake.backend.create_error = None
    fake.engine.resume(task.id)
    fake.wait_output(task.id, "Done: never runs")


def test_a_slow_start_times_out_naming_the_phase(fake: Harness) -> None:
    name = fake.add_scripted_variant("slow-start", lifecycle={"timeouts": {"start": 0.3}})
    fake.backend.start_delay = 1.0
    task = fake.create("too slow", template=name)
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.phase == "start" and failed.error_class == "TIMEOUT"
    assert "phase start timed out after 0.3s" in failed.message


def test_setup_runs_before_the_agent_in_its_own_phase(fake: Harness) -> None:
    name = fake.add_scripted_variant(
        "with-setup",
        setup="echo preparing {{ work_seconds }}\necho ready > /workspace/setup-marker.txt\n"
        "sleep 0.3\necho setup done\n",
    )
    task = fake.create("build it", template=name)
    done = fake.wait_idle(task.id)
    assert [p["phase"] for p in done.phases] == ["image", "create", "start", "setup", "agent"]
    out = fake.wait_output(task.id, "Done: build it")
    assert out.index("preparing 0.05") < out.index("setup done")
    assert out.index("setup done") < out.index("Scripted agent ready.")
    marker = fake.backend.host_path(task.id, "/workspace/setup-marker.txt")
    assert marker.read_text() == "ready\n"


def test_a_failing_setup_is_an_error_in_phase_setup(fake: Harness) -> None:
    name = fake.add_scripted_variant("bad-setup", setup="echo about to fail\nexit 7\n")
    task = fake.create("never runs", template=name)
    failed = fake.wait_status(task.id, Status.ERROR)
    assert failed.phase == "setup" and failed.error_class == "PERMANENT"
    assert "exit code 7" in failed.message and "about to fail" in failed.message
    assert "Scripted agent ready." not in fake.output(task.id)
    assert fake.backend.observe(task.id).running  # left for inspection (no capacity limit)


def test_delete_removes_the_workspace_and_the_records(fake: Harness) -> None:
    task = fake.create("bye")
    fake.wait_idle(task.id)
    disk = fake.backend.host_path(task.id, "/workspace")
    deleted = fake.engine.delete(task.id)
    assert deleted.id == task.id
    with pytest.raises(TaskNotFound):
        fake.store.get(task.id)
    assert fake.backend.task_ids() == set() and not disk.exists()
    assert not fake.backend.observe(task.id).exists
    with pytest.raises(TaskNotFound):
        fake.engine.delete(task.id)
