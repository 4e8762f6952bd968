"""Unit tests for the setup script's pure logic and its runner."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from provisioner.bridge.runtime.activity import (
    EXITED,
    IDLE,
    SETUP,
    SETUP_FAILED,
    STARTING,
    STOPPING,
)
from provisioner.bridge.runtime.setup import (
    CANNOT_START,
    DONE,
    FAILED,
    NONE,
    RUNNING,
    RunState,
    SetupScript,
    bridge_state,
    exit_code_of_returncode,
    resolve_shell,
    setup_argv,
)
from tests.polling import wait_until


def test_resolve_shell_prefers_the_configured_then_bash_then_sh() -> None:
    assert resolve_shell(["/bin/zsh", "-c"], exists=lambda p: True) == ["/bin/zsh", "-c"]
    assert resolve_shell(None, exists=lambda p: p == "/bin/bash") == ["/bin/bash", "-c"]
    assert resolve_shell(None, exists=lambda p: False) == ["/bin/sh", "-c"]
    assert resolve_shell([], exists=lambda p: False) == ["/bin/sh", "-c"]


def test_setup_argv_passes_the_script_as_one_argument() -> None:
    argv = setup_argv(["/bin/sh", "-c"], "echo a; echo b")
    assert argv == ["/bin/sh", "-c", "echo a; echo b", "dockyard-setup"]


@pytest.mark.parametrize(
    ("agent", "setup", "stopping", "expected"),
    [
        (STARTING, RUNNING, False, SETUP),
        (STARTING, FAILED, False, SETUP_FAILED),
        (IDLE, DONE, False, IDLE),
        (IDLE, NONE, False, IDLE),
        (EXITED, DONE, False, EXITED),
        (EXITED, NONE, True, STOPPING),  # a stop asked for is not an exit by itself
        (STARTING, RUNNING, True, STOPPING),
        (STARTING, FAILED, True, STOPPING),
    ],
)
def test_bridge_state(agent: str, setup: str, stopping: bool, expected: str) -> None:
    assert bridge_state(agent, setup, stopping) == expected


def test_exit_code_of_returncode() -> None:
    assert exit_code_of_returncode(0) == 0
    assert exit_code_of_returncode(7) == 7
    assert exit_code_of_returncode(-15) == 143


def test_run_state_decides_whether_setup_runs() -> None:
    fresh = RunState()
    assert fresh.needs_setup("make") and fresh.setup_phase("make") == RUNNING
    assert not fresh.needs_setup(None) and fresh.setup_phase(None) == NONE
    failed = RunState(setup_done=False, setup_exit_code=3)
    assert failed.needs_setup("make")  # a failed setup runs again
    done = RunState(setup_done=True, setup_exit_code=0, agent_started=True)
    assert not done.needs_setup("make") and done.setup_phase("make") == DONE
    assert done.setup_phase(None) == DONE
    # an agent that already ran (a state dir from before setup existed) is not set up anew
    legacy = RunState(agent_started=True)
    assert not legacy.needs_setup("make") and legacy.setup_phase("make") == NONE


def test_run_state_round_trip_and_validation() -> None:
    state = RunState(setup_done=True, setup_exit_code=0, agent_started=True)
    assert RunState.from_state(state.to_state()) == state
    assert state.to_state()["version"] == 1
    assert RunState.from_state({}) == RunState()
    for bad in ([], {"setup_done": "yes"}, {"setup_exit_code": "7"}, {"setup_exit_code": True}):
        with pytest.raises(ValueError):
            RunState.from_state(bad)


class Collector:
    """Callbacks for a SetupScript, recording what it hands on."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.quiet = 0

    def output(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_quiet(self) -> None:
        self.quiet += 1

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode()


def make_script(tmp_path: Path, script: str, collector: Collector) -> SetupScript:
    env = dict(os.environ, SETUP_VAR="from env")
    argv = setup_argv(["/bin/sh", "-c"], script)
    return SetupScript(argv, str(tmp_path), env, collector.output, collector.on_quiet)


def test_setup_script_merges_output_and_reports_its_code(tmp_path: Path) -> None:
    collector = Collector()
    script = 'echo out; echo err >&2; echo "$SETUP_VAR in $PWD as $0"; read x; exit 5'
    setup = make_script(tmp_path, script, collector)
    assert setup.run() == 5
    assert collector.text == f"out\nerr\nfrom env in {tmp_path} as dockyard-setup\n"
    assert setup.wait(0)


def test_setup_script_reports_quiet_periods(tmp_path: Path) -> None:
    collector = Collector()
    assert make_script(tmp_path, "printf half; sleep 0.7; echo done", collector).run() == 0
    assert collector.quiet >= 1 and collector.text == "halfdone\n"


def test_setup_script_that_cannot_start(tmp_path: Path) -> None:
    collector = Collector()
    env = dict(os.environ)
    missing = SetupScript(
        ["/no/such/shell", "-c", "true"], str(tmp_path), env, collector.output, collector.on_quiet
    )
    assert missing.run() == CANNOT_START
    assert "cannot start the setup script" in collector.text
    bad_cwd = SetupScript(
        ["/bin/sh", "-c", "true"], str(tmp_path / "nope"), env, collector.output, lambda: None
    )
    assert bad_cwd.run() == CANNOT_START


def test_setup_script_terminate_stops_the_group(tmp_path: Path) -> None:
    collector = Collector()
    setup = make_script(tmp_path, "echo started; sleep 30 & sleep 30; echo never", collector)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(setup.run()))
    thread.start()
    wait_until(lambda: "started" in collector.text, what="the script to start")
    started = time.monotonic()
    setup.terminate(grace_s=20.0)
    thread.join(timeout=30)
    # the TERM ended the group (143), long before the grace ran out and a KILL would have
    assert codes == [143] and time.monotonic() - started < 15
    assert "never" not in collector.text
    # terminated before it ran: it never starts
    late = make_script(tmp_path, "echo should not run", collector)
    late.terminate()
    assert late.run() == 143 and "should not run" not in collector.text


def test_oom_kill_counter_from_cgroup_v1_and_v2(tmp_path: Path) -> None:
    from provisioner.bridge.runtime.cgroup import oom_kills, parse_oom_kills

    assert parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert parse_oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n") == 1
    assert parse_oom_kills("nothing here\n") is None
    v2 = tmp_path / "memory.events"
    v2.write_text("oom 0\noom_kill 0\n")
    assert oom_kills((tmp_path / "missing", v2)) == 0
    assert oom_kills((tmp_path / "missing",)) is None


def test_pids_limit_counter_from_cgroup(tmp_path: Path) -> None:
    from provisioner.bridge.runtime.cgroup import parse_pids_max_events, pids_limit_hits

    assert parse_pids_max_events("max 3\n") == 3
    assert parse_pids_max_events("nothing\n") is None
    events = tmp_path / "pids.events"
    events.write_text("max 0\n")
    assert pids_limit_hits((tmp_path / "missing", events)) == 0


def test_exit_message_names_the_limit_that_was_hit() -> None:
    from provisioner.engine.follower import exit_message

    assert exit_message(3, {}) == "agent exited with code 3"
    assert "OOM-killed" in exit_message(137, {"oom_kills": 1})
    assert "OOM-killed" in exit_message(137, {}, oom_killed=True)
    message = exit_message(1, {"pids_limit_hits": 4, "oom_kills": 0})
    assert "process limit (4 process starts refused)" in message
