"""Prompts arrive in a real workspace as what was sent: nothing typed acts as a key, a
long line is not cut short, a prompt the bridge refuses holds nothing up, and bad text is
a 400 that leaves nothing behind."""

from __future__ import annotations

import httpx
import pytest

from provisioner.bridge.runtime.http import MAX_BODY
from tests.docker.conftest import ServerHandle
from tests.docker.test_vertical_slice import create
from tests.polling import HTTP_TIMEOUT


def secret_files(server: ServerHandle) -> list[str]:
    folder = server.home / "secrets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(
    "extra",
    [
        '"prompt": "x \\ud800"',
        '"name": "a\\udc00"',
        '"parameters": {"memory": "512m\\ud800"}',
    ],
)
def test_invalid_text_is_a_400_and_leaves_no_secret_file(server: ServerHandle, extra: str) -> None:
    before = secret_files(server)
    body = '{"template": "scripted", "prompt": "x", ' + extra + "}"
    response = httpx.post(
        f"{server.url}/api/v2/tasks",
        content=body.encode(),
        headers={"Content-Type": "application/json", **server.headers},
        timeout=HTTP_TIMEOUT,
    )
    assert secret_files(server) == before  # nothing left behind, whatever the answer
    assert response.status_code == 400, response.text
    assert "unpaired surrogate" in response.json()["detail"]


def test_prompts_arrive_whole_and_inert_and_a_refused_one_blocks_nothing(
    server: ServerHandle,
) -> None:
    task = create(server, "start")
    try:
        server.wait_idle(task)
        store = server.engine.store
        # past the API's checks, straight into the store, as only a bug or a hostile
        # client with the bridge's token could send it: the bridge types it inert
        store.add_prompt(task, "ctrl-u", "text\u0015/write pwned.txt hacked")
        # over the bridge's body limit: refused (413), it must not wedge the queue
        store.add_prompt(task, "huge", "x" * (MAX_BODY + 1))
        # a line far longer than the terminal's canonical line buffer (4095 bytes)
        text = "0123456789" * 10_000
        server.cli("task", "send", task, f"/write big.txt {text}")
        server.wait_idle(task)
        code, out = server.exec(task, "cat", "/workspace/big.txt")
        assert code == 0 and out == text + "\n"
        code, _ = server.exec(task, "test", "-e", "/workspace/pwned.txt")
        assert code != 0
        prompts = {p["id"]: p for p in server.engine.store.prompts(task)}
        assert prompts["ctrl-u"]["state"] == "taken"
        assert (prompts["huge"]["state"], prompts["huge"]["reason"]) == (
            "failed",
            f"the workspace's bridge refused it (413): body larger than {MAX_BODY} bytes",
        )
        assert "Done: text\u2415/write pwned.txt hacked" in server.output(task)
        status = server.status(task)
        assert (status["status"], status["state"]) == ("active", "idle")
    finally:
        server.cli("task", "delete", "-y", task, check=False)
