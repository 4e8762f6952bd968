"""Pure tests of the CLI's rendering, parameter parsing and API error translation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cli.client import error_from_response, is_loopback
from cli.render import (
    cell,
    log_entry,
    log_text,
    presets_table,
    relative_time,
    render_table,
    short_version,
    status_line,
    task_row,
    tasks_table,
    template_text,
    templates_table,
    truncate,
)
from cli.tasks import parse_params

NOW = datetime(2025, 1, 2, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    """An ISO timestamp `seconds` before NOW."""
    return (NOW - timedelta(seconds=seconds)).isoformat()


def make_task(**fields: object) -> dict[str, object]:
    """A task with every field of the API, overridable."""
    task: dict[str, object] = {
        "id": "0b6f4a9e-0000-4000-8000-000000000001",
        "name": "fix-auth",
        "status": "active",
        "state": "idle",
        "phase": None,
        "message": "",
        "template": "claude-code",
        "preset": "default",
        "created_at": ago(60),
        "updated_at": ago(5),
    }
    task.update(fields)
    return task


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s ago"),
        (5, "5s ago"),
        (59, "59s ago"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (3600, "1h ago"),
        (86399, "23h ago"),
        (86400, "1d ago"),
        (-3, "0s ago"),
    ],
)
def test_relative_time(seconds: int, expected: str) -> None:
    assert relative_time(ago(seconds), NOW) == expected


def test_relative_time_accepts_z_and_naive_as_utc_and_keeps_garbage() -> None:
    assert relative_time("2025-01-02T11:59:50Z", NOW) == "10s ago"
    assert relative_time("2025-01-02T11:59:50", NOW) == "10s ago"
    assert relative_time(None, NOW) == "-"
    assert relative_time("yesterday", NOW) == "yesterday"


def test_cell_shows_dash_for_empty_values() -> None:
    empties: tuple[Any, ...] = (None, "", [], {})
    assert [cell(v) for v in empties] == ["-"] * 4
    assert cell(True) == "true"
    assert cell(["a", "b"]) == "a,b"
    assert cell({"model": "x", "n": 2}) == "model=x,n=2"
    assert cell(0) == "0"


def test_truncate_flattens_and_cuts() -> None:
    assert truncate("short") == "short"
    assert truncate("line one\n  line two") == "line one line two"
    cut = truncate("x" * 100, 20)
    assert cut == "x" * 17 + "..."
    assert len(cut) == 20


def test_short_version_only_shortens_hashes() -> None:
    assert short_version("a" * 64) == "a" * 12
    assert short_version("1.2.3") == "1.2.3"
    assert short_version(None) == "-"


def test_render_table_aligns_and_strips_trailing_spaces() -> None:
    text = render_table(("A", "LONGER"), [["1", "x"], ["22222", ""]])
    lines = text.splitlines()
    assert lines[0].split() == ["A", "LONGER"]
    assert lines[1].index("x") == lines[0].index("LONGER")
    assert all(line == line.rstrip() for line in lines)


def test_render_table_never_wraps_and_keeps_markup_literal() -> None:
    text = render_table(("NAME", "MESSAGE"), [["n", "[bold]" + "word " * 100]])
    assert len(text.splitlines()) == 2
    assert "[bold]" in text


def test_task_table_row_two_has_status_and_state_in_fields_two_and_four() -> None:
    task = make_task(message="Waiting for input " * 10)
    lines = tasks_table([task], NOW).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PHASE", "STATE", "UPDATED", "MESSAGE"]
    fields = lines[1].split()
    assert fields[:6] == ["fix-auth", "active", "-", "idle", "5s", "ago"]
    assert lines[1].endswith("...")


def test_task_row_fills_empty_values_with_dash() -> None:
    task = make_task(status="initializing", phase="image", state=None, updated_at=None)
    assert task_row(task, NOW) == ["fix-auth", "initializing", "image", "-", "-", "-"]


def test_status_line() -> None:
    assert status_line(make_task(status="initializing", phase="setup", state=None)) == (
        "initializing: setup"
    )
    assert status_line(make_task(status="active", state="working")) == "active: working"
    assert status_line(make_task(status="paused", state=None)) == "paused"
    assert status_line(make_task(status="pending", state=None)) == "pending"


def test_log_text_marks_inputs_and_system_lines() -> None:
    assert log_text({"type": "output", "content": "hello\n"}) == "hello"
    assert log_text({"type": "input", "content": "do it\nnow"}) == ">>> do it\n>>> now"
    assert log_text({"type": "system", "content": "agent started"}) == "[dockyard] agent started"


def test_log_entry_json_shape() -> None:
    entry = {"id": 3, "type": "output", "content": "x", "time": "t", "extra": 1}
    assert log_entry(entry) == {"id": 3, "type": "output", "content": "x", "time": "t"}
    # where a line came from, when known (a hooks-driven agent: agent or screen)
    said = log_entry({**entry, "source": "agent"})
    assert said == {"id": 3, "type": "output", "content": "x", "time": "t", "source": "agent"}
    assert log_text({**entry, "source": "agent"}) == "x"  # what the agent said: plainly


TEMPLATE = {
    "name": "claude-code",
    "description": "Claude Code in a Debian workspace",
    "version": "f" * 64,
    "backend": "docker",
    "parameters": [
        {
            "name": "model",
            "type": "string",
            "default": "sonnet",
            "required": False,
            "description": "Model to use",
            "options": ["sonnet", {"name": "Opus", "value": "opus"}],
            "secret": False,
        },
        {
            "name": "api_key",
            "type": "string",
            "default": "sk-123",
            "required": True,
            "description": "",
            "options": [],
            "secret": True,
        },
    ],
    "presets": ["default", "fast"],
    "default_preset": "default",
}


def test_templates_table() -> None:
    lines = templates_table([TEMPLATE]).splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "PRESETS", "VERSION"]
    assert lines[1].split()[0] == "claude-code"
    assert lines[1].split()[-2:] == ["default,fast", "f" * 12]


def test_template_text_lists_parameters_and_hides_secret_defaults() -> None:
    text = template_text(TEMPLATE)
    assert "Presets:      default (default), fast" in text
    assert "sk-123" not in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[7:]}
    assert rows["model"] == ["model", "string", "sonnet", "no", "Model", "to", "use", "sonnet,opus"]
    assert rows["api_key"] == ["api_key", "string", "(secret)", "yes", "-", "-"]


def test_template_text_without_parameters() -> None:
    assert template_text({"name": "bare"}).endswith("Parameters:   none")


def test_presets_table() -> None:
    presets = [
        {"name": "default", "template": "t", "default": True, "parameters": {"a": "1", "b": "2"}},
        {"name": "empty", "template": "t", "default": False, "parameters": {}},
    ]
    lines = presets_table(presets).splitlines()
    assert lines[0].split() == ["TEMPLATE", "PRESET", "DEFAULT", "PARAMETERS"]
    assert lines[1].split() == ["t", "default", "yes", "a=1,b=2"]
    assert lines[2].split() == ["t", "empty", "-", "-"]


def test_parse_params() -> None:
    assert parse_params([]) == {}
    assert parse_params(["a=1", "b=x=y", "c=", "a=2"]) == {"a": "2", "b": "x=y", "c": ""}
    for bad in ("novalue", "=1", " =1"):
        with pytest.raises(ValueError, match="expected K=V"):
            parse_params([bad])


def response(status: int, body: object) -> httpx.Response:
    """A response carrying `body` as JSON (or as text when it is a str)."""
    if isinstance(body, str):
        return httpx.Response(status, text=body)
    return httpx.Response(status, content=json.dumps(body).encode())


def test_error_from_response_detail_and_hint() -> None:
    err = error_from_response(response(404, {"detail": "task 'x' not found", "hint": "list"}))
    assert (err.message, err.hint, err.status_code) == ("task 'x' not found", "list", 404)


def test_error_from_response_turns_validation_list_into_one_line() -> None:
    body = {
        "detail": [
            {"type": "missing", "loc": ["body", "template"], "msg": "Field required"},
            {"type": "string_type", "loc": ["body", "parameters", "n"], "msg": "bad string"},
            {"type": "x", "loc": [], "msg": "whole body wrong"},
        ]
    }
    err = error_from_response(response(422, body))
    assert err.message == (
        "invalid request: template: Field required; parameters.n: bad string; whole body wrong"
    )
    assert "\n" not in err.message


def test_error_from_response_without_json_body() -> None:
    err = error_from_response(response(502, "Bad Gateway\n<html>"))
    assert err.message == "the server answered HTTP 502: Bad Gateway"
    assert error_from_response(response(500, "")).message == "the server answered HTTP 500"


def test_error_from_response_nested_detail_and_multiline() -> None:
    err = error_from_response(response(400, {"detail": {"detail": "bad\nthing", "hint": "h"}}))
    assert (err.message, err.hint) == ("bad thing", "h")


def test_is_loopback() -> None:
    assert is_loopback("http://127.0.0.1:8000")
    assert is_loopback("http://localhost:1")
    assert is_loopback("http://[::1]:1")
    assert not is_loopback("https://dockyard.example.com")


def test_phases_line_sums_finished_phases() -> None:
    from cli.render import phases_line

    line = phases_line(
        [
            {"phase": "image", "duration_s": 0.5},
            {"phase": "create", "duration_s": 0.25},
            {"phase": "agent", "duration_s": None},
        ]
    )
    assert line == "phases: image 0.50s, create 0.25s, agent running (total 0.75s)"


def _rich_table(headers: list[str], rows: list[list[str]]) -> str:
    """render_table as it was: rich, for every table."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0))
    for header in headers:
        table.add_column(header, header_style="", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(value) for value in row))
    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000, color_system=None, force_terminal=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def test_plain_tables_are_laid_out_as_rich_did() -> None:
    import random
    import string

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " -_.,:/=[]()'\"*"
    for _ in range(500):
        columns = rng.randint(1, 6)
        headers = ["".join(rng.choices(string.ascii_uppercase + " ", k=rng.randint(0, 8)))]
        headers += [f"H{i}" for i in range(columns - 1)]
        rows = [
            ["".join(rng.choices(alphabet, k=rng.randint(0, 20))) for _ in range(columns)]
            for _ in range(rng.randint(0, 5))
        ]
        assert render_table(headers, rows) == _rich_table(headers, rows), (headers, rows)


