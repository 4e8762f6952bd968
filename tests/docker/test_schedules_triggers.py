"""A schedule and a trigger on a real daemon, end to end: a seconds-resolution schedule
fires on the server's own clock, a signed GitHub comment makes a task, and both tasks
reach idle in real workspaces with their prompts taken."""

from __future__ import annotations

import json
import secrets
import time

import httpx

from provisioner.triggers import github_signature
from tests.docker.conftest import ServerHandle
from tests.polling import HTTP_TIMEOUT

SECRET = "docker-tier-secret-" + secrets.token_hex(4)


def test_a_schedule_and_a_signed_delivery_make_real_tasks(server: ServerHandle) -> None:
    suffix = secrets.token_hex(2)
    schedule, trigger = f"every-5s-{suffix}", f"gh-{suffix}"
    server.cli(
        "schedule", "create", schedule, "/write cron.txt from the schedule",
        "--cron", "* * * * * */5", "--template", "scripted", "--param", "work_seconds=0.1",
    )  # fmt: skip
    server.cli(
        "trigger", "create", trigger, "--form", "github-comment", "--secret", SECRET,
        "--template", "scripted", "--param", "work_seconds=0.1",
        # the scripted agent takes a command per line: the comment without the mention
        "--prompt-template", "{{ payload.comment.body | replace('@dockyard ', '') }}",
    )  # fmt: skip
    comment = {
        "action": "created",
        "issue": {"title": "Write a file"},
        "comment": {"body": "@dockyard /write hook.txt ok", "html_url": "https://x/c1"},
    }
    body = json.dumps(comment).encode()
    reply = httpx.post(
        f"{server.url}/api/dockyard/v1/triggers/{trigger}",
        content=body,
        headers={
            "content-type": "application/json",
            "x-github-event": "issue_comment",
            "x-github-delivery": f"d-{suffix}",
            "x-hub-signature-256": github_signature(SECRET, body),
        },
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 201, reply.text
    hooked = reply.json()["task"]["name"]
    deadline = time.monotonic() + 30
    fired: list[dict[str, str]] = []
    while not fired and time.monotonic() < deadline:
        shown = json.loads(server.cli("schedule", "show", schedule, "-o", "json").stdout)
        fired = [f for f in shown["fires"] if f["state"] == "started"]
        time.sleep(0.2)
    assert fired, "the schedule never fired"
    server.cli("schedule", "pause", schedule)
    scheduled = fired[-1]["task_id"]
    for task in (scheduled, hooked):
        server.wait_idle(task)
    status = server.status(scheduled)
    assert status["source"] == "cron" and status["schedule_id"] == shown["id"]
    assert server.status(hooked)["source"] == "webhook"
    assert server.exec(status["id"], "cat", "/workspace/cron.txt")[0] == 0
    hooked_id = server.status(hooked)["id"]
    assert server.exec(hooked_id, "test", "-e", "/workspace/hook.txt")[0] == 0
    server.cli("schedule", "delete", schedule)
    server.cli("trigger", "delete", trigger)
    shown = json.loads(server.cli("task", "list", "-o", "json").stdout)
    for task in shown:
        if task.get("schedule_id") == status["schedule_id"] or task["id"] == hooked_id:
            server.cli("task", "delete", "-y", task["id"])
