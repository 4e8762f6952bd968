"""Real-terminal tests: the bridge zipapp runs on the host with the scripted agent under a pty."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.bridge.package import build_zipapp
from tests.polling import HTTP_TIMEOUT, wait_until

REPO = Path(__file__).resolve().parents[2]
SCRIPTED = REPO / "templates" / "scripted" / "scripted_agent.py"
TOKEN = "test-token-123"


class BridgeRunner:
    """Starts the bridge zipapp as a subprocess for one test, and always cleans up."""

    def __init__(self, zipapp: Path, root: Path) -> None:
        self.zipapp = zipapp
        self.root = root
        self.workdir = root / "work"
        self.workdir.mkdir()
        self.state_dir = root / "state"
        (root / "token").write_text(TOKEN + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: BridgeClient | None = None
        self.runs = 0

    def agent_command(self, *extra: str) -> list[str]:
        """The scripted agent with this test's workdir and context file."""
        return [
            "python3", str(SCRIPTED), "--work-seconds", "0.5",
            "--workdir", str(self.workdir), "--context-file", str(self.root / "ctx.json"),
            *extra,
        ]  # fmt: skip

    def start(self, *, hangups_ignored: bool = False, **overrides: Any) -> BridgeClient:
        """Write the config, start the bridge and return a client once it answers.
        `hangups_ignored`: started with SIGHUP ignored, as under nohup."""
        config: dict[str, Any] = {
            "agent_command": self.agent_command(),
            "cwd": str(self.workdir),
            "listen": "127.0.0.1:0",  # the bridge reports the port it got
            "token_file": str(self.root / "token"),
            "state_dir": str(self.state_dir),
        }
        config.update(overrides)
        self.runs += 1
        config_path = self.root / f"config-{self.runs}.json"
        config_path.write_text(json.dumps(config))
        self.stderr_path = self.root / f"bridge-{self.runs}.err"
        with (
            (self.root / f"bridge-{self.runs}.out").open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            # -S: no site-packages, so pyte must come from inside the zipapp
            self.proc = subprocess.Popen(
                [sys.executable, "-S", str(self.zipapp), "--config", str(config_path)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                preexec_fn=_ignore_hangups if hangups_ignored else None,
            )
        match = wait_until(self._listening, 30, "the bridge to listen")
        self.client = BridgeClient(
            f"http://127.0.0.1:{match.group(1)}", TOKEN, timeout=HTTP_TIMEOUT
        )
        return self.client

    def _listening(self) -> re.Match[str] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"bridge exited {self.proc.returncode}: {self.stderr_path.read_text()}")
        return re.search(r"listening on [\d.]+:(\d+)", self.stderr_path.read_text())

    def stop(self) -> int:
        """SIGTERM the bridge as Docker would; return its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        if self.client is not None:
            self.client.close()
        return code

    def cleanup(self) -> None:
        """Kill whatever is still running."""
        if self.client is not None:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _ignore_hangups() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("bridge-cache"))


@pytest.fixture
def runner(zipapp: Path, tmp_path: Path) -> Iterator[BridgeRunner]:
    bridge = BridgeRunner(zipapp, tmp_path)
    try:
        yield bridge
    finally:
        bridge.cleanup()


def state_of(client: BridgeClient) -> str:
    return str(client.status()["dockyard"]["state"])


def wait_stable(client: BridgeClient, timeout: float = 30) -> dict[str, Any]:
    """Wait until the agent is idle at its prompt; return the status."""
    return wait_until(
        lambda: (s := client.status())["status"] == "stable" and s, timeout, "status stable"
    )


def entries(client: BridgeClient) -> list[dict[str, Any]]:
    """The whole transcript."""
    result: list[dict[str, Any]] = []
    while True:
        page = client.log(after=result[-1]["seq"] if result else 0, limit=10000)["entries"]
        if not page:
            return result
        result += page


def outputs(client: BridgeClient) -> list[str]:
    return [e["content"] for e in entries(client) if e["type"] == "output"]


def test_zipapp_is_cached_by_content(zipapp: Path) -> None:
    assert re.fullmatch(r"bridge-[0-9a-f]{12}\.pyz", zipapp.name)
    assert build_zipapp(zipapp.parent) == zipapp
    assert [p.name for p in zipapp.parent.iterdir()] == [zipapp.name]


def test_bad_config_exits_with_one_line(zipapp: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"agent_command": "not a list"}))
    proc = subprocess.run(
        [sys.executable, "-S", str(zipapp), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1
    assert "agent_command" in proc.stderr


def test_initial_prompt_runs_and_becomes_stable(runner: BridgeRunner) -> None:
    client = runner.start(initial_prompt="hello world", initial_prompt_id="first")
    status = wait_stable(client)
    assert status["dockyard"]["queued_prompts"] == 0
    assert status["dockyard"]["agent_pid"] is not None
    lines = outputs(client)
    assert "Done: hello world" in lines
    assert lines[-1] == "> "  # the transcript is complete when idle
    [prompt] = client.prompts()
    assert prompt["id"] == "first" and prompt["state"] == "taken" and not prompt["assumed"]
    messages = client.messages()
    assert [m["role"] for m in messages] == ["agent", "user", "agent"]
    assert messages[1]["content"] == "hello world"
    assert messages[2]["content"].endswith("Done: hello world")


def test_prompts_sent_while_working_are_delivered_in_order(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    client.send("/sleep 2", prompt_id="sleep")
    assert client.status()["status"] == "running"  # at once, not after the agent reacts
    client.send("first follow-up", prompt_id="one")
    client.send("second follow-up", prompt_id="two")
    status = client.status()
    assert status["status"] == "running"
    assert status["dockyard"]["queued_prompts"] >= 2
    wait_stable(client)
    prompts = client.prompts()
    assert [p["id"] for p in prompts] == ["sleep", "one", "two"]
    assert all(p["state"] == "taken" and not p["assumed"] for p in prompts)
    delivered = [p["delivered_at"] for p in prompts]
    assert delivered == sorted(delivered)
    log = entries(client)
    seq_of = {e["content"]: e["seq"] for e in log}
    inputs = [e["content"] for e in log if e["type"] == "input"]
    assert inputs == ["/sleep 2", "first follow-up", "second follow-up"]
    # each prompt went in only after the previous one was finished
    assert seq_of["Done"] < seq_of["first follow-up"] < seq_of["Done: first follow-up"]
    assert seq_of["Done: first follow-up"] < seq_of["second follow-up"]
    assert seq_of["second follow-up"] < seq_of["Done: second follow-up"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


def test_write_creates_the_file(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    reply = client.send("/write notes/hello.txt hi there")
    assert reply["ok"] is True and re.fullmatch(r"[0-9a-f]{32}", reply["id"])
    assert client.status()["status"] == "running"
    wait_stable(client)
    assert (runner.workdir / "notes" / "hello.txt").read_text() == "hi there\n"
    assert "Wrote notes/hello.txt" in outputs(client)


def test_flood_keeps_every_line_and_returns_to_stable(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    started = time.monotonic()
    client.send("/flood 5000")
    wait_stable(client)
    elapsed = time.monotonic() - started
    print(f"\n/flood 5000: stable again after {elapsed:.2f}s")
    lines = outputs(client)
    flood = [line for line in lines if line.startswith("flood line ")]
    assert flood == [f"flood line {i}" for i in range(1, 5001)]
    assert lines[-2:] == ["Done", "> "]


def test_a_line_paused_mid_write_stays_one_line(runner: BridgeRunner) -> None:
    # a busy agent stops mid-line for longer than quiet_ms (100 ms here): not at its
    # prompt, the half line is not shown early, so it is not cut in two entries; an
    # unfinished line that stays (a progress message) shows after about a second. The
    # agent finishes that line only once the test has seen it shown (it waits for a key,
    # not for a time a loaded machine may overrun), so it can only have been shown early.
    script = (
        "stty -echo; printf 'half'; sleep 0.4; printf 'way\\n'; printf 'loading...';"
        " read go; printf ' done\\n> '; read line"
    )
    client = runner.start(agent_command=["sh", "-c", script], profile={"quiet_ms": 100})
    progress = wait_until(
        lambda: "loading..." in outputs(client) and outputs(client), what="the progress message"
    )
    assert progress == ["halfway", "loading..."]
    client.send("go\r", type="raw")
    wait_stable(client)
    assert outputs(client) == ["halfway", "loading...", " done", "> "]


def test_agent_exit_is_reported_and_the_bridge_keeps_serving(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    client.send("/exit 3")
    status = wait_until(
        lambda: (s := client.status())["dockyard"]["state"] == "exited" and s, 30, "exit"
    )
    assert status["status"] == "running"
    assert status["dockyard"]["exit_code"] == 3
    assert status["dockyard"]["agent_pid"] is None
    assert "Exiting with code 3" in outputs(client)
    with pytest.raises(BridgeError) as error:
        client.send("anyone there?")
    assert error.value.status_code == 409
    assert "exited" in str(error.value)
    assert client.health() == {"ok": True}


def test_raw_keys_and_idempotent_ids(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    client.send("typed by hand\r", type="raw")
    wait_until(lambda: "Done: typed by hand" in outputs(client), 30, "the raw input to run")
    [raw] = [e for e in entries(client) if e["type"] == "input"]
    assert raw["raw"] is True and raw["content"] == "typed by hand\r"
    assert client.prompts() == []  # raw keys bypass the queue
    wait_stable(client)
    assert client.send("once", prompt_id="retry")["id"] == "retry"
    assert client.send("once", prompt_id="retry")["id"] == "retry"  # a retried POST
    with pytest.raises(BridgeError) as error:
        client.send("something else", prompt_id="retry")
    assert error.value.status_code == 409
    wait_stable(client)
    assert [p["id"] for p in client.prompts()] == ["retry"]
    assert outputs(client).count("Done: once") == 1


def test_wrong_token_is_refused(runner: BridgeRunner) -> None:
    client = runner.start()
    wrong = BridgeClient(client.base_url, "not-the-token")
    try:
        for call in (wrong.status, wrong.messages, wrong.prompts, lambda: wrong.log(0)):
            with pytest.raises(BridgeError) as error:
                call()
            assert error.value.status_code == 401
        with pytest.raises(BridgeError) as error:
            wrong.send("hi")
        assert error.value.status_code == 401
        # what it says, out of its problem+json
        assert str(error.value) == "bridge answered 401: missing or wrong bearer token"
        assert error.value.detail == "missing or wrong bearer token"
        assert wrong.health() == {"ok": True}  # health needs no token
    finally:
        wrong.close()
    response = httpx.get(f"{client.base_url}/status", timeout=HTTP_TIMEOUT)
    assert response.status_code == 401 and response.json()["status"] == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in runner.stderr_path.read_text()


def test_bad_requests_are_refused(runner: BridgeRunner) -> None:
    client = runner.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=client.base_url, headers=headers, timeout=HTTP_TIMEOUT) as http:
        # not as documented: agentapi's 422 (see test_bridge_agentapi.py for the shapes)
        for body in ({"content": ""}, {"content": "x", "type": "shout"}, {"nope": 1}, [1]):
            response = http.post("/message", json=body)
            assert response.status_code == 422, body
            assert response.json()["detail"] and response.json()["errors"]
        # not JSON at all: huma's 400
        assert http.post("/message", content=b"{not json").status_code == 400
        # an unpaired surrogate, as only a JSON escape can send it: a clear 422 (the
        # request failed without an answer)
        for raw in (
            b'{"content": "x \\ud800", "type": "user"}',
            b'{"content": "x", "type": "user", "id": "\\udc00"}',
        ):
            response = http.post("/message", content=raw)
            assert response.status_code == 422, raw
            assert "unpaired surrogate at position" in response.json()["detail"]
        # a lone surrogate echoed back in an error stays a valid answer
        response = http.post("/message", content=b'{"content": "x", "type": "\\ud800"}')
        assert response.status_code == 422 and response.json()["errors"][0]["value"] == "\ud800"
        assert http.get("/dockyard/log", params={"after": "x"}).status_code == 422
        assert http.get("/dockyard/log", params={"state": "napping"}).status_code == 422
        assert http.get("/dockyard/log?state=").status_code == 422
        assert http.get("/nowhere").status_code == 404
        assert http.get("/message").status_code == 405
        # any other method: a 405 naming what is allowed (http.server's HTML 501 before)
        for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"):
            response = http.request(method, "/status")
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET" and response.json()["status"] == 405
        assert http.request("DELETE", "/nowhere").status_code == 404
        head = http.head("/messages")
        assert head.status_code == 405 and head.content == b""
        # the same connection still works after the refusals
        assert http.get("/status").status_code == 200


def test_events_stream_status_changes(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    seen: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{client.base_url}/events", headers=headers, timeout=HTTP_TIMEOUT
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        sent = False
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[len("data: ") :])))
                if not sent:
                    client.send("via events")
                    sent = True
                elif event == "status_change" and seen[-1][1]["status"] == "stable":
                    break
    assert seen[0] == (
        "status_change",
        {"status": "stable", "agent_type": "custom", "state": "idle"},
    )
    states = [data["state"] for name, data in seen if name == "status_change"]
    assert states[-2:] == ["working", "idle"]
    updates = [data for name, data in seen if name == "message_update"]
    assert any("Done: via events" in data["message"] for data in updates)
    assert any(u["role"] == "user" and u["message"] == "via events" for u in updates)


def test_restart_continues_without_rerunning(runner: BridgeRunner) -> None:
    resume = runner.agent_command("--resume")
    client = runner.start(initial_prompt="first run", resume_command=resume)
    wait_stable(client)
    client.send("/sleep 3", prompt_id="long")
    wait_until(lambda: client.prompts()[-1]["state"] == "taken", 30, "the long prompt to be taken")
    client.send("queued across restart", prompt_id="later")
    before = entries(client)
    assert runner.stop() == 0

    client = runner.start(initial_prompt="first run", resume_command=resume)
    wait_stable(client)
    log = entries(client)
    seqs = [e["seq"] for e in log]
    assert seqs == list(range(1, len(log) + 1))  # seq continues: no gap, no duplicate
    assert log[: len(before)] == before
    lines = [e["content"] for e in log if e["type"] == "output"]
    assert any(line.startswith("Resumed (previous context: 2 inputs)") for line in lines)
    inputs = [e["content"] for e in log if e["type"] == "input"]
    assert inputs == ["first run", "/sleep 3", "queued across restart"]
    assert "Done: queued across restart" in lines
    prompts = client.prompts()
    assert [(p["id"], p["state"]) for p in prompts][1:] == [("long", "taken"), ("later", "taken")]
    assert len(prompts) == 3  # the initial prompt was not queued again
    assert os.path.exists(runner.state_dir / "prompts.json")


def test_client_reports_unreachable() -> None:
    client = BridgeClient("http://127.0.0.1:9", TOKEN, timeout=1)
    try:
        with pytest.raises(BridgeUnreachable):
            client.status()
    finally:
        client.close()


# -- the setup script ------------------------------------------------------------------------


def setup_lines(log: list[dict[str, Any]]) -> list[str]:
    return [e["content"] for e in log if e.get("source") == "setup"]


def index_of(log: list[dict[str, Any]], content: str) -> int:
    return next(i for i, e in enumerate(log) if e["content"] == content)


def saved_transcript(runner: BridgeRunner) -> list[dict[str, Any]]:
    path = runner.state_dir / "transcript.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies do not count)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name may hold spaces: the fields after it are fixed
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_setup_runs_before_the_agent(runner: BridgeRunner) -> None:
    script = "echo preparing; echo ready > $PWD/setup-marker.txt; sleep 0.5; echo setup done"
    client = runner.start(setup_script=script, initial_prompt="after setup")
    status = wait_stable(client)
    assert status["dockyard"]["setup"] == {"state": "done", "exit_code": 0}
    assert status["dockyard"]["exit_code"] is None
    log = entries(client)
    assert setup_lines(log) == ["preparing", "setup done"]
    ready = index_of(log, "Scripted agent ready.")
    assert index_of(log, "preparing") < index_of(log, "setup done") < ready
    assert ready < index_of(log, "after setup") < index_of(log, "Done: after setup")
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert (runner.workdir / "setup-marker.txt").read_text() == "ready\n"
    state = json.loads((runner.state_dir / "state.json").read_text())
    assert state["setup_done"] is True and state["agent_started"] is True
    # the setup is in the container log, but it is not the agent's turn in the conversation
    assert b"preparing" in (runner.root / "bridge-1.out").read_bytes()
    messages = client.messages()
    assert [m["role"] for m in messages] == ["agent", "user", "agent"]
    assert messages[0]["content"].startswith("Scripted agent ready.")


def test_setup_output_is_visible_live(runner: BridgeRunner) -> None:
    script = "echo first line; printf 'half a line'; sleep 1.5; echo; echo last line"
    client = runner.start(setup_script=script, initial_prompt="queued first")
    reply = client.log(after=0, wait=5)
    assert reply["status"]["dockyard"]["state"] == "setup"
    assert reply["status"]["status"] == "running"
    assert reply["status"]["dockyard"]["setup"] == {"state": "running", "exit_code": None}
    assert [e["content"] for e in reply["entries"]] == ["first line"]
    assert reply["entries"][0]["source"] == "setup"
    # an unfinished line shows up once the script is quiet for a moment
    reply = client.log(after=reply["last_seq"], wait=5)
    assert [(e["content"], e.get("partial")) for e in reply["entries"]] == [("half a line", True)]
    # prompts wait for the agent; keystrokes have nowhere to go yet
    client.send("queued second", prompt_id="second")
    with pytest.raises(BridgeError) as error:
        client.send("x", type="raw")
    assert error.value.status_code == 409
    status = client.status()
    assert status["dockyard"]["state"] == "setup"
    assert status["dockyard"]["queued_prompts"] == 2
    assert status["dockyard"]["agent_pid"] is None
    wait_stable(client)
    log = entries(client)
    assert setup_lines(log) == ["first line", "half a line", "last line"]
    inputs = [e["content"] for e in log if e["type"] == "input"]
    assert inputs == ["queued first", "queued second"]
    assert index_of(log, "last line") < index_of(log, "Scripted agent ready.")
    assert index_of(log, "Done: queued first") < index_of(log, "Done: queued second")


def test_failing_setup_never_starts_the_agent(runner: BridgeRunner) -> None:
    client = runner.start(setup_script="echo about to fail; exit 7", initial_prompt="never")
    status = wait_until(
        lambda: (s := client.status())["dockyard"]["state"] == "setup_failed" and s, 30, "failure"
    )
    dockyard = status["dockyard"]
    assert status["status"] == "running"
    assert dockyard["exit_code"] == 7 and dockyard["agent_pid"] is None
    assert dockyard["setup"] == {"state": "failed", "exit_code": 7}
    with pytest.raises(BridgeError) as error:
        client.send("anyone there?")
    assert error.value.status_code == 409
    assert "setup failed (exit code 7); the agent was not started" in str(error.value)
    time.sleep(0.5)  # an agent started by mistake would have printed by now
    assert outputs(client) == ["about to fail"]
    assert client.log(after=0)["status"]["dockyard"]["setup"]["exit_code"] == 7
    assert client.health() == {"ok": True}
    assert runner.stop() == 0
    assert json.loads((runner.state_dir / "state.json").read_text())["setup_done"] is False


def test_restart_after_setup_does_not_rerun_it(runner: BridgeRunner) -> None:
    script = "echo run >> setup-count.txt; echo counted"
    resume = runner.agent_command("--resume")
    client = runner.start(setup_script=script, resume_command=resume, initial_prompt="one")
    wait_stable(client)
    assert runner.stop() == 0

    client = runner.start(setup_script=script, resume_command=resume, initial_prompt="one")
    status = wait_stable(client)
    assert status["dockyard"]["setup"] == {"state": "done", "exit_code": 0}
    assert (runner.workdir / "setup-count.txt").read_text() == "run\n"
    lines = outputs(client)
    assert lines.count("counted") == 1
    assert any(line.startswith("Resumed (previous context: 1 inputs)") for line in lines)
    assert "resumed: True; setup: done" in runner.stderr_path.read_text()


def test_restart_after_failed_setup_reruns_it(runner: BridgeRunner) -> None:
    script = "test -f ok-to-setup || { echo not yet; exit 3; }; echo setup ok"
    resume = runner.agent_command("--resume")
    client = runner.start(setup_script=script, resume_command=resume, initial_prompt="go")
    wait_until(lambda: state_of(client) == "setup_failed", 30, "the setup to fail")
    assert client.status()["dockyard"]["exit_code"] == 3
    assert runner.stop() == 0

    (runner.workdir / "ok-to-setup").touch()
    client = runner.start(setup_script=script, resume_command=resume, initial_prompt="go")
    status = wait_stable(client)
    assert status["dockyard"]["setup"] == {"state": "done", "exit_code": 0}
    log = entries(client)
    assert setup_lines(log) == ["not yet", "setup ok"]
    lines = [e["content"] for e in log if e["type"] == "output"]
    # the agent never ran before: it starts afresh, not resumed, and gets the initial prompt
    assert "Scripted agent ready." in lines
    assert not any(line.startswith("Resumed") for line in lines)
    assert index_of(log, "setup ok") < index_of(log, "Scripted agent ready.")
    assert [e["content"] for e in log if e["type"] == "input"] == ["go"]
    assert "Done: go" in lines


def test_sigterm_during_setup_stops_the_script(runner: BridgeRunner) -> None:
    script = "echo $$ > setup.pid; echo started; sleep 30; echo never"
    client = runner.start(setup_script=script)
    reply = client.log(after=0, wait=5)
    assert [e["content"] for e in reply["entries"]] == ["started"]
    pid = int((runner.workdir / "setup.pid").read_text())
    started = time.monotonic()
    assert runner.stop() == 0
    assert time.monotonic() - started < 5
    assert live_in_group(pid) == []  # the shell and its sleep are gone
    log = saved_transcript(runner)
    assert [e["content"] for e in log] == ["started"]  # and the agent never started
    state = json.loads((runner.state_dir / "state.json").read_text())
    assert state["setup_done"] is False and state["agent_started"] is False


# -- stopping --------------------------------------------------------------------------------


def test_sigterm_reports_stopping_not_exited(runner: BridgeRunner) -> None:
    # the agent ignores SIGTERM, so the bridge spends its 2 s grace in `stopping`
    command = ["sh", "-c", 'trap "" TERM; exec "$@"', "agent", *runner.agent_command()]
    client = runner.start(agent_command=command)
    status = wait_stable(client)
    replies: list[dict[str, Any]] = []
    poll = threading.Thread(
        target=lambda: replies.append(client.log(after=status["dockyard"]["last_seq"], wait=10)),
    )
    poll.start()
    time.sleep(0.3)  # the long-poll is in flight
    assert runner.proc is not None
    runner.proc.send_signal(signal.SIGTERM)
    poll.join(timeout=30)
    assert replies and replies[0]["status"]["dockyard"]["state"] == "stopping"
    status = client.status()
    assert status["status"] == "running"
    assert status["dockyard"]["state"] == "stopping"
    assert status["dockyard"]["agent_pid"] is not None  # still alive, ignoring the TERM
    with pytest.raises(BridgeError) as error:
        client.send("too late")
    assert error.value.status_code == 409 and "stopping" in str(error.value)
    # a long-poll on `stopping` is answered when the bridge shuts down, after the KILL; the
    # bridge may exit before that answer is out, but an answer must still say `stopping`
    final: list[dict[str, Any]] = []

    def poll_stopping() -> None:
        with contextlib.suppress(BridgeUnreachable):
            final.append(
                client.log(after=status["dockyard"]["last_seq"], wait=10, state="stopping")
            )

    poll = threading.Thread(target=poll_stopping)
    poll.start()
    poll.join(timeout=30)
    if final:
        assert final[0]["status"]["dockyard"]["state"] == "stopping"
        assert final[0]["status"]["dockyard"]["exit_code"] == 137
    assert runner.proc.wait(timeout=10) == 0


# -- what a prompt types: control characters stay text, long lines arrive whole ---------


def input_contents(client: BridgeClient) -> list[str]:
    return [e["content"] for e in entries(client) if e["type"] == "input"]


def test_control_characters_in_a_prompt_never_act_as_keys(runner: BridgeRunner) -> None:
    client = runner.start()
    wait_stable(client)
    # Ctrl-U would erase "text" and leave the hidden command as the line the agent reads
    client.send("text\u0015/write pwned.txt hacked")
    wait_stable(client)
    assert not (runner.workdir / "pwned.txt").exists()
    assert "Done: text\u2415/write pwned.txt hacked" in outputs(client)
    # Ctrl-D would end the agent's input; Ctrl-C, Ctrl-Z and Ctrl-\ signal it, Ctrl-V
    # quotes the next key, Ctrl-W and DEL erase, ESC and the C1 CSI start sequences
    client.send("\u0004")
    client.send("a\x03b\x1ac\x1cd\x16e\x17f\x7fg\x1b[2Jh\x9b2Ji\x00j")
    wait_stable(client)
    status = client.status()["dockyard"]
    assert status["state"] == "idle" and status["exit_code"] is None
    out = outputs(client)
    assert "Done: \u2404" in out
    assert "Done: a\u2403b\u241ac\u241cd\u2416e\u2417f\u2421g\u241b[2Jh\ufffd2Ji\u2400j" in out
    # the transcript shows what the agent was given, not what was sent
    assert input_contents(client) == [
        "text\u2415/write pwned.txt hacked",
        "\u2404",
        "a\u2403b\u241ac\u241cd\u2416e\u2417f\u2421g\u241b[2Jh\ufffd2Ji\u2400j",
    ]
    client.send("/write after.txt still here")
    wait_stable(client)
    assert (runner.workdir / "after.txt").read_text() == "still here\n"


def test_the_transcript_shows_a_multi_line_prompt_as_the_agent_got_it(
    runner: BridgeRunner,
) -> None:
    client = runner.start()
    wait_stable(client)
    client.send("first\nsecond\r\nthird")
    wait_stable(client)
    # line mode: a newline would submit early, so the lines were typed as one
    assert "Done: first second third" in outputs(client)
    assert input_contents(client) == ["first second third"]


@pytest.mark.parametrize(
    "line_bytes",
    [
        4000,  # under the canonical limit: typed as it is
        4095,  # the most a canonical-mode line holds: still typed as it is
        4096,  # one more: in pieces
        100_000,
    ],
)
def test_a_long_line_reaches_a_line_mode_agent_whole(runner: BridgeRunner, line_bytes: int) -> None:
    # the scripted agent reads in canonical mode, whose line buffer holds 4095 bytes
    client = runner.start()
    wait_stable(client)
    command = "/write big.txt "
    text = "0123456789abcdé" * (line_bytes // 16 + 1)  # two-byte characters among them
    while len((command + text).encode()) > line_bytes:
        text = text[:-1]
    text += "x" * (line_bytes - len((command + text).encode()))
    assert len((command + text).encode()) == line_bytes
    client.send(command + text)
    wait_stable(client)
    assert (runner.workdir / "big.txt").read_text() == text + "\n"
    assert input_contents(client) == [command + text]
    assert [p["state"] for p in client.prompts()] == ["taken"]


def test_a_line_too_long_for_the_terminal_fails_visibly(runner: BridgeRunner) -> None:
    # with no end-of-file key a canonical-mode line cannot be handed over in pieces
    agent = " ".join(runner.agent_command())
    client = runner.start(agent_command=["sh", "-c", f"stty eof undef; exec {agent}"])
    wait_stable(client)
    client.send("/write big.txt " + "x" * 5000, prompt_id="big")
    client.send("/write small.txt fine", prompt_id="small")
    wait_stable(client)
    assert not (runner.workdir / "big.txt").exists()
    assert (runner.workdir / "small.txt").read_text() == "fine\n"
    big, small = client.prompts()
    assert (big["id"], big["state"], small["state"]) == ("big", "failed", "taken")
    assert big["reason"] == (
        "the agent reads lines in canonical mode, which holds at most 4095 bytes; "
        "this prompt has a line of 5015 bytes"
    )
    assert input_contents(client) == ["/write small.txt fine"]  # never typed cut short


def test_prompt_last_is_idle_at_the_prompt_without_the_quiet_time(runner: BridgeRunner) -> None:
    # a quiet time far longer than the wait: only the prompt on screen can make it idle
    # (prompt_last), both before the first prompt and after the answer
    client = runner.start(
        initial_prompt="first", profile={"quiet_ms": 120_000, "prompt_last": True}
    )
    wait_stable(client)
    assert [p["state"] for p in client.prompts()] == ["taken"]
    assert outputs(client)[-2:] == ["Done: first", "> "]  # the prompt line is in already
    client.send("second")
    wait_until(lambda: "Done: second" in outputs(client), 30, "the answer")
    wait_stable(client)
