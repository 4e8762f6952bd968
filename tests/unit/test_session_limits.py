"""Interactive sessions (fast tier): the bound per task and per user on shells, exec
streams and port-forwards (a 429 that says the limit and how to raise it), their release
on disconnect (an abrupt client kill too), and an open session keeping its task from
idle auto-pause, the idle clock starting again when it closes. A real server, engine and
bridge on the fake backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from provisioner import paths
from provisioner.errors import DockyardError, TooManySessions
from provisioner.lifecycle import Status
from provisioner.model import parse_time
from provisioner.session_limits import (
    OpenSessions,
    SessionLimitError,
    SessionLimits,
    idle_since,
    parse_settings,
)
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import wait_until
from tests.serving import serve

__all__ = ["bridge_cache"]

ROOT = Path(__file__).resolve().parents[2]


# --- the pure rules ---------------------------------------------------------------------


def test_settings_are_checked() -> None:
    assert parse_settings(None, "s") == SessionLimits(8, 32)
    assert parse_settings({"per_task": 2}, "s") == SessionLimits(2, 32)
    for bad in (
        [],
        "8",
        {"per_task": 0},
        {"per_user": -1},
        {"per_task": True},
        {"per_task": "8"},
        {"per_task": 10**9},
        {"per_task": 1.5},
        {"per_tsak": 2},
    ):
        with pytest.raises(SessionLimitError):
            parse_settings(bad, "config.yaml: sessions")


def test_config_yaml_sets_the_limits(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("sessions: {per_task: 3, per_user: 5}\n")
    assert paths.session_limits(tmp_path) == SessionLimits(3, 5)
    (tmp_path / "config.yaml").write_text("sessions: {per_task: '3; rm -rf /'}\n")
    with pytest.raises(DockyardError, match="per_task must be a whole number"):
        paths.session_limits(tmp_path)


def test_counts_refuse_past_the_bounds_and_release() -> None:
    now = [100.0]
    open_ = OpenSessions(SessionLimits(per_task=2, per_user=3), clock=lambda: now[0])
    open_.acquire("t1", "one", "alice")
    open_.acquire("t1", "one", "alice")
    with pytest.raises(TooManySessions, match=r"sessions.per_task = 2") as refused:
        open_.acquire("t1", "one", "alice")
    assert "per_task: N" in (refused.value.hint or "")  # how to raise it
    open_.acquire("t2", "two", "alice")
    with pytest.raises(TooManySessions, match=r"alice already has 3 .*per_user = 3"):
        open_.acquire("t2", "two", "alice")
    open_.acquire("t2", "two", "bob")  # another user's count is their own
    assert open_.last_closed("t1") is None
    open_.release("t1", "alice")
    assert open_.open_for("t1") == 1 and open_.last_closed("t1") is None
    now[0] = 200.0
    open_.release("t1", "alice")
    assert open_.open_for("t1") == 0 and open_.last_closed("t1") == 200.0
    with pytest.raises(RuntimeError), open_.held("t1", "one", "alice"):
        raise RuntimeError("the client went away")
    assert open_.open_for("t1") == 0 and open_.open_for_user("alice") == 1
    # the idle clock starts at the later of going idle and the last session closing
    assert idle_since(50.0, 200.0) == 200.0 and idle_since(300.0, 200.0) == 300.0
    assert idle_since(50.0, None) == 50.0


# --- against a real server on the fake backend ------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path
) -> Iterator[tuple[Harness, str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("session-limits") / "home"
    limits = OpenSessions(SessionLimits(per_task=2, per_user=3))
    with harness_at(home, bridge_cache, sessions=limits) as h:
        h.add_scripted_variant("idles", lifecycle={"idle_timeout": 0.5})
        with serve(h.engine, h.home) as url:
            tokens = {}
            for name in ("alice", "bob"):
                h.store.create_user(name, "member")
                tokens[name], _ = h.store.create_token(name, "laptop", None)
            for name in ("one", "two"):
                task = h.create("hello", owner="alice", name=name, parameters=FAST)
                h.wait_idle(task.id)
            yield h, url, tokens


def _ws(url: str, token: str, path: str) -> Any:
    # entered by hand: these sockets outlive one block (closed by the tests)
    return connect(
        url.replace("http://", "ws://") + "/api/dockyard/v1" + path,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=30,
    ).__enter__()


def _shell(url: str, token: str, task: str) -> Any:
    """An exec stream of `cat` (it runs until its input ends), started."""
    ws = _ws(url, token, f"/tasks/{task}/exec")
    ws.send(json.dumps({"argv": ["cat"], "tty": False}))
    answer = json.loads(ws.recv(timeout=30))
    if answer != {"started": True}:
        ws.close()
        return answer
    return ws


def test_sessions_are_bounded_and_released(served: tuple[Harness, str, dict[str, str]]) -> None:
    h, url, tokens = served
    alice = tokens["alice"]
    one = h.task("one")
    first, second = _shell(url, alice, "one"), _shell(url, alice, "one")
    assert h.engine.sessions.open_for(one.id) == 2
    # the third on the task: a 429 naming the bound and how to raise it
    third = _shell(url, alice, "one")
    assert third["status"] == 429, third
    assert "sessions.per_task = 2" in third["error"] and "per_task: N" in third["hint"]
    # a port-forward counts the same
    with _ws(url, alice, "/tasks/one/ports/8000") as ws:
        assert json.loads(ws.recv(timeout=30))["status"] == 429
    # the user's bound across tasks: one more on `two`, then refused
    other = _shell(url, alice, "two")
    refused = _shell(url, alice, "two")
    assert refused["status"] == 429 and "alice already has 3" in refused["error"]
    # bob is not held back by alice's sessions, and never reaches her task
    answer = _shell(url, tokens["bob"], "one")
    assert answer["status"] == 404
    # a session that ends releases its place
    first.send(json.dumps({"eof": True}))
    assert json.loads(wait_until(lambda: _last_text(first), what="the exit")) == {"exit": 0}
    wait_until(lambda: h.engine.sessions.open_for(one.id) == 1, what="the release")
    again = _shell(url, alice, "one")
    assert not isinstance(again, dict), again
    for ws in (second, other, again):
        ws.close()  # the client leaves: released too
    wait_until(lambda: h.engine.sessions.open_for_user("alice") == 0, what="all released")


def _last_text(ws: Any) -> str | None:
    message = ws.recv(timeout=30)
    return message if isinstance(message, str) else None


def test_a_killed_client_releases_its_session(served: tuple[Harness, str, dict[str, str]]) -> None:
    h, url, tokens = served
    one = h.task("one")
    child = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "task", "exec", "-T", "one", "--", "sleep", "600"],
        env={**os.environ, "DOCKYARD_URL": url, "DOCKYARD_TOKEN": tokens["alice"]},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: h.engine.sessions.open_for(one.id) == 1, 30, "the CLI's session")
        child.send_signal(signal.SIGKILL)  # no goodbye: the socket just drops
        child.wait(30)
        wait_until(lambda: h.engine.sessions.open_for(one.id) == 0, 30, "the release")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)

    def ended() -> bool:  # recorded just after the release, so waited for too
        events = [e["reason"] for e in h.store.events(one.id) if e["kind"] == "exec"]
        return any(r.startswith("ended: client left: sleep 600") for r in events)

    wait_until(ended, 30, "the session's end in the task's events")


def test_an_open_shell_keeps_its_task_from_idle_pause(
    served: tuple[Harness, str, dict[str, str]],
) -> None:
    h, url, tokens = served
    task = h.create("hi", template="idles", owner="alice", name="idler", parameters=FAST)
    shell = None
    # the shell opens before the first idle pass could pause it: the pause is held up
    h.engine._pausing.add(task.id)  # no auto-pause until the shell is open
    try:
        h.wait_idle(task.id)
        shell = _shell(url, tokens["alice"], "idler")
    finally:
        h.engine._pausing.discard(task.id)
    assert not isinstance(shell, dict), shell
    pauses: list[str] = []
    original = h.engine._auto_pause

    def counted(task_id: str, limit: float) -> None:
        pauses.append(task_id)
        original(task_id, limit)

    passes = Passes(h)
    h.engine._auto_pause = counted  # type: ignore[method-assign]
    try:
        idle_at = parse_time(h.task("idler").state_changed_at or "").timestamp()
        # reconcile passes that all see the task idle past its limit, the shell open
        wait_until(lambda: time.time() > idle_at + 0.5, what="the idle limit")
        passes.wait(3)
        assert task.id not in pauses and h.task("idler").status == Status.ACTIVE
        closed_before = time.time()
        shell.close()
        shell = None
        paused = h.wait_status("idler", Status.PAUSED)
        # the idle clock started again when the shell closed
        closed = h.engine.sessions.last_closed(task.id)
        assert closed is not None and closed >= closed_before - 1
        assert parse_time(paused.state_changed_at or "").timestamp() >= closed + 0.5 - 0.01
        assert pauses == [task.id]
    finally:
        h.engine._auto_pause = original  # type: ignore[method-assign]
        passes.stop()
        if shell is not None:
            shell.close()


class Passes:
    """Counts the engine's reconcile passes from now on."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.count = 0
        self._original = h.engine.reconcile
        self._lock = threading.Lock()

        def counted() -> None:
            self._original()
            with self._lock:
                self.count += 1

        h.engine.reconcile = counted  # type: ignore[method-assign]

    def wait(self, n: int) -> None:
        start = self.count
        wait_until(lambda: self.count >= start + n, what=f"{n} reconcile passes")

    def stop(self) -> None:
        self.h.engine.reconcile = self._original  # type: ignore[method-assign]
