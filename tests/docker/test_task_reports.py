"""dockyard-task in a real workspace: the scripted agent asks, the user answers with
`task send`, the agent completes; the task ends completed with its workspace stopped."""

from __future__ import annotations

from tests.docker.conftest import ServerHandle
from tests.docker.test_bridge_delivery import agent_environ

COMMAND = "/home/agent/.dockyard/bridge/bin/dockyard-task"


def test_ask_answer_complete(server: ServerHandle) -> None:
    created = server.cli(
        "task", "create", "--template", "scripted", "--preset", "default", "-q", "--wait",
        "/ask Which database should I use?",
    )  # fmt: skip
    task = created.stdout.strip()
    try:
        status = server.wait_for(
            task, lambda s: s["state"] == "input_required", 60, "input_required"
        )
        assert status["question"] == "Which database should I use?"
        server.wait_output(task, "Waiting for an answer")
        # the agent has the command first on its PATH and its own key, 0600, not the token
        env = agent_environ(server, task)
        assert env["PATH"].split(":")[0] == "/home/agent/.dockyard/bridge/bin"
        key_file = env["DOCKYARD_REPORT_KEY_FILE"]
        assert key_file == "/home/agent/.dockyard/bridge/report-key"
        code, out = server.exec(task, "stat", "-c", "%a %u", key_file)
        assert (code, out.strip()) == (0, "600 1000")
        code, key = server.exec(task, "cat", key_file)
        assert code == 0 and key.strip() != server.engine.store.get(task).bridge_token
        # a human in a shell of the workspace (docker exec: not the agent's environment)
        code, said = server.exec(task, COMMAND, "progress", "looked at the schema")
        assert code == 0, said
        server.wait_for(
            task, lambda s: s.get("progress") == "looked at the schema", 30, "the progress"
        )
        # the report key is the workspace's own, not the bridge token, and no neighbour's
        code, said = server.exec(task, COMMAND, "usage", "--tokens-in", "-1", "--tokens-out", "1")
        assert code == 2 and "tokens_in" in said
        server.cli("task", "send", task, "Use SQLite")
        server.wait_output(task, "Done: Use SQLite")
        answered = server.wait_idle(task)
        assert not answered.get("question")
        server.cli("task", "send", "--no-wait", task, "/complete SUCCESS schema migrated")
        done = server.wait_for(task, lambda s: s["status"] == "completed", 60, "completed")
        assert done["outcome"] == "SUCCESS"
        assert done["output"] == "schema migrated"
        container = server.container(task)
        container.reload()
        assert container.status != "running"
        inputs = [e["content"] for e in server.logs(task) if e["type"] == "input"]
        assert inputs[-1] == "/complete SUCCESS schema migrated"  # logs stay readable
    finally:
        server.cli("task", "delete", "-y", task, check=False)
