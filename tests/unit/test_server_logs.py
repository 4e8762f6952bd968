"""Structured server logs: one JSON line per event with task and request ids, request ids
taken from X-Request-ID (when plain) or made and answered, and a real server process
started with --log-format json writing nothing but JSON lines."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner.errors import DockyardError
from provisioner.logcontext import in_task, task_context
from provisioner.server.logformat import JsonFormatter, check_format
from provisioner.server.main import create_app
from provisioner.server.main import uvicorn as _uvicorn
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_headers, free_port
from tests.stored import stored_task

__all__ = ["bridge_cache"]


class Lines(logging.Handler):
    """Formats each record as it is emitted (in the emitting context, as a real handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_a_line_is_one_json_object_with_both_ids(lines: Lines) -> None:
    log = logging.getLogger("dockyard.test")
    log.info("plain")
    with task_context("t-1"):
        log.warning('a "quoted"\nmultiline\x1b[31m message', extra={"phase": "image"})
    in_task("t-2", log.info)("from a pool thread's work")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    assert all("\n" not in line for line in lines.lines)  # one line per event, always
    plain, quoted, pooled, failed = lines.parsed()
    assert plain["task_id"] is None and plain["request_id"] is None
    assert plain["level"] == "info" and plain["logger"] == "dockyard.test"
    assert quoted["task_id"] == "t-1" and quoted["phase"] == "image"
    assert quoted["message"] == 'a "quoted"\nmultiline\x1b[31m message'
    assert pooled["task_id"] == "t-2"
    assert "ValueError: boom" in str(failed["exc"])


def test_a_thread_inherits_nothing_unless_given_the_context(lines: Lines) -> None:
    log = logging.getLogger("dockyard.test")
    with task_context("t-3"):
        t = threading.Thread(target=log.info, args=("bare thread",))
        t.start()
        t.join()
    assert lines.parsed()[0]["task_id"] is None  # why provision.py copies its context


@pytest.fixture
def json_server(tmp_path: Path, bridge_cache: Path) -> Iterator[tuple[Harness, str]]:
    with harness_at(tmp_path / "home", bridge_cache) as h:
        port = free_port()
        app = create_app(h.engine, h.home, ["127.0.0.1"], log_format="json")
        server = _uvicorn.Server(
            _uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, what="the server to start")
        try:
            yield h, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(20)


def test_requests_get_ids_and_one_access_line_each(
    json_server: tuple[Harness, str], lines: Lines
) -> None:
    h, url = json_server
    task = stored_task(h.store, owner="admin")
    given = httpx.get(
        f"{url}/api/v2/tasks/{task.id}",
        headers={**admin_headers(h.home), "X-Request-ID": "abc-1"},
        timeout=HTTP_TIMEOUT,
    )
    assert given.status_code == 200 and given.headers["x-request-id"] == "abc-1"
    made = httpx.get(f"{url}/api/v2/health", headers=admin_headers(h.home), timeout=HTTP_TIMEOUT)
    assert len(made.headers["x-request-id"]) == 32
    refused = httpx.get(
        f"{url}/api/v2/health", headers={"X-Request-ID": "no-token"}, timeout=HTTP_TIMEOUT
    )
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "no-token"

    def access(rid: str) -> dict[str, object] | None:
        found = [p for p in lines.parsed() if p.get("request_id") == rid]
        return found[0] if found else None

    line = wait_until(lambda: access("abc-1"), what="the access line")
    assert line["task_id"] == task.id and line["status"] == 200 and line["user"]
    assert line["method"] == "GET" and line["logger"] == "dockyard.access"
    denied = wait_until(lambda: access("no-token"), what="the 401's access line")
    assert denied["status"] == 401 and denied["user"] is None


HOSTILE = ["x" * 65, "a b", 'a"b', "a\tb", "../../etc", "é", "a;rm -rf /", "{}", ""]


def test_a_hostile_request_id_is_replaced(json_server: tuple[Harness, str]) -> None:
    h, url = json_server
    for hostile in HOSTILE:
        try:
            reply = httpx.get(
                f"{url}/api/v2/health",
                headers={**admin_headers(h.home), "X-Request-ID": hostile},
                timeout=HTTP_TIMEOUT,
            )
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            continue  # the client itself will not send it: nothing reaches the server
        assert reply.status_code == 200
        rid = reply.headers["x-request-id"]
        assert rid != hostile and len(rid) == 32 and rid.isalnum(), hostile


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(DockyardError, match="unknown log format"):
        check_format("xml", "--log-format")
    with pytest.raises(DockyardError, match=r"config\.yaml: log_format"):
        check_format("json\n", "config.yaml: log_format")
    result = CliRunner().invoke(cli, ["server", "--log-format", "xml"])
    assert result.exit_code == 2 and "xml" in result.output


def test_a_server_process_logs_json_lines_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("log_format: text\n")  # the flag wins
    env = {**os.environ, "DOCKYARD_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner.server", "--home", str(home), "--log-format", "json"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    try:
        info = wait_until(
            lambda: (
                (home / "server.json").is_file() and json.loads((home / "server.json").read_text())
            ),
            timeout=60,
            what="server.json",
        )
        reply = httpx.get(
            info["url"] + "/api/v2/health",
            headers={**admin_headers(home), "X-Request-ID": "proc-1"},
            timeout=HTTP_TIMEOUT,
        )
        assert reply.headers["x-request-id"] == "proc-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    parsed = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert parsed, "the server wrote no log lines"
    assert all("task_id" in p and "request_id" in p for p in parsed)
    assert any(p.get("request_id") == "proc-1" and p.get("status") == 200 for p in parsed)
    assert any("serving at" in str(p["message"]) for p in parsed)


def test_every_committed_task_event_is_a_line_with_the_request_that_caused_it(
    json_server: tuple[Harness, str], lines: Lines
) -> None:
    h, url = json_server
    task = stored_task(h.store, owner="admin")  # pending: not started (no engine claim)
    reply = httpx.patch(
        f"{url}/api/v2/tasks/{task.id}",
        headers={**admin_headers(h.home), "X-Request-ID": "bump-1"},
        json={"priority": 60},
        timeout=HTTP_TIMEOUT,
    )
    assert reply.status_code == 200, reply.text

    def changed() -> list[dict[str, object]]:
        return [
            p
            for p in lines.parsed()
            if p["logger"] == "dockyard.events" and p["request_id"] == "bump-1"
        ]

    (line,) = wait_until(changed, what="the priority event's line")
    assert line["task_id"] == task.id and line["event"] == "priority"
    assert str(line["actor"]).startswith("user:")


def test_a_rolled_back_event_is_not_logged_and_text_lines_stay_lines(
    tmp_path: Path, lines: Lines
) -> None:
    from provisioner.lifecycle import Status
    from provisioner.store.store import Store, sqlite_url

    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    try:
        task = stored_task(store, Status.PENDING)
        store.transition(task.id, Status.PENDING, Status.BACKLOG, actor="a", reason="x\nFORGED")
        with pytest.raises(Exception, match="changed meanwhile"):
            store.transition(task.id, Status.PENDING, Status.BACKLOG, actor="b")
    finally:
        store.close()
    events = [p for p in lines.parsed() if p["logger"] == "dockyard.events"]
    assert [(e["from"], e["to"], e["actor"]) for e in events] == [
        (None, "pending", "test"),
        ("pending", "backlog", "a"),
    ]
    assert events[1]["reason"] == "x\nFORGED"  # whole in JSON
    assert "\n" not in str(events[1]["message"])  # one line in text
