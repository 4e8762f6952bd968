"""Commands, sessions and port streams through the bridge (what the Swarm backend uses in
place of `docker exec`): the bridge zipapp runs on the host, the server's side is
provisioner/backends/bridge_exec.py."""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisioner.backends.bridge_exec import BridgeExec
from provisioner.bridge.runtime import commands
from provisioner.errors import BackendError
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.unit.test_bridge_local import TOKEN, BridgeRunner, zipapp  # noqa: F401


@pytest.fixture(scope="module")
def bridge(zipapp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeRunner]:  # noqa: F811
    """One bridge for the module: its agent is beside the point here. Started with
    SIGHUP ignored (as under nohup): its commands are hung up at their timeout all the
    same (test_run_bounds_output_and_time)."""
    runner = BridgeRunner(zipapp, tmp_path_factory.mktemp("bridge-exec"))
    try:
        runner.start(hangups_ignored=True)
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def via(bridge: BridgeRunner) -> BridgeExec:
    assert bridge.client is not None
    return BridgeExec(bridge.client.base_url, TOKEN)


def test_run_passes_argv_verbatim_not_through_a_shell(
    via: BridgeExec, bridge: BridgeRunner
) -> None:
    odd = "a b;$(touch pwned)`id`\t\x1b[31m'\"|&>x\n"
    code, out = via.run(["printf", "%s", odd], timeout=10)
    assert (code, out) == (0, odd)
    assert not (bridge.workdir / "pwned").exists() and not (bridge.workdir / "x").exists()
    code, out = via.run(["sh", "-c", 'echo "$PWD $FOO"; exit 3'], timeout=10, env={"FOO": "bar"})
    assert code == 3 and out == f"{bridge.workdir} bar\n"
    # the bridge's own variables never reach a command
    code, out = via.run(["env"], timeout=10)
    assert "DOCKYARD_BRIDGE_TOKEN=" not in out and TOKEN not in out


