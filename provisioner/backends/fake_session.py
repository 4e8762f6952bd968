"""A fake backend's `open_session`: a host process under a real pty (or with pipes), as
`docker exec` would run it in a container."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios


class FakeSession:
    """One command of a fake workspace, its input and output open."""

    def __init__(
        self, argv: list[str], *, cwd: str, env: dict[str, str], tty: bool, size: tuple[int, int]
    ) -> None:
        self._tty = tty
        self._master: int | None = None
        if tty:
            master, slave = os.openpty()
            self._master = master
            self._set_size(slave, *size)
            self.proc = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=env,
                start_new_session=True,  # the pty becomes its controlling terminal
                preexec_fn=_take_terminal,  # only an ioctl, as a pty's child needs
            )
            os.close(slave)
        else:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        self._open = {1, 2} if not tty else {1}

    @staticmethod
    def _set_size(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self, size: int = 65536) -> tuple[int, bytes]:
        """The next output: (stream, bytes); (0, b"") at its end."""
        if self._master is not None:
            try:
                data = os.read(self._master, size)
            except OSError:  # EIO: every holder of the terminal has gone
                data = b""
            return (1, data) if data else (0, b"")
        assert self.proc.stdout is not None and self.proc.stderr is not None
        pipes = {1: self.proc.stdout, 2: self.proc.stderr}
        while self._open:
            ready, _, _ = select.select([pipes[n] for n in self._open], [], [])
            for number in sorted(self._open):
                if pipes[number] in ready:
                    data = os.read(pipes[number].fileno(), size)
                    if data:
                        return number, data
                    self._open.discard(number)
        return 0, b""

    def write(self, data: bytes) -> None:
        """Input for the command."""
        if self._master is not None:
            os.write(self._master, data)
        elif self.proc.stdin is not None:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_input(self) -> None:
        """End of input (a pipe is closed; a terminal gets Ctrl-D from the caller)."""
        if self._master is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size; the command gets SIGWINCH from the kernel."""
        if self._master is not None:
            self._set_size(self._master, rows, cols)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+N for a signal N, as a shell reports it)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError("the command is still running") from exc
        return 128 - code if code < 0 else code

    def close(self) -> None:
        """Hang up: the command's group gets SIGHUP, then SIGKILL if it stays."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGHUP)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _take_terminal() -> None:
    """In the child: make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
