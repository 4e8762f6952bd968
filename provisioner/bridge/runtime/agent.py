"""The agent process under a pseudo-terminal: spawn, read, write, stop."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .hooks import bridge_env
from .keys import canonical_keys
from .statedir import bin_dir, report_key_path

if TYPE_CHECKING:
    from .config import BridgeConfig

READ_SIZE = 65536
# A burst is gathered up to this size before it is handed on, so a flood costs few batches.
BATCH_BYTES = 262144


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


# what the reader hands on: the bytes (or the exit code) and the time they were read
OutputHandler = Callable[[bytes, float], None]
ExitHandler = Callable[[int, float], None]


class AgentProcess:
    """One agent under a pty: a reader thread hands output on, a writer thread types input.

    Handlers may be attached after start(): the launcher starts the agent before the rest
    of the bridge is even imported, so the agent's own start overlaps the bridge's. Until
    then the reader keeps what it reads, with the time it read it, and attach() hands it on.
    """

    def __init__(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        columns: int,
        rows: int,
        on_output: OutputHandler | None = None,
        on_exit: ExitHandler | None = None,
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.columns = columns
        self.rows = rows
        self._on_output = on_output
        self._on_exit = on_exit
        # the hand-over: output and exit read before attach(), in order
        self._handover = threading.Lock()
        self._early: list[tuple[bytes, float]] = []
        self._early_exit: tuple[int, float] | None = None
        self._first_output = threading.Event()
        self.pid: int | None = None
        self.exit_code: int | None = None
        self._fd = -1
        self._writes: queue.Queue[bytes | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._exited = threading.Event()

    def attach(self, on_output: OutputHandler, on_exit: ExitHandler) -> None:
        """Hand everything read so far to these handlers, then all that follows."""
        with self._handover:
            for data, at in self._early:
                on_output(data, at)
            self._early.clear()
            if self._early_exit is not None:
                on_exit(*self._early_exit)
            self._on_output, self._on_exit = on_output, on_exit

    def wait_first_output(self, timeout: float) -> bool:
        """Wait until the agent printed something (or exited); False after `timeout` s."""
        return self._first_output.wait(timeout)

    def _output(self, data: bytes) -> None:
        self._first_output.set()
        at = time.time()
        handler = self._on_output
        if handler is None:
            with self._handover:
                handler = self._on_output
                if handler is None:
                    self._early.append((data, at))
                    return
        handler(data, at)

    def _exit(self, code: int) -> None:
        self._first_output.set()
        at = time.time()
        handler = self._on_exit
        if handler is None:
            with self._handover:
                handler = self._on_exit
                if handler is None:
                    self._early_exit = (code, at)
                    return
        handler(code, at)

    def start(self) -> None:
        """Fork the agent under a new pty and start the reader and writer threads."""
        # fork before any of our threads exist where possible: the child only execs
        pid, fd = os.forkpty()
        if pid == 0:  # pragma: no cover - the child never returns
            self._exec_child()
        self.pid = pid
        self._fd = fd
        self._reader = threading.Thread(target=self._read_loop, name="agent-reader", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="agent-writer", daemon=True)
        self._reader.start()
        self._writer.start()

    def _exec_child(self) -> None:  # pragma: no cover - runs in the forked child
        try:
            # Python ignores SIGPIPE and SIGXFSZ; an exec'd program expects the defaults
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            attrs = termios.tcgetattr(0)
            # no echo: a typed prompt must not reappear in the output as if the agent said it
            attrs[3] &= ~(termios.ECHO | termios.ECHONL)
            termios.tcsetattr(0, termios.TCSANOW, attrs)
            winsize = struct.pack("HHHH", self.rows, self.columns, 0, 0)
            fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
            os.chdir(self.cwd)
            os.execvpe(self.argv[0], self.argv, self.env)
        except BaseException as exc:  # anything: the child must never return into the bridge
            try:
                message = f"dockyard-bridge: cannot start {self.argv[0]}: {exc}\r\n"
                os.write(2, message.encode("utf-8", "replace"))
            finally:
                os._exit(127)

    # -- reading -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Hand output on in batches until the pty closes or the process is gone."""
        try:
            while True:
                ready, _, _ = select.select([self._fd], [], [], 0.5)
                if not ready:
                    # a background grandchild can hold the pty open after the agent exits
                    if self._poll_exit():
                        self._drain()
                        break
                    continue
                data = self._read_batch()
                if data is None:
                    break
                if data:
                    self._output(data)
        except Exception as exc:  # the reader must report an exit whatever happens
            sys.stderr.write(f"dockyard-bridge: agent reader failed: {exc!r}\n")
        finally:
            self._finish()

    def _read_batch(self) -> bytes | None:
        """Read what is available now, up to BATCH_BYTES; None at end of output."""
        chunks: list[bytes] = []
        size = 0
        while size < BATCH_BYTES:
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except OSError as exc:
                if exc.errno == errno.EIO:  # Linux: every slave fd is closed
                    chunk = b""
                else:
                    raise
            if not chunk:
                if chunks:
                    self._output(b"".join(chunks))
                return None
            chunks.append(chunk)
            size += len(chunk)
            ready, _, _ = select.select([self._fd], [], [], 0)
            if not ready:
                break
        return b"".join(chunks)

    def _drain(self) -> None:
        """Hand on whatever output is still buffered."""
        while select.select([self._fd], [], [], 0)[0]:
            data = self._read_batch()
            if data is None:
                return
            if data:
                self._output(data)

    def _poll_exit(self) -> bool:
        """Reap the agent if it has ended; True when it has."""
        if self.exit_code is not None:
            return True
        assert self.pid is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.exit_code = self.exit_code if self.exit_code is not None else 255
            return True
        if pid == 0:
            return False
        self.exit_code = exit_code_of(status)
        return True

    def _finish(self) -> None:
        if self.exit_code is None:
            assert self.pid is not None
            try:
                _, status = os.waitpid(self.pid, 0)
                self.exit_code = exit_code_of(status)
            except ChildProcessError:
                self.exit_code = 255
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._writes.put(None)
        try:
            self._exit(self.exit_code)
        finally:
            # set only after the owner recorded the exit, so a waiter sees it recorded
            self._exited.set()

    # -- writing -------------------------------------------------------------------------

    def typeable(self, keys: bytes) -> bytes:
        """`keys` as they must go to the terminal as it is set now (see canonical_keys).

        Raises keys.Undeliverable when the terminal cannot take them whole.
        """
        if self._exited.is_set():
            return keys
        try:
            # on the master, Linux answers with the agent's (the slave's) settings
            attrs = termios.tcgetattr(self._fd)
        except (OSError, termios.error):
            return keys  # the terminal is going away: the write fails, the exit shows
        if not attrs[3] & termios.ICANON:
            return keys  # raw mode: the agent reads every byte as it comes
        veof = attrs[6][termios.VEOF]
        return canonical_keys(keys, veof if isinstance(veof, bytes) else bytes([veof]))

    def write(self, data: bytes) -> None:
        """Queue bytes to type into the terminal (never blocks the caller)."""
        if not self._exited.is_set():
            self._writes.put(data)

    def _write_loop(self) -> None:
        """Type queued input; a full pty buffer blocks only this thread."""
        while True:
            data = self._writes.get()
            if data is None or self._exited.is_set():
                return
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError:
                return  # the agent is gone; the reader reports the exit

    # -- stopping ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True until the agent has exited and its output is drained."""
        return self.pid is not None and not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the exit to be recorded; True if it was."""
        return self._exited.wait(timeout)

    def terminate(self, grace_s: float = 2.0) -> None:
        """SIGTERM the agent's process group, SIGKILL it after grace_s, wait for the exit."""
        if self.pid is None or self._exited.is_set():
            return
        self._signal(signal.SIGTERM)
        if not self._exited.wait(grace_s):
            self._signal(signal.SIGKILL)
            self._exited.wait(5.0)

    def _signal(self, sig: int) -> None:
        assert self.pid is not None
        try:
            # forkpty made the agent a session (and group) leader: its group is its pid
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def terminal_env(extra: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The agent's environment: the bridge's own, TERM set, then the configured extras."""
    env = dict(os.environ if base is None else base)
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def agent_argv(config: BridgeConfig, resumed: bool) -> list[str]:
    """The command that starts the agent: resume_command when it ran here before."""
    if resumed and config.resume_command:
        return config.resume_command
    return config.agent_command


def agent_env(config: BridgeConfig, port: int) -> dict[str, str]:
    """The environment of the setup script and the agent: how to reach the bridge, and
    dockyard-task on the PATH with the report key's file, too."""
    reach = bridge_env(config.host, port, config.token_file)
    env = terminal_env({**config.env, **reach})
    # dockyard-task: on the PATH first, with the key it reports with
    env["DOCKYARD_REPORT_KEY_FILE"] = report_key_path(config.state_dir)
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env["PATH"] = f"{bin_dir(config.state_dir)}{os.pathsep}{path}"
    return env