def test_other_text_is_still_laid_out_by_rich() -> None:
    rows = [["wide 漢字", "tab\there"], ["é", "\x1b[31mred"], ["emoji ✅", "x"]]
    assert render_table(["A", "B"], rows) == _rich_table(["A", "B"], rows)
    assert render_table(["A:ok:", "B"], [["x", "y"]]) == _rich_table(["A:ok:", "B"], [["x", "y"]])


def test_a_command_imports_only_what_it_needs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    heavy = ["httpx", "rich", "pydantic", "yaml", "jinja2", "fastapi", "sqlalchemy", "docker"]
    # `task create` and the rest of cli.tasks: not git's helpers nor the workers' commands
    heavy += ["cli.work", "cli.workers", "subprocess", "provisioner.gitwork.urls"]
    if sys.platform.startswith("linux"):  # the credentials' path is found without it there
        heavy.append("platformdirs")
    code = (
        "import sys, cli.main, cli.tasks, cli.credentials, cli.local_server;"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_queue_table_shows_the_servers_order_and_places() -> None:
    # the server orders the queue (GET /api/v2/queue; tested in test_queue_api): tasks
    # waiting for dependencies and backlog tasks have no place in line
    from cli.render import queue_table

    entries = [
        {"position": 1, "name": "high", "priority": 80, "waiting_for": "capacity", "reason": "r"},
        {"position": 2, "name": None, "priority": 10, "waiting_for": "target", "reason": "r"},
        {"position": None, "name": "blocked", "priority": 90, "waiting_for": "dependencies"},
        {"position": None, "name": "parked", "priority": 99, "waiting_for": "backlog"},
    ]
    rows = [line.split()[:2] for line in queue_table(entries).splitlines()[1:]]
    assert rows == [["1", "high"], ["2", "-"], ["-", "blocked"], ["-", "parked"]]


def test_a_request_to_the_local_server_loads_neither_openssl_nor_email() -> None:
    """Plain http to 127.0.0.1 goes over a socket (cli/plainhttp.py), not through
    http.client and its email package (~10 ms of every command) nor ssl; the request
    itself is answered as ever."""
    import http.server
    import subprocess
    import sys
    import threading
    from pathlib import Path

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        code = (
            "import sys; from cli.client import Client;"
            f"print(Client({url!r}).request('GET', '/health'),"
            " [m for m in ('ssl', '_ssl', 'http.client', 'email') if m in sys.modules])"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.stdout.strip() == "{'ok': True} []", done.stdout + done.stderr
