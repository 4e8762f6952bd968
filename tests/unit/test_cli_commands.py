"""The `dockyard` template, preset and connection commands against a stand-in of the API served
by real uvicorn. The task commands are tested against the real server in
test_cli_real_server.py."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import cli.tasks
from cli.main import cli as dockyard

# --- the stand-in server: the API contract over in-memory tasks ---

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "claude-code",
        "description": "Claude Code in a Debian workspace",
        "version": "ab" * 32,
        "backend": "docker",
        "parameters": [
            {
                "name": "api_key",
                "type": "string",
                "default": None,
                "required": True,
                "description": "Model API key",
                "options": [],
                "secret": True,
            },
            {
                "name": "model",
                "type": "string",
                "default": "sonnet",
                "required": False,
                "description": "Model to use",
                "options": ["sonnet", "opus"],
                "secret": False,
            },
        ],
        "presets": ["default", "opus"],
        "default_preset": "default",
    },
    {
        "name": "shell",
        "description": "A plain shell",
        "version": "1",
        "backend": "docker",
        "parameters": [],
        "presets": [],
        "default_preset": None,
    },
]
PRESETS: list[dict[str, Any]] = [
    {
        "name": "default",
        "template": "claude-code",
        "description": "",
        "default": True,
        "parameters": {"api_key": "***", "model": "sonnet"},
    },
    {
        "name": "opus",
        "template": "claude-code",
        "description": "",
        "default": False,
        "parameters": {"api_key": "***", "model": "opus"},
    },
]
PHASES = ["image", "create", "start", "setup", "agent"]


def to_idle() -> list[dict[str, Any]]:
    """The updates of a task that starts cleanly, one per GET."""
    steps: list[dict[str, Any]] = [{"status": "initializing", "phase": p} for p in PHASES]
    return [
        *steps,
        {"status": "active", "phase": None, "state": "working", "message": "Reading code"},
        {"status": "active", "state": "idle", "message": "Waiting for input"},
    ]


def to_error() -> list[dict[str, Any]]:
    """The updates of a task whose setup script fails."""
    return [
        {"status": "initializing", "phase": "image"},
        {"status": "initializing", "phase": "setup"},
        {"status": "error", "phase": None, "message": "setup script exited with status 1"},
    ]


class CreateBody(BaseModel):
    """POST /tasks body."""

    template: str
    preset: str | None = None
    prompt: str
    parameters: dict[str, str] = {}
    name: str | None = None


class SendBody(BaseModel):
    """POST /tasks/{task}/send body."""

    input: str


class FakeState:
    """In-memory tasks, their scripted progress and their logs."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, list[dict[str, Any]]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        # log entries that arrive (and the status the task takes) during the next long poll
        self.arriving: dict[str, tuple[list[str], str]] = {}
        self.requests: list[tuple[str, str]] = []

    def add_log(self, task_id: str, kind: str, content: str) -> None:
        """Append a log entry."""
        logs = self.logs.setdefault(task_id, [])
        logs.append({"id": len(logs) + 1, "type": kind, "content": content, "time": now()})


def now() -> str:
    """The current time as the API writes it."""
    return datetime.now(UTC).isoformat()


def not_found(what: str) -> JSONResponse:
    """The API's 404."""
    return JSONResponse({"detail": f"{what} not found"}, status_code=404)