def test_run_bounds_output_and_time(via: BridgeExec, bridge: BridgeRunner) -> None:
    assert bridge.client is not None
    answer = httpx.post(
        f"{bridge.client.base_url}/dockyard/exec",
        json={"argv": ["head", "-c", str(3 * commands.MAX_OUTPUT), "/dev/zero"]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=HTTP_TIMEOUT,
    ).json()
    assert answer["exit_code"] == 0 and answer["truncated"] is True
    assert len(answer["output"]) == commands.MAX_OUTPUT
    code, _ = via.run(["sleep", "30"], timeout=0.5)
    assert code == 128 + 1  # hung up (SIGHUP) at its timeout
    code, out = via.run(["/no/such/program"], timeout=5)
    assert code == 127 and "cannot run" in out
    # a program left running in the background holds the output open: the answer comes
    # once the command itself has ended all the same (as does a session's)
    background = ["sh", "-c", "setsid sleep 30 & echo started"]
    assert via.run(background, timeout=20) == (0, "started\n")
    assert via.gather(background, timeout=20) == (0, "started\n")


def test_requests_without_the_token_or_out_of_bounds_are_refused(bridge: BridgeRunner) -> None:
    assert bridge.client is not None
    base = bridge.client.base_url
    good = {"Authorization": f"Bearer {TOKEN}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        assert (
            httpx.post(
                f"{base}/dockyard/exec",
                json={"argv": ["id"]},
                headers=headers,
                timeout=HTTP_TIMEOUT,
            ).status_code
            == 401
        )
        assert (
            httpx.get(f"{base}/dockyard/session", headers=headers, timeout=HTTP_TIMEOUT).status_code
            == 401
        )
        assert (
            httpx.get(
                f"{base}/dockyard/connect?port=1", headers=headers, timeout=HTTP_TIMEOUT
            ).status_code
            == 401
        )
    with pytest.raises(BackendError, match="refused the server's token"):
        BridgeExec(base, "wrong").open_session(["id"], tty=False)
    for body, status in [
        ({"argv": []}, 422),
        ({"argv": "id"}, 422),
        ({"argv": ["id", "a\x00b"]}, 422),
        ({"argv": ["x"] * (commands.MAX_ARGS + 1)}, 422),
        ({"argv": ["x" * (commands.MAX_ARG_BYTES + 1)]}, 422),
        ({"argv": ["id"], "env": {"A=B": "1"}}, 422),
        ({"argv": ["id"], "timeout": 0}, 422),
        ({"argv": ["id"], "timeout": 10**9}, 422),
        ({"argv": ["id"], "shell": "id"}, 422),
        ({"argv": ["id"], "root": True}, 403),
    ]:
        answer = httpx.post(f"{base}/dockyard/exec", json=body, headers=good, timeout=HTTP_TIMEOUT)
        assert answer.status_code == status, (body, answer.text)
    huge = httpx.post(
        f"{base}/dockyard/exec",
        content=b'{"argv": ["' + b"x" * (2 << 20) + b'"]}',
        headers={**good, "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )
    assert huge.status_code == 413
    # a session without the upgrade, and ports that are not the workspace's to give
    assert (
        httpx.get(f"{base}/dockyard/session", headers=good, timeout=HTTP_TIMEOUT).status_code == 426
    )
    for port, status in [("0", 422), ("70000", 422), ("x", 422), ("", 422)]:
        answer = httpx.get(
            f"{base}/dockyard/connect?port={port}", headers=good, timeout=HTTP_TIMEOUT
        )
        assert answer.status_code == status, port
    own = base.rsplit(":", 1)[1]
    assert (
        httpx.get(
            f"{base}/dockyard/connect?port={own}", headers=good, timeout=HTTP_TIMEOUT
        ).status_code
        == 403
    )


def _drain(session: object) -> tuple[bytes, bytes]:
    out, err = b"", b""
    while True:
        stream, data = session.read()  # type: ignore[attr-defined]
        if not stream:
            return out, err
        if stream == 1:
            out += data
        else:
            err += data


def test_session_with_pipes_streams_input_and_output(via: BridgeExec) -> None:
    session = via.open_session(["sh", "-c", "cat; echo oops >&2; exit 5"], tty=False)
    try:
        payload = b"x" * (3 * commands.MAX_FRAME + 7)  # more than a frame: sent in pieces
        session.write(payload)
        session.close_input()
        out, err = _drain(session)
        assert out == payload and err == b"oops\n"
        assert session.wait(30) == 5
    finally:
        session.close()


def test_session_under_a_terminal_resizes(via: BridgeExec) -> None:
    session = via.open_session(["sh"], tty=True, size=(30, 100))
    try:
        session.write(b"stty size; tty -s && echo TTY\n")
        seen = b""

        def saw(text: bytes) -> bool:
            nonlocal seen
            while text not in seen:
                stream, data = session.read()
                if not stream:
                    return False
                seen += data
            return True

        assert saw(b"30 100") and saw(b"TTY")
        session.resize(40, 120)
        session.write(b"stty size\n")
        assert saw(b"40 120")
        session.write(b"exit 7\n")
        assert session.wait(30) == 7
    finally:
        session.close()
    for argv, said in ((["id", "a\x00b"], "NUL"), ([], "argv")):
        bad = via.open_session(argv, tty=False)  # refused before anything runs, saying why
        try:
            stream, data = bad.read()
            assert stream == 2 and said.encode() in data, data
            assert bad.read() == (0, b"") and bad.wait(30) == 126
        finally:
            bad.close()


def test_an_oversized_frame_drops_the_session(via: BridgeExec) -> None:
    session = via.open_session(["cat"], tty=False)
    try:
        session.sock.sendall(struct.pack(">cI", commands.INPUT, commands.MAX_FRAME + 1))
        assert session.read() == (0, b"")  # the bridge hung up on it (cat included)
    finally:
        session.close()


def test_a_hung_up_session_ends_its_command(via: BridgeExec, bridge: BridgeRunner) -> None:
    marker = bridge.workdir / "still-running"
    naps = f"60.{secrets.randbelow(10**6)}"  # this test's own: other sleeps run on the host
    session = via.open_session(["sh", "-c", f"sleep {naps}; touch {marker}"], tty=False)
    asleep = ["pgrep", "-f", f"^sleep {naps}$"]
    wait_until(lambda: via.run(asleep, timeout=10)[0] == 0, 30, "the sleep")
    session.close()
    wait_until(lambda: via.run(asleep, timeout=10)[0] == 1, 30, "the hang-up")
    assert not marker.exists()


def test_connect_carries_a_tcp_stream_to_a_workspace_port(via: BridgeExec) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"hello\n")  # the app speaks first: nothing is lost
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        stream = via.open_port(port)
        with contextlib.closing(stream):
            got = b""
            while b"hello\n" not in got:
                got += stream.recv(100)
            stream.sendall(b"ping")
            got = b""
            while got != b"PING":
                got += stream.recv(100)
    finally:
        listener.close()
    closed = socket.create_server(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    with pytest.raises(BackendError, match="nothing answers"):
        via.open_port(free)


def test_gather_collects_more_than_one_answer_holds(via: BridgeExec) -> None:
    size = 3 * commands.MAX_OUTPUT
    code, out = via.gather(["head", "-c", str(size), "/dev/zero"], timeout=30)
    assert code == 0 and len(out) == size
    code, _ = via.gather(["sh", "-c", "exit 4"], timeout=10)
    assert code == 4
