"""Dockyard 2: phases, setup, resume, prompts, auto-pause, failures, hardening (real daemon)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.docker.conftest import ServerHandle
from tests.docker.templates import add_scripted_variant, cleanup_templates


@pytest.fixture
def variants(server: ServerHandle) -> Iterator[None]:
    yield
    for task in json.loads(server.cli("task", "list", "-o", "json").stdout):
        if task["template"] != "scripted":
            server.cli("task", "delete", "-y", task["id"], check=False)
    cleanup_templates(server)


def create(server: ServerHandle, template: str, prompt: str, *extra: str) -> str:
    result = server.cli("task", "create", "-t", template, "-q", *extra, prompt)
    return result.stdout.strip()


def test_setup_runs_before_the_agent_and_phases_are_timed(
    server: ServerHandle, variants: None
) -> None:
    name = add_scripted_variant(
        server,
        "with-setup",
        setup="echo preparing {{ work_seconds }}\necho ready > /workspace/setup-marker.txt\n"
        "sleep 1\necho setup done\n",
    )
    result = server.cli("task", "create", "-t", name, "--wait", "build it")
    assert "initializing: setup" in result.stdout
    assert "ready in" in result.stdout
    match = re.search(r"\(([0-9a-f-]{36})\)", result.stdout)
    assert match, result.stdout
    task = match.group(1)
    status = server.wait_idle(task)
    phases = [p["phase"] for p in status["phases"]]
    assert phases == ["image", "create", "start", "setup", "agent"]
    assert all(p["duration_s"] is not None and p["duration_s"] >= 0 for p in status["phases"])
    setup = next(p for p in status["phases"] if p["phase"] == "setup")
    assert setup["duration_s"] >= 1.0
    out = server.output(task)
    assert out.index("preparing 1") < out.index("setup done") < out.index("Scripted agent ready.")
    assert out.index("Scripted agent ready.") < out.index("Done: build it")
    code, marker = server.exec(task, "cat", "/workspace/setup-marker.txt")
    assert code == 0 and marker == "ready\n"


def test_failing_setup_is_an_error_in_phase_setup(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(server, "bad-setup", setup="echo about to fail\nexit 7\n")
    result = server.cli("task", "create", "-t", name, "--wait", "-q", "never runs", check=False)
    assert result.exit_code == 1
    task = result.stdout.strip()
    status = server.status(task)
    assert status["status"] == "error" and status["phase"] == "setup"
    assert "exit code 7" in status["message"] and "about to fail" in status["message"]
    assert status["error_class"] == "PERMANENT"
    assert "Scripted agent ready." not in server.output(task)
    assert server.container(task).status == "running"  # left for inspection


def test_phase_timeout_names_the_phase(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(
        server,
        "slow-setup",
        setup="echo warming up\nsleep 60\n",
        lifecycle={"timeouts": {"setup": 2}},
    )
    result = server.cli("task", "create", "-t", name, "--wait", "-q", "too slow", check=False)
    assert result.exit_code == 1
    status = server.status(result.stdout.strip())
    assert status["status"] == "error" and status["phase"] == "setup"
    assert status["error_class"] == "TIMEOUT"
    assert "phase setup timed out after 2s" in status["message"]


def test_send_to_initializing_task_waits_until_active(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(server, "slowish-setup", setup="sleep 2\n")
    task = create(server, name, "first")
    server.wait_for(task, lambda s: s["status"] == "initializing", 30, "initializing")
    result = server.cli("task", "send", task, "second")  # returns once the agent took it
    assert "prompt taken by the agent" in result.stdout
    server.wait_output(task, "Done: second")
    out = server.output(task)
    assert out.index("Done: first") < out.index("Working on: second")


def test_auto_pause_after_idle_but_never_while_working(
    server: ServerHandle, variants: None
) -> None:
    name = add_scripted_variant(server, "dozy", lifecycle={"idle_timeout": 3})
    task = create(server, name, "/sleep 5", "--wait")
    # It worked for 5 s, longer than the idle timeout: working time does not count.
    status = server.status(task)
    assert status["status"] == "active"
    server.wait_idle(task)
    status = server.wait_for(task, lambda s: s["status"] == "paused", 20, "auto-pause")
    assert "auto-paused after 3s idle" in status["message"]
    events = json.loads(server.cli("task", "events", task, "-o", "json").stdout)
    assert any(e["actor"] == "policy" and e["to_value"] == "paused" for e in events)
    # A prompt wakes it up again.
    server.cli("task", "send", task, "wake up")
    server.wait_output(task, "Done: wake up")


def test_oom_kill_is_an_error_with_its_cause(server: ServerHandle) -> None:
    task = create(server, "scripted", "hello", "--param", "memory=96m", "--wait")
    try:
        server.cli("task", "send", task, "/alloc 400", "--no-wait")
        status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error")
        assert "OOM" in status["message"], status["message"]
    finally:
        server.cli("task", "delete", "-y", task)


def test_secret_parameters_reach_the_workspace_only(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(
        server,
        "secretive",
        parameters=[
            {"name": "work_seconds", "type": "number", "default": 1},
            {"name": "memory", "type": "string", "default": "512m"},
            {"name": "api_key", "type": "string", "secret": True, "required": True},
        ],
        workspace={"env": {"API_KEY": "{{ api_key }}"}},
    )
    secret = "sk-test-" + str(time.time_ns())
    task = create(server, name, "use the key", "--param", f"api_key={secret}", "--wait")
    status = server.status(task)
    assert status["parameters"]["api_key"] == "********"
    agent_env = server.exec(task, "sh", "-c", "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert secret in agent_env[1]
    everything = server.cli("task", "list", "-o", "json").stdout + json.dumps(server.logs(task))
    assert secret not in everything
    database = b"".join(p.read_bytes() for p in server.home.glob("dockyard.db*"))
    assert secret.encode() not in database  # never stored in clear
    # The bridge token is never shown either.
    token = server.engine.store.get(task).bridge_token
    assert token not in everything + server.cli("task", "status", task, "-o", "json").stdout
    assert token not in "".join(
        server.docker.containers.get(server.container(task).id).logs().decode()
    )


def test_errored_task_resumes_its_session(server: ServerHandle) -> None:
    task = create(server, "scripted", "before the crash", "--wait")
    try:
        server.cli("task", "send", task, "/exit 3", "--no-wait")
        server.wait_for(task, lambda s: s["status"] == "error", 30, "error")
        server.cli("task", "resume", task)
        server.wait_idle(task)
        out = server.output(task)
        assert out.count("Working on: before the crash") == 1
        assert any(line.startswith("Resumed") for line in out)
        server.cli("task", "send", task, "after the crash")
        server.wait_output(task, "Done: after the crash")
    finally:
        server.cli("task", "delete", "-y", task)


def test_template_may_add_back_named_capabilities(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(
        server, "binds-low-ports", security={"cap_add": ["NET_BIND_SERVICE"]}
    )
    task = create(server, name, "hi", "--wait")
    host = server.container(task).attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["NET_BIND_SERVICE"]
    mounts = [m.get("Source", "") for m in server.container(task).attrs["Mounts"]]
    assert not any("docker.sock" in m for m in mounts)


def test_pids_limit_is_an_error_with_its_cause(server: ServerHandle, variants: None) -> None:
    name = add_scripted_variant(server, "few-pids", workspace={"resources": {"pids": 24}})
    task = create(server, name, "hello", "--wait")
    server.cli("task", "send", task, "/fork 60", "--no-wait")
    status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error")
    assert "process limit" in status["message"], status["message"]
    assert "cannot start process" in status["message"]