def build_app(state: FakeState) -> FastAPI:
    """The API stand-in over `state`."""
    app = FastAPI()

    def find(ref: str) -> dict[str, Any] | None:
        return state.tasks.get(ref) or next(
            (t for t in state.tasks.values() if t["name"] == ref), None
        )

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        state.requests.append((request.method, request.url.path))
        return await call_next(request)

    @app.get("/api/dockyard/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": "fake", "docker": {"ok": True, "error": None}, "home": "/x"}

    @app.get("/api/dockyard/v1/templates")
    def templates() -> dict[str, Any]:
        return {"templates": TEMPLATES}

    @app.get("/api/dockyard/v1/templates/{name}", response_model=None)
    def template(name: str) -> Any:
        found = next((t for t in TEMPLATES if t["name"] == name), None)
        return found or not_found(f"template {name!r}")

    @app.get("/api/dockyard/v1/presets")
    def presets(template: str | None = None) -> dict[str, Any]:
        return {"presets": [p for p in PRESETS if template in (None, p["template"])]}

    @app.post("/api/dockyard/v1/tasks", status_code=201, response_model=None)
    def create(body: CreateBody) -> Any:
        tmpl = next((t for t in TEMPLATES if t["name"] == body.template), None)
        if tmpl is None:
            return JSONResponse(
                {
                    "detail": f"template {body.template!r} not found",
                    "hint": "see the templates with: dockyard template list",
                },
                status_code=404,
            )
        preset = body.preset or tmpl["default_preset"]
        preset_values: dict[str, Any] = next(
            (p["parameters"] for p in PRESETS if p["name"] == preset), {}
        )
        values: dict[str, Any] = {**preset_values, **body.parameters}
        for param in tmpl["parameters"]:
            if param["required"] and param["name"] not in values:
                return JSONResponse(
                    {"detail": f"Required parameter not provided: {param['name']}"},
                    status_code=400,
                )
        task_id = str(uuid.uuid4())
        name = body.name or re.sub(r"[^a-z0-9]+", "-", body.prompt.lower()).strip("-")[:20]
        task = {
            "id": task_id,
            "name": name,
            "display_name": body.prompt[:40],
            "owner": "me",
            "template": body.template,
            "template_version": tmpl["version"],
            "preset": preset,
            "parameters": values,
            "prompt": body.prompt,
            "status": "pending",
            "state": None,
            "phase": None,
            "message": "",
            "error_class": None,
            "created_at": now(),
            "updated_at": now(),
            "workspace": None,
        }
        state.tasks[task_id] = task
        if "FAIL" in body.prompt:
            state.steps[task_id] = to_error()
        elif "STUCK" not in body.prompt:
            state.steps[task_id] = to_idle()
        state.add_log(task_id, "input", body.prompt)
        return task

    @app.get("/api/dockyard/v1/tasks")
    def tasks(status: str | None = None) -> dict[str, Any]:
        return {"tasks": [t for t in state.tasks.values() if status in (None, t["status"])]}

    @app.get("/api/dockyard/v1/tasks/{ref}", response_model=None)
    def get(ref: str) -> Any:
        task = find(ref)
        if task is None:
            return not_found(f"task {ref!r}")
        steps = state.steps.get(task["id"])
        if steps:
            task.update(steps.pop(0), updated_at=now())
        return task

    @app.get("/api/dockyard/v1/tasks/{ref}/logs", response_model=None)
    def logs(ref: str, after: int = 0, wait: float = 0, limit: int = 100) -> Any:
        task = find(ref)
        if task is None:
            return not_found(f"task {ref!r}")
        if wait and task["id"] in state.arriving:
            contents, status = state.arriving.pop(task["id"])
            for content in contents:
                state.add_log(task["id"], "output", content)
            task["status"] = status
        entries = [e for e in state.logs.get(task["id"], []) if e["id"] > after][:limit]
        last = entries[-1]["id"] if entries else after
        return {"logs": entries, "last_id": last, "status": task["status"], "state": task["state"]}

    @app.post("/api/dockyard/v1/tasks/{ref}/send", response_model=None)
    def send(ref: str, body: SendBody) -> Any:
        task = find(ref)
        if task is None:
            return not_found(f"task {ref!r}")
        state.add_log(task["id"], "input", body.input)
        if body.input.startswith("/with-state"):  # as a server with the long-polls answers
            return {"ok": True, "prompt_id": "p-2", "state": "queued"}
        return {"ok": True, "prompt_id": "p-1"}

    polls: dict[str, int] = {}

    @app.get("/api/dockyard/v1/tasks/{ref}/prompts/{prompt_id}", response_model=None)
    def prompt(ref: str, prompt_id: str) -> Any:
        # queued on the first look, taken on the second: the CLI has to poll
        polls[prompt_id] = polls.get(prompt_id, 0) + 1
        state_ = "taken" if polls[prompt_id] > 1 else "queued"
        return {
            "id": prompt_id,
            "content": "",
            "state": state_,
            "created_at": "",
            "delivered_at": None,
            "taken_at": None,
        }

    @app.post("/api/dockyard/v1/tasks/{ref}/{action}", response_model=None)
    def act(ref: str, action: str) -> Any:
        task = find(ref)
        if task is None:
            return not_found(f"task {ref!r}")
        if action not in ("pause", "resume"):
            return not_found(f"action {action!r}")
        task.update(status="paused" if action == "pause" else "pending", state=None)
        return task

    @app.delete("/api/dockyard/v1/tasks/{ref}", response_model=None)
    def delete(ref: str) -> Any:
        task = find(ref)
        if task is None:
            return not_found(f"task {ref!r}")
        del state.tasks[task["id"]]
        return {"ok": True}

    return app


