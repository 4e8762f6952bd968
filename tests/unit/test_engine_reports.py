"""End to end on the fake backend (the real bridge and scripted agent): what the agent
reports with dockyard-task reaches its task through the follower."""

from __future__ import annotations

import httpx

from provisioner.backends.base import BRIDGE_DIR
from provisioner.engine.workspace import BRIDGE_STATE_DIR
from provisioner.lifecycle import Status
from tests.fake_engine import Harness, bridge_cache, fake, wait_until
from tests.polling import HTTP_TIMEOUT

__all__ = ["bridge_cache", "fake"]  # fixtures


def post_report(h: Harness, task_id: str, body: dict[str, object]) -> dict[str, object]:
    """A report as dockyard-task posts it, with the workspace's report key."""
    key = h.backend.host_path(task_id, f"{BRIDGE_STATE_DIR}/report-key").read_text().strip()
    endpoint = h.backend.observe(task_id).endpoint
    answer = httpx.post(
        f"{endpoint}/dockyard/report",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def test_progress_ask_answer_usage_complete(fake: Harness) -> None:
    task = fake.create("/progress Fixed the auth check, running tests")
    fake.wait_task(
        task.id, lambda t: t.progress == "Fixed the auth check, running tests", "the progress"
    )
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/ask Which database should I use?")
    asked = fake.wait_task(task.id, lambda t: t.state == "input_required", "input_required")
    assert asked.question == "Which database should I use?"
    fake.wait_output(task.id, "Waiting for an answer")
    # the agent is at its prompt, but the task waits for the user: not idle
    assert fake.task(task.id).state == "input_required"
    fake.engine.send(task.id, "Use SQLite")
    fake.wait_output(task.id, "Done: Use SQLite")
    answered = fake.wait_idle(task.id)
    assert answered.question is None
    fake.engine.send(task.id, "/usage 1200 340")
    fake.wait_task(task.id, lambda t: (t.tokens_in, t.tokens_out) == (1200, 340), "the usage")
    fake.wait_idle(task.id)
    fake.engine.send(task.id, "/complete SUCCESS all green")
    done = fake.wait_status(task.id, Status.COMPLETED)
    assert done.outcome == "SUCCESS" and done.output == "all green"
    wait_until(lambda: task.id not in fake.backend.running_task_ids(), 15, "the workspace to stop")
    # the logs stay readable (what the agent prints after the report may be cut off by
    # the stop: the report is applied the moment the bridge has it)
    inputs = [e["content"] for e in fake.store.logs(task.id) if e["type"] == "input"]
    assert inputs[-1] == "/complete SUCCESS all green"
    events = fake.store.events(task.id)
    assert [e["kind"] for e in events].count("progress") == 1  # each report applied once
    assert [e["to_value"] for e in events].count("input_required") == 1


def test_reports_made_while_the_server_is_away_are_applied_once(fake: Harness) -> None:
    task = fake.create("hello")
    fake.wait_idle(task.id)
    assert fake.backend.host_path(task.id, BRIDGE_DIR).is_dir()
    fake.engine.stop()  # the server goes; the workspace keeps running
    post_report(fake, task.id, {"kind": "progress", "note": "while you were away"})
    post_report(fake, task.id, {"kind": "usage", "tokens_in": 7, "tokens_out": 3})
    fake.engine = fake.new_engine()
    fake.engine.start()
    fake.wait_task(task.id, lambda t: t.tokens_in == 7, "the reports of the time away")
    assert fake.task(task.id).progress == "while you were away"
    # the follower stores its cursor just after it applied a report: wait for it
    wait_until(lambda: fake.store.report_seq(task.id) == 2, what="the report cursor at 2")
    # another restart applies nothing twice
    fake.engine.stop()
    fake.engine = fake.new_engine()
    fake.engine.start()
    post_report(fake, task.id, {"kind": "usage", "tokens_in": 1, "tokens_out": 1})
    fake.wait_task(task.id, lambda t: t.tokens_in == 8, "the next report")
    assert (fake.task(task.id).tokens_in, fake.task(task.id).tokens_out) == (8, 4)
    assert [e["kind"] for e in fake.store.events(task.id)].count("progress") == 1
