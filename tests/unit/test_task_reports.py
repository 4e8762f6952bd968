"""dockyard-task and the bridge's reports: the command's checks, and on a real bridge
process the report queue, its persistence, its long-poll and who may report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from provisioner.bridge.client import BridgeClient
from provisioner.bridge.runtime import reports as reports_module
from provisioner.bridge.runtime import task_command
from provisioner.bridge.runtime.http import Handler
from provisioner.bridge.runtime.reports import ReportLog
from provisioner.bridge.runtime.task_command import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MAX_NOTE,
    MAX_OUTPUT,
    MAX_QUESTION,
    ReportError,
    check_report,
)
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.unit.test_bridge_local import TOKEN, BridgeRunner, outputs, wait_stable

# -- the report contract (pure) -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "complete", "outcome": "SUCCESS"},
        {
            "kind": "complete",
            "outcome": "FAILED",
            "error_code": "E42",
            "error_class": "TRANSIENT",
            "output": "it broke\n\tsee the log",
            "tokens_in": 0,
            "tokens_out": 10**12,
            "cost_usd": 0.5,
            "model": "claude-sonnet-4.5",
        },
        {"kind": "progress", "note": "Fixed the auth check, running tests"},
        {"kind": "ask", "question": "Which database should I use?"},
        {"kind": "usage", "tokens_in": 1, "tokens_out": 2, "cost_usd": 0, "model": "m"},
    ],
)
def test_valid_reports_are_kept_as_given(body: dict[str, Any]) -> None:
    assert check_report(body) == body


def test_nulls_are_absent_and_crlf_is_a_newline() -> None:
    report = check_report(
        {"kind": "complete", "outcome": "SKIPPED", "output": "a\r\nb", "model": None}
    )
    assert report == {"kind": "complete", "outcome": "SKIPPED", "output": "a\nb"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "body", "JSON object"),
        ({"kind": "finish"}, "kind", "kind must be one of"),
        ({"outcome": "SUCCESS"}, "kind", "kind must be one of"),
        ({"kind": "complete"}, "outcome", "needs outcome"),
        ({"kind": "complete", "outcome": "success"}, "outcome", "SUCCESS, FAILED"),
        (
            {"kind": "complete", "outcome": "FAILED", "error_class": "OOPS"},
            "error_class",
            "TRANSIENT",
        ),
        ({"kind": "complete", "outcome": "SUCCESS", "error_code": "E1"}, "error_code", "SUCCESS"),
        # a report names no task: it is its own workspace's task's, and no other
        ({"kind": "progress", "note": "x", "task_id": "other"}, "task_id", "unexpected field"),
        ({"kind": "progress", "note": "x", "id": "mine"}, "id", "unexpected field"),
        ({"kind": "progress", "note": "x", "outcome": "SUCCESS"}, "outcome", "does not go with"),
        ({"kind": "progress"}, "note", "needs note"),
        ({"kind": "progress", "note": "   \n"}, "note", "more than whitespace"),
        ({"kind": "progress", "note": 5}, "note", "must be a string"),
        ({"kind": "progress", "note": "a\x1b[2Jb"}, "note", "U+001B at position 1"),
        ({"kind": "progress", "note": "carriage\rreturn"}, "note", "U+000D"),
        ({"kind": "ask", "question": "del\x7f"}, "question", "U+007F"),
        ({"kind": "ask", "question": "c1\x85"}, "question", "U+0085"),
        ({"kind": "ask", "question": "nul\x00"}, "question", "U+0000"),
        ({"kind": "ask", "question": "half \ud800"}, "question", "surrogate"),
        ({"kind": "usage", "tokens_in": 1}, "tokens_out", "needs tokens_out"),
        ({"kind": "usage", "tokens_in": -1, "tokens_out": 0}, "tokens_in", "from 0"),
        ({"kind": "usage", "tokens_in": 10**12 + 1, "tokens_out": 0}, "tokens_in", "from 0"),
        ({"kind": "usage", "tokens_in": 1.5, "tokens_out": 0}, "tokens_in", "whole number"),
        ({"kind": "usage", "tokens_in": True, "tokens_out": 0}, "tokens_in", "whole number"),
        ({"kind": "usage", "tokens_in": "1", "tokens_out": 0}, "tokens_in", "whole number"),
        (
            {"kind": "usage", "tokens_in": 0, "tokens_out": 0, "cost_usd": -0.01},
            "cost_usd",
            "from 0",
        ),
        (
            {"kind": "usage", "tokens_in": 0, "tokens_out": 0, "cost_usd": float("nan")},
            "cost_usd",
            "from 0",
        ),
        (
            {"kind": "usage", "tokens_in": 0, "tokens_out": 0, "cost_usd": float("inf")},
            "cost_usd",
            "from 0",
        ),
        ({"kind": "usage", "tokens_in": 0, "tokens_out": 0, "cost_usd": 1e7}, "cost_usd", "from 0"),
        (
            {"kind": "usage", "tokens_in": 0, "tokens_out": 0, "model": "two words"},
            "model",
            "1-128 letters",
        ),
        ({"kind": "usage", "tokens_in": 0, "tokens_out": 0, "model": "m" * 129}, "model", "128"),
        ({"kind": "usage", "tokens_in": 0, "tokens_out": 0, "model": ""}, "model", "1-128"),
        (
            {"kind": "usage", "tokens_in": 0, "tokens_out": 0, "model": "gpt\u00e9"},
            "model",
            "1-128",
        ),
        ({"kind": "complete", "outcome": "FAILED", "error_code": "E 1"}, "error_code", "1-64"),
        ({"kind": "complete", "outcome": "FAILED", "error_code": "e" * 65}, "error_code", "1-64"),
        ({"kind": "complete", "outcome": "FAILED", "error_code": "a/b"}, "error_code", "1-64"),
        ({"kind": "progress", "note": "abc\u202edcb"}, "note", "bidi override U+202E"),
    ],
)
def test_wrong_reports_name_the_field(body: Any, field: str, message: str) -> None:
    with pytest.raises(ReportError, match=re.escape(message)) as caught:
        check_report(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kind", "field", "limit"),
    [
        ("progress", "note", MAX_NOTE),
        ("ask", "question", MAX_QUESTION),
        ("complete", "output", MAX_OUTPUT),
    ],
)
def test_text_is_bounded_in_bytes_of_utf8(kind: str, field: str, limit: int) -> None:
    base = {"kind": kind, "outcome": "SUCCESS"} if kind == "complete" else {"kind": kind}
    assert check_report({**base, field: "x" * limit})[field] == "x" * limit
    with pytest.raises(ReportError, match=f"at most {limit}"):
        check_report({**base, field: "x" * (limit + 1)})
    # é is two bytes: half as many characters fill the limit
    with pytest.raises(ReportError, match=f"{limit + 2} bytes"):
        check_report({**base, field: "é" * (limit // 2 + 1)})


# -- the command, without a bridge ---------------------------------------------------------


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dockyard-task as the bridge installs it: alone in its directory (beside the
    runtime's modules, its http.py would hide the standard library's)."""
    path = tmp_path_factory.mktemp("bin") / "dockyard-task"
    path.write_bytes(Path(task_command.__file__).read_bytes())
    return path


