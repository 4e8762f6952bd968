"""The launcher's pieces: an agent started before the bridge is built, under a real pty."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provisioner.bridge.package import PYTHON_FLAGS, build_zipapp
from provisioner.bridge.runtime.agent import AgentProcess
from provisioner.bridge.runtime.launch import bind, config_path


class Collected:
    """What a bridge would be handed: output with its read times, then the exit."""

    def __init__(self) -> None:
        self.output: list[tuple[bytes, float]] = []
        self.exit: tuple[int, float] | None = None
        self.done = threading.Event()

    def on_output(self, data: bytes, at: float) -> None:
        self.output.append((data, at))

    def on_exit(self, code: int, at: float) -> None:
        self.exit = (code, at)
        self.done.set()

    @property
    def text(self) -> str:
        return b"".join(d for d, _ in self.output).decode()


def started(argv: list[str]) -> AgentProcess:
    agent = AgentProcess(argv, "/", {"PATH": "/usr/bin:/bin"}, 80, 24)
    agent.start()
    return agent


def test_output_read_before_attach_is_handed_on_with_its_read_time() -> None:
    agent = started(["sh", "-c", 'echo early; read line; echo "got $line"; exit 3'])
    try:
        assert agent.wait_first_output(30)
        time.sleep(0.2)  # the bridge is still importing
        attached_at = time.time()
        got = Collected()
        agent.attach(got.on_output, got.on_exit)
        assert "early" in got.text
        # stamped when read, not when handed on: the quiet time counts from then
        assert got.output[0][1] <= attached_at - 0.15
        agent.write(b"late\r")
        assert got.done.wait(30)
        assert "got late" in got.text
        assert got.exit is not None and got.exit[0] == 3
        assert [at for _, at in got.output] == sorted(at for _, at in got.output)
    finally:
        agent.terminate(grace_s=0.5)


def test_an_exit_before_attach_is_handed_on() -> None:
    agent = started(["sh", "-c", "echo bye; exit 7"])
    assert agent.wait(30)  # exited and recorded, nobody attached yet
    got = Collected()
    agent.attach(got.on_output, got.on_exit)
    assert "bye" in got.text
    assert got.exit is not None and got.exit[0] == 7
    assert got.exit[1] >= got.output[-1][1]


def test_a_silent_agent_does_not_hold_the_launcher_up() -> None:
    agent = started(["sleep", "5"])
    try:
        began = time.monotonic()
        assert not agent.wait_first_output(0.1)
        assert time.monotonic() - began < 1.0
    finally:
        agent.terminate(grace_s=0.5)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--config", "/opt/dockyard/bridge.json"], "/opt/dockyard/bridge.json"),
        (["--config=/x.json"], "/x.json"),
        ([], None),
        (["--config"], None),
        (["--config="], None),
        (["--help"], None),
        (["--config", "a", "b"], None),
    ],
)
def test_config_argument(argv: list[str], expected: str | None) -> None:
    assert config_path(argv) == expected


def test_bind_listens_before_anyone_serves() -> None:
    listener = bind("127.0.0.1", 0)
    try:
        port = listener.getsockname()[1]
        # a client connects while nothing accepts yet: it waits in the backlog
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"ping")
                assert conn.recv(4) == b"ping"
        with pytest.raises(OSError):
            bind("127.0.0.1", port)  # taken: the launcher says so and exits 1
    finally:
        listener.close()


def test_what_runs_before_the_agent_starts_imports_nothing_heavy(tmp_path: Path) -> None:
    # The launcher starts the agent right after its own imports: every module it pulls in
    # delays the agent's prompt, hence the workspace's readiness. The heavy ones (the
    # emulator, the HTTP server, dataclasses' inspect/ast, subprocess) come after the fork,
    # and those a normal start never needs (dataclasses, subprocess, uuid) not at all.
    zipapp = build_zipapp(tmp_path)

    def loaded(*modules: str, then: str = "") -> set[str]:
        code = (
            f"import sys; sys.path.insert(0, {str(zipapp)!r}); import {', '.join(modules)}; "
            f"{then or 'pass'}; print(' '.join(sorted(sys.modules)))"
        )
        argv = [sys.executable, *PYTHON_FLAGS, "-c", code]
        return set(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())

    before_fork = loaded("dockyard_bridge.launch")
    assert "dockyard_bridge.launch" in before_fork
    heavy = {
        "dataclasses", "inspect", "subprocess", "pyte", "http.server", "uuid",
        "dockyard_bridge.app", "dockyard_bridge.http", "dockyard_bridge.transcript",
        "dockyard_bridge.activity", "dockyard_bridge.screen",
    }  # fmt: skip
    assert not heavy & before_fork, sorted(heavy & before_fork)
    serving = loaded("dockyard_bridge.launch", then="dockyard_bridge.launch.import_serving()")
    assert {"dockyard_bridge.app", "dockyard_bridge.http", "http.server"} <= serving
    # nor what a plain-text agent never needs: the emulator (until output that is not
    # plain text), OpenSSL (no HTTPS client here; hmac's compare is taken without it)
    unneeded = {"dataclasses", "inspect", "subprocess", "uuid", "pyte", "wcwidth", "ssl"}
    unneeded |= {"_ssl", "hmac", "_hashlib"}
    assert not unneeded & serving, sorted(unneeded & serving)
    # and ssl still imports afterwards, should anything in the process want it
    assert "ssl" in loaded(
        "dockyard_bridge.launch", then="dockyard_bridge.launch.import_serving(); import ssl"
    )


def test_before_the_agent_starts_only_what_cannot_be_made_again_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an fsync is 1-5 ms on a workspace's volume, and the agent waits for each: files made
    # again from what is at hand when lost (the token from the environment, the report
    # key, a first run state) are not synced; the state dir's owner is
    import os

    from provisioner.bridge.runtime import statedir
    from provisioner.bridge.runtime.config import parse_config
    from provisioner.bridge.runtime.launch import prepare_reports, read_token

    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(
        statedir.os,
        "fsync",
        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)),
    )
    state = statedir.StateDir(tmp_path / "state", "task-1")
    state.load_run_state()
    config = parse_config({"agent_command": ["a"], "token_file": str(tmp_path / "none")})
    config, token = read_token(config, state, {"DOCKYARD_BRIDGE_TOKEN": "t0ken"})
    prepare_reports(state)
    assert token == "t0ken" and (state.root / "token").read_text() == "t0ken\n"
    assert len(state.report_key()) == 64
    assert [Path(p).name.split(".")[1] for p in synced] == [statedir.OWNER_FILE]
