"""The setup script run once before the agent's first start, and the run state kept across
restarts: whether the setup succeeded and whether the agent ever started."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# The launcher imports this before it starts the agent: nothing here may be heavy (the
# activity and transcript modules, dataclasses, subprocess come later, or when used).
from .wire import SETUP, SETUP_FAILED, STOPPING

if TYPE_CHECKING:
    import subprocess

# the setup script's states, as GET /status reports them
NONE, RUNNING, DONE, FAILED = "none", "running", "done", "failed"
DEFAULT_SHELL = ["/bin/bash", "-c"]
FALLBACK_SHELL = ["/bin/sh", "-c"]
# the script's $0, so a shell's error messages say where they come from
SCRIPT_NAME = "dockyard-setup"
# the exit code when the shell cannot be started at all, as a shell reports a missing command
CANNOT_START = 127
READ_SIZE = 65536
# no output for this long: an unfinished line (a progress message) is shown as it is
QUIET_S = 0.5
# after the shell ended, at most this many reads of what a background child still writes
DRAIN_READS = 64


def resolve_shell(
    configured: list[str] | None, exists: Callable[[str], bool] = os.path.exists
) -> list[str]:
    """The shell and flags to run the script with: the configured one, else bash, else sh."""
    if configured:
        return list(configured)
    return list(DEFAULT_SHELL if exists(DEFAULT_SHELL[0]) else FALLBACK_SHELL)


def setup_argv(shell: list[str], script: str) -> list[str]:
    """The command line running `script`: the shell, the script, then its $0."""
    return [*shell, script, SCRIPT_NAME]


def bridge_state(agent_state: str, setup: str, stopping: bool) -> str:
    """The state the API reports: a requested stop, then the setup, override the agent's."""
    if stopping:
        return STOPPING
    if setup == RUNNING:
        return SETUP
    if setup == FAILED:
        return SETUP_FAILED
    return agent_state


def exit_code_of_returncode(returncode: int) -> int:
    """A Popen returncode as a shell reports it: the exit code, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


class RunState:
    """What the state dir remembers about earlier runs of the bridge."""

    __slots__ = ("agent_started", "setup_done", "setup_exit_code")

    def __init__(
        self,
        setup_done: bool = False,
        setup_exit_code: int | None = None,
        # the agent was started at least once: a later start resumes it
        agent_started: bool = False,
    ) -> None:
        self.setup_done = setup_done
        self.setup_exit_code = setup_exit_code
        self.agent_started = agent_started

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunState):
            return NotImplemented
        return self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __repr__(self) -> str:
        return (
            f"RunState(setup_done={self.setup_done!r}, "
            f"setup_exit_code={self.setup_exit_code!r}, agent_started={self.agent_started!r})"
        )

    def needs_setup(self, script: str | None) -> bool:
        """Whether `script` must run before the agent starts."""
        # an agent that already ran keeps its workspace as it is, set up or not
        return script is not None and not self.setup_done and not self.agent_started

    def setup_phase(self, script: str | None) -> str:
        """The setup state before this run does anything: running, done or none."""
        if self.needs_setup(script):
            return RUNNING
        return DONE if self.setup_done else NONE

    def to_state(self) -> dict[str, Any]:
        """The persisted view."""
        return {
            "version": 1,
            "setup_done": self.setup_done,
            "setup_exit_code": self.setup_exit_code,
            "agent_started": self.agent_started,
        }

    @classmethod
    def from_state(cls, data: Any) -> RunState:
        """Rebuild from the persisted view; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("the run state must be a JSON object")
        code = data.get("setup_exit_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError("setup_exit_code must be an integer or null")
        flags = {key: data.get(key, False) for key in ("setup_done", "agent_started")}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ValueError("setup_done and agent_started must be booleans")
        return cls(flags["setup_done"], code, flags["agent_started"])


class SetupScript:
    """The setup script in its own process group; its merged output is read from a pipe."""

    def __init__(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        on_output: Callable[[bytes], None],
        on_quiet: Callable[[], None],
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self._on_output = on_output
        self._on_quiet = on_quiet
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._done = threading.Event()

    def run(self) -> int:
        """Run the script to its end, handing output on; return its exit code."""
        try:
            return self._run()
        finally:
            self._done.set()

    def _run(self) -> int:
        import subprocess  # only a workspace with a setup script needs it

        with self._lock:
            if self._stopped:
                return 128 + signal.SIGTERM
            try:
                proc = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, to stop all of it
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                message = f"dockyard-bridge: cannot start the setup script: {exc}\n"
                self._on_output(message.encode("utf-8", "replace"))
                return CANNOT_START
            self._proc = proc
            self.pid = proc.pid
        assert proc.stdout is not None
        try:
            self._read(proc.stdout.fileno(), proc)
        finally:
            proc.stdout.close()
        return exit_code_of_returncode(proc.wait())

    def _read(self, fd: int, proc: subprocess.Popen[bytes]) -> None:
        """Hand output on until the pipe closes, or the shell ended and the pipe is drained."""
        while True:
            if select.select([fd], [], [], QUIET_S)[0]:
                data = os.read(fd, READ_SIZE)
                if not data:
                    return
                self._on_output(data)
                continue
            self._on_quiet()
            if proc.poll() is not None:
                # a background child of the script may hold the pipe open: take what is there
                for _ in range(DRAIN_READS):
                    if not select.select([fd], [], [], 0)[0]:
                        return
                    data = os.read(fd, READ_SIZE)
                    if not data:
                        return
                    self._on_output(data)
                return

    def terminate(self, grace_s: float = 2.0) -> None:
        """Stop the script's process group (TERM, KILL after grace_s); it never starts later."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is None:
            return
        self._signal(proc.pid, signal.SIGTERM)
        if not self._done.wait(grace_s):
            self._signal(proc.pid, signal.SIGKILL)
            self._done.wait(5.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for run() to return; True if it has."""
        return self._done.wait(timeout)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        # start_new_session made the shell a group leader: its group is its pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