STATE = FakeState()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The stand-in API served by uvicorn in a thread on a free loopback port."""
    config = uvicorn.Config(
        build_app(STATE), port=0, log_level="warning", ws="none", http="h11", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def run(server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Invoke `dockyard ARGS` against the stand-in, with fresh state and fast polling."""
    STATE.__init__()  # type: ignore[misc]
    monkeypatch.setattr(cli.tasks, "WAIT_POLL_INTERVAL", 0.01)
    monkeypatch.setattr(cli.tasks, "WATCH_POLL_INTERVAL", 0.01)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        env = {"DOCKYARD_URL": server_url, "DOCKYARD_HOME": str(tmp_path)}
        return runner.invoke(dockyard, list(args), input=input, env=env)

    yield invoke


# --- task commands: ported to test_cli_real_server.py, which runs them against the real
# server on the fake backend (this stand-in had drifted from what the server says) ---


# --- templates and presets ---


def test_template_list(run: Any) -> None:
    result = run("template", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "PRESETS", "VERSION"]
    assert lines[1].split()[0] == "claude-code"
    assert lines[1].split()[-2:] == ["default,opus", "ab" * 6]
    assert lines[2].split() == ["shell", "A", "plain", "shell", "-", "1"]
    names = [t["name"] for t in json.loads(run("template", "list", "-o", "json").stdout)]
    assert names == ["claude-code", "shell"]


def test_template_show(run: Any) -> None:
    result = run("template", "show", "claude-code")
    assert result.exit_code == 0, result.output
    assert "Presets:      default (default), opus" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["NAME", "TYPE", "DEFAULT", "REQUIRED", "DESCRIPTION", "OPTIONS"] in rows
    assert ["api_key", "string", "-", "yes", "Model", "API", "key", "-"] in rows
    assert ["model", "string", "sonnet", "no", "Model", "to", "use", "sonnet,opus"] in rows
    shown = json.loads(run("template", "show", "shell", "-o", "json").stdout)
    assert shown["name"] == "shell"
    missing = run("template", "show", "nope")
    assert (missing.exit_code, missing.stderr) == (1, "error: template 'nope' not found\n")


def test_preset_list(run: Any) -> None:
    result = run("preset", "list", "--template", "claude-code")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [
        ["TEMPLATE", "PRESET", "DEFAULT", "PARAMETERS"],
        ["claude-code", "default", "yes", "api_key=***,model=sonnet"],
        ["claude-code", "opus", "-", "api_key=***,model=opus"],
    ]
    assert json.loads(run("preset", "list", "-o", "json").stdout) == PRESETS


# --- server selection ---


def test_unreachable_url_says_how_to_start_a_server() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    result = CliRunner().invoke(dockyard, ["task", "list"], env={"DOCKYARD_URL": url})
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: cannot reach the Dockyard server at {url}: ")
    assert line.endswith(". Is it running? Start one with: dockyard server")


def test_url_option_overrides_the_environment(run: Any, server_url: str) -> None:
    env = {"DOCKYARD_URL": "http://127.0.0.1:1"}
    result = CliRunner().invoke(dockyard, ["--url", server_url, "template", "list"], env=env)
    assert result.exit_code == 0, result.output


def test_help_and_version_need_no_server(tmp_path: Path) -> None:
    env = {"DOCKYARD_URL": None, "DOCKYARD_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    assert runner.invoke(dockyard, ["--version"], env=env).stdout.startswith("dockyard, version")
    assert runner.invoke(dockyard, ["task", "create", "--help"], env=env).exit_code == 0
    assert not (tmp_path / "home").exists()
