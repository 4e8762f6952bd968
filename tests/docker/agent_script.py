"""The conversation every real-agent test plays: write a file, then edit it, then recap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.fake_model_server import FakeModelServer, RecordedRequest, last_user_text

if TYPE_CHECKING:
    from tests.docker.conftest import ServerHandle

WRITE_PROMPT = "Create hello.py that prints hello (dockyard-write)"
# long and multi-line: it must arrive whole (typed as a bracketed paste, then Enter)
EDIT_PROMPT = "Make hello.py greet dockyard instead (dockyard-edit).\n" + "\n".join(
    f"Requirement {i}: keep the file tidy." for i in range(1, 61)
)
RECAP_PROMPT = "What have you done so far? (dockyard-recap)"
HELLO = "print('hello')\n"
EDITED = "print('hello, dockyard')\n"


def wait_file(server: ServerHandle, task: str, content: str, timeout: float) -> None:
    """Wait until the agent's hello.py in the workspace holds `content`."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        code, out = server.exec(task, "cat", "/workspace/hello.py")
        if code == 0 and out == content:
            return
        time.sleep(0.5)
    raise AssertionError(f"hello.py never became {content!r}; last: {out!r}")


def wait_model_call(
    calls: Callable[[], list[RecordedRequest]], prompt: str, timeout: float
) -> RecordedRequest:
    """Wait for the model call (one of `calls()`) whose last user message has `prompt`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in calls():
            if prompt in last_user_text(request.body):
                return request
        time.sleep(0.2)
    raise AssertionError(f"the model never got {prompt!r}")


def diagnose(server: ServerHandle, task: str, model: FakeModelServer) -> str:
    """What a failed assertion should show: the agent's last output, the model's calls."""
    out = "\n".join(server.output(task)[-40:])
    calls = [(r.method, r.path, r.api) for r in model.requests]
    return f"last output:\n{out}\nrequests: {calls}\nresponder errors: {model.errors}"