def run_command(
    script: Path, args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dockyard-task as the agent does."""
    return subprocess.run(
        [sys.executable, "-S", str(script), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "required: COMMAND"),
        (["finish"], "invalid choice"),
        (["complete"], "--outcome"),
        (["complete", "--outcome", "DONE"], "invalid choice"),
        (["complete", "--outcome", "FAILED", "--error-class", "BAD"], "invalid choice"),
        (["complete", "--outcome", "SUCCESS", "--error-class", "TRANSIENT"], "does not go with"),
        (["complete", "--outcome", "SUCCESS", "--tokens-in", "many"], "not a whole number"),
        (["usage", "--tokens-in", "1"], "--tokens-out"),
        (["usage", "--tokens-in", "-5", "--tokens-out", "1"], "from 0"),
        (["usage", "--tokens-in", "1", "--tokens-out", "1", "--cost-usd", "-1"], "from 0"),
        (["progress"], "NOTE"),
        (["progress", "a\x07b"], "U+0007"),
        (["ask", "x" * (MAX_QUESTION + 1)], f"at most {MAX_QUESTION}"),
    ],
)
def test_the_command_refuses_wrong_arguments_before_sending(
    script: Path, args: list[str], said: str
) -> None:
    # no key and no bridge: reaching for them would exit 3, so a 2 means nothing was sent
    done = run_command(script, args, {})
    assert done.returncode == EXIT_USAGE, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_the_command_outside_a_workspace_says_so(script: Path, tmp_path: Path) -> None:
    done = run_command(script, ["progress", "hello"], {})
    assert done.returncode == EXIT_UNREACHABLE
    assert "cannot read the report key" in done.stderr
    key = tmp_path / "key"
    key.write_text("k" * 64)
    env = {"DOCKYARD_REPORT_KEY_FILE": str(key), "DOCKYARD_BRIDGE_URL": "http://127.0.0.1:9"}
    done = run_command(script, ["progress", "hello"], env)
    assert done.returncode == EXIT_UNREACHABLE
    assert "cannot reach the bridge at http://127.0.0.1:9/dockyard/report" in done.stderr


# -- the report log (the bridge's queue) --------------------------------------------------


def test_report_log_numbers_persists_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    log = ReportLog(path)
    first = log.append({"kind": "progress", "note": "one"}, 1.0)
    second = log.append({"kind": "ask", "question": "two?"}, 2.0)
    assert (first["seq"], second["seq"]) == (1, 2) and first["id"] != second["id"]
    # a torn last line (a crash mid-write, never acknowledged) and lines the agent wrote
    # into the file itself are left out; the rest comes back as it was
    forged = {"seq": 3, "id": "f" * 32, "time": "t", "kind": "complete", "outcome": "WON"}
    with path.open("a") as f:
        f.write(json.dumps(forged) + "\n")
        f.write(
            json.dumps({"seq": 1, "id": "e" * 32, "time": "t", "kind": "progress", "note": "old"})
            + "\n"
        )
        f.write("not json\n")
        f.write('{"seq": 9, "id": "torn')
    again = ReportLog(path)
    assert again.reports == [first, second]
    assert again.after(1) == [second] and again.after(2) == [] and again.after(0, 1) == [first]
    assert not path.read_text().endswith("torn")
    third = again.append({"kind": "usage", "tokens_in": 1, "tokens_out": 1}, 3.0)
    assert third["seq"] == 3
    assert [r["seq"] for r in ReportLog(path).reports] == [1, 2, 3]


def test_a_report_file_larger_than_a_bridge_writes_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports_module, "MAX_REPORT_BYTES", 100)
    path = tmp_path / "reports.jsonl"
    path.write_bytes(b"x" * (100 + (1 << 20) + 1))  # the agent wrote it, not the bridge
    assert ReportLog(path).reports == []
    assert not path.exists() and list(tmp_path.glob("reports.jsonl.too-large-*"))


def test_report_log_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports_module, "MAX_REPORTS", 2)
    log = ReportLog()
    assert log.room_for(100)
    log.append({"kind": "progress", "note": "a"}, 1.0)
    log.append({"kind": "progress", "note": "b"}, 1.0)
    assert not log.room_for(100)
    assert not ReportLog().room_for(reports_module.MAX_REPORT_BYTES + 1)


@pytest.mark.parametrize(
    ("peer", "local", "inside"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.5", "172.17.0.2", True),
        ("::1", "::1", True),
        ("::ffff:127.0.0.1", "::ffff:172.17.0.2", True),
        ("172.17.0.2", "172.17.0.2", True),  # the container calling its own address
        ("172.17.0.3", "172.17.0.2", False),  # a neighbour on the network
        ("172.17.0.1", "172.17.0.2", False),  # the host (the server)
        ("fe80::1%eth0", "fe80::2%eth0", False),
    ],
)
def test_reports_come_only_from_inside_the_workspace(peer: str, local: str, inside: bool) -> None:
    handler = SimpleNamespace(
        client_address=(peer, 40000),
        connection=SimpleNamespace(getsockname=lambda: (local, 7777)),
    )
    assert Handler._from_inside(handler) is inside  # type: ignore[arg-type]


# -- on a real bridge -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from provisioner.bridge.package import build_zipapp

    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def runner(zipapp: Path, tmp_path: Path) -> Any:
    bridge = BridgeRunner(zipapp, tmp_path)
    try:
        yield bridge
    finally:
        bridge.cleanup()


def report_key(runner: BridgeRunner) -> str:
    return (runner.state_dir / "report-key").read_text().strip()


def post_report(client: BridgeClient, body: Any, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.post(
        f"{client.base_url}/dockyard/report",
        json=body,
        headers=headers,
        timeout=HTTP_TIMEOUT,
        **kwargs,
    )


def test_the_agent_reports_with_dockyard_task_on_its_path(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    key_file = runner.state_dir / "report-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert report_key(runner) != TOKEN
    command = runner.state_dir / "bin" / "dockyard-task"
    assert os.access(command, os.X_OK)
    # the scripted agent's commands run dockyard-task from the PATH the bridge gave it
    client.send("/progress Fixed the auth check, running tests")
    wait_until(lambda: client.reports()["last_seq"] == 1, 30, "the progress report")
    client.send("/ask Which database should I use?")
    client.send("/usage 1200 340")
    wait_until(lambda: client.reports()["last_seq"] == 3, 30, "three reports")
    wait_stable(client)
    assert "Waiting for an answer" in outputs(client)
    page = client.reports()
    reports = [{k: v for k, v in r.items() if k not in ("id", "time")} for r in page["reports"]]
    assert reports == [
        {"seq": 1, "kind": "progress", "note": "Fixed the auth check, running tests"},
        {"seq": 2, "kind": "ask", "question": "Which database should I use?"},
        {"seq": 3, "kind": "usage", "tokens_in": 1200, "tokens_out": 340},
    ]
    assert len({r["id"] for r in page["reports"]}) == 3
    assert client.reports(after=2)["reports"] == page["reports"][2:]
    # the follower's long-poll carries them after its cursor
    reply = client.log(after=0, limit=1, reports_after=1)
    assert [r["seq"] for r in reply["reports"]] == [2, 3] and reply["reports_last_seq"] == 3
    assert "reports" not in client.log(after=0, limit=1)  # not asked: an agentapi reply as before
    # a complete ends the reports
    client.send("/complete SUCCESS all green")
    wait_until(lambda: client.reports()["last_seq"] == 4, 30, "the complete report")
    last = client.reports(after=3)["reports"][0]
    assert (last["kind"], last["outcome"], last["output"]) == ("complete", "SUCCESS", "all green")
    wait_stable(client)
    client.send("/progress too late")
    wait_until(lambda: any("exited with code 4" in line for line in outputs(client)), 30, "refusal")
    assert any("already completed" in line for line in outputs(client))
    assert client.reports()["last_seq"] == 4


def test_a_new_report_wakes_the_long_poll(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    last = client.status()["dockyard"]["last_seq"]
    replies: list[dict[str, Any]] = []

    def poll() -> None:
        replies.append(
            client.log(after=last, wait=20, state="idle", prompts_version=None, reports_after=0)
        )

    waiter = threading.Thread(target=poll)
    started = time.monotonic()
    waiter.start()
    time.sleep(0.3)  # the poll is waiting
    assert not replies
    answer = post_report(
        client, {"kind": "ask", "question": "SQLite or PostgreSQL?"}, report_key(runner)
    )
    assert answer.status_code == 200, answer.text
    waiter.join(HTTP_TIMEOUT)
    # woken: answered long before the 20 s it was allowed to hold, however loaded the
    # machine is (no speed test)
    assert time.monotonic() - started < 15
    [reply] = replies
    assert reply["entries"] == [] and reply["reports_last_seq"] == 1
    assert reply["reports"][0]["question"] == "SQLite or PostgreSQL?"
    assert reply["reports"][0]["id"] == answer.json()["id"]


def test_reports_survive_a_bridge_restart(runner: BridgeRunner) -> None:
    client = runner.start()
    key = report_key(runner)
    for note in ("one", "two"):
        assert post_report(client, {"kind": "progress", "note": note}, key).status_code == 200
    before = client.reports()["reports"]
    assert runner.stop() == 0
    client = runner.start()
    assert report_key(runner) == key  # the agent's key stays its key
    assert client.reports()["reports"] == before
    answer = post_report(client, {"kind": "progress", "note": "three"}, key)
    assert answer.json()["seq"] == 3
    # a complete ends the reports of this run; a later start (a retry in the same
    # workspace) reports again, numbered on
    done = {"kind": "complete", "outcome": "FAILED", "error_class": "TRANSIENT"}
    assert post_report(client, done, key).status_code == 200
    assert post_report(client, {"kind": "progress", "note": "four"}, key).status_code == 409
    assert runner.stop() == 0
    client = runner.start()
    answer = post_report(client, {"kind": "progress", "note": "attempt 2"}, key)
    assert answer.json()["seq"] == 5


def test_who_may_report_and_what(runner: BridgeRunner) -> None:
    client = runner.start()
    key = report_key(runner)
    ok = {"kind": "progress", "note": "fine"}
    # no credential, a wrong one, and the bridge token (the server's, never the agent's)
    for credential in (None, "wrong", TOKEN, key + "x"):
        answer = post_report(client, ok, credential)
        assert answer.status_code == 401, credential
        assert "report key" in answer.json()["detail"]
    # the report key opens nothing else
    for path in ("/status", "/dockyard/reports", "/dockyard/log"):
        answer = httpx.get(
            f"{client.base_url}{path}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=HTTP_TIMEOUT,
        )
        assert answer.status_code == 401, path
    answer = httpx.post(
        f"{client.base_url}/message",
        json={"content": "hi", "type": "user"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 401
    # what a hostile agent may try: every one a 422 naming the field, nothing kept
    wrong = [
        ({"kind": "progress", "note": "x" * (MAX_NOTE + 1)}, "body.note"),
        ({"kind": "ask", "question": "q" * (MAX_QUESTION + 1)}, "body.question"),
        (
            {"kind": "complete", "outcome": "SUCCESS", "output": "o" * (MAX_OUTPUT + 1)},
            "body.output",
        ),
        ({"kind": "progress", "note": "clear\x1b[2J"}, "body.note"),
        ({"kind": "progress", "note": "x", "task_id": "someone-elses-task"}, "body.task_id"),
        ({"kind": "complete", "outcome": "WON"}, "body.outcome"),
        ({"kind": "usage", "tokens_in": -1, "tokens_out": 1}, "body.tokens_in"),
        ({"kind": "usage", "tokens_in": 1, "tokens_out": 1, "cost_usd": 1e300}, "body.cost_usd"),
        ({"kind": "shutdown"}, "body.kind"),
    ]
    for body, location in wrong:
        answer = post_report(client, body, key)
        assert answer.status_code == 422, body
        problem = answer.json()
        assert problem["errors"][0]["location"] == location
        assert len(answer.content) < 2048  # an oversize value is not echoed back whole
    assert post_report(client, [1, 2], key).status_code == 422
    answer = httpx.post(
        f"{client.base_url}/dockyard/report",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 400
    answer = httpx.post(
        f"{client.base_url}/dockyard/report",
        content=b"x" * (2 << 20),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 413
    assert client.reports()["last_seq"] == 0
    # a GET of the report route is not a way around the key
    assert (
        httpx.get(
            f"{client.base_url}/dockyard/report",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ).status_code
        == 405
    )
    assert post_report(client, ok, key).status_code == 200
    assert client.reports()["last_seq"] == 1


def test_the_installed_command_talks_to_the_bridge(runner: BridgeRunner) -> None:
    client = runner.start()
    command = runner.state_dir / "bin" / "dockyard-task"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOCKYARD_BRIDGE_URL": client.base_url,
        "DOCKYARD_REPORT_KEY_FILE": str(runner.state_dir / "report-key"),
        # a proxy in the workspace's environment must not carry the report away
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    done = run(
        "usage", "--tokens-in", "10", "--tokens-out", "5", "--cost-usd", "0.02", "--model", "gpt-x"
    )
    assert done.returncode == 0, done.stderr
    assert "usage added" in done.stdout
    done = run(
        "complete",
        "--outcome",
        "FAILED",
        "--error-class",
        "TRANSIENT",
        "--error-code",
        "E42",
        "--output",
        "-",
        stdin="the log\nsays no\n",
    )
    assert done.returncode == 0, done.stderr
    [usage, complete] = client.reports()["reports"]
    assert usage["cost_usd"] == 0.02 and usage["model"] == "gpt-x"
    assert complete["output"] == "the log\nsays no\n" and complete["error_code"] == "E42"
    done = run("progress", "after the end")
    assert done.returncode == EXIT_REFUSED
    assert "already completed (FAILED" in done.stderr
    env["DOCKYARD_REPORT_KEY_FILE"] = str(runner.root / "token")  # the bridge token
    done = run("ask", "may I?")
    assert done.returncode == EXIT_REFUSED and "(401)" in done.stderr


def test_a_copy_of_another_tasks_workspace_starts_without_its_reports(
    runner: BridgeRunner,
) -> None:
    # a fork starts from a copy of its parent's disk: the parent's reports (a complete
    # among them) and key are not the child's
    client = runner.start()
    parent_key = report_key(runner)
    done = {"kind": "complete", "outcome": "SUCCESS"}
    assert post_report(client, done, parent_key).status_code == 200
    assert runner.stop() == 0
    (runner.root / "token").write_text("the-childs-token\n")
    client = runner.start()
    client = BridgeClient(client.base_url, "the-childs-token", timeout=HTTP_TIMEOUT)
    assert client.reports() == {"reports": [], "last_seq": 0}
    child_key = report_key(runner)
    assert child_key != parent_key
    assert post_report(client, {"kind": "progress", "note": "x"}, parent_key).status_code == 401
    answer = post_report(client, {"kind": "progress", "note": "mine"}, child_key)
    assert answer.json()["seq"] == 1
    assert list(runner.state_dir.glob("reports.jsonl.task-*"))  # kept aside, not deleted
    client.close()


AGREED = [
    {"kind": "complete", "outcome": "SUCCESS"},
    {"kind": "complete", "outcome": "FAILED", "error_code": "E.42:x-y_z", "error_class": "POLICY"},
    {"kind": "complete", "outcome": "CANCELLED", "output": "x" * MAX_OUTPUT, "model": "a/b@c+d"},
    {"kind": "complete", "outcome": "FAILED", "error_code": "e" * 64, "model": "m" * 128},
    {"kind": "complete", "outcome": "SKIPPED", "output": "tabs\tand\nnewlines", "cost_usd": 1e6},
    {"kind": "usage", "tokens_in": 10**12, "tokens_out": 0, "cost_usd": 0},
    {"kind": "progress", "note": "é" * (MAX_NOTE // 2)},
    {"kind": "ask", "question": "q" * MAX_QUESTION},
]


@pytest.mark.parametrize("body", AGREED)
def test_what_the_bridge_acknowledges_the_server_applies(body: dict[str, Any]) -> None:
    # the bridge answers the agent at once; the server checks again later and drops
    # what it refuses (only a log line): a report the bridge keeps must pass there too
    from provisioner.queueing import (
        MAX_NOTE_BYTES,
        MAX_QUESTION_BYTES,
        check_text,
        parse_completion,
        parse_cost,
    )

    report = check_report(body)
    if report["kind"] == "complete":
        parse_completion(report)
    elif report["kind"] == "usage":
        parse_cost(report)
    elif report["kind"] == "progress":
        assert check_text(report["note"], "note", MAX_NOTE_BYTES)
    else:
        assert check_text(report["question"], "question", MAX_QUESTION_BYTES)
