"""A virtual terminal screen (pyte) that tells whether the agent shows its input prompt.

pyte (with wcwidth, which it imports whole) is ~15 ms of the bridge's start, while the
agent waits for its first prompt. An agent that prints only plain ASCII text (printable
characters, CR and LF: no escape sequences, no wide characters) needs no emulator to know
its cursor line, so the screen follows that line itself and imports pyte the moment
anything else arrives (or anyone asks for the emulated screen), replaying the plain text
it kept. A TUI's first output brings pyte in at once.
"""

from __future__ import annotations

import re
from typing import Any

# pyte is slow on big bursts (about 0.5 MB/s); only the final screen matters for idle
# detection, so a long burst is cut to its tail, starting at a line boundary.
TAIL_BYTES = 16384
# Bytes that can change the terminal's modes: ESC, the charset shifts SO/SI, and the
# second byte of UTF-8 encoded C1 CSI/OSC (pyte acts on those too). Text without them only
# draws characters and moves the cursor, so once it has scrolled off it left no trace.
_MODAL = re.compile(rb"[\x1b\x0e\x0f\x9b\x9d]")
# Output the screen follows without an emulator: one column per byte, and only CR and LF
# move the cursor
_PLAIN = re.compile(rb"[\x20-\x7e\r\n]*")
# the plain text kept for pyte, should it be needed, is cut back to its tail beyond this
HISTORY_BYTES = 4 * TAIL_BYTES


def _after(x: int, drawn: int, columns: int) -> int:
    """The cursor's column after `drawn` characters from column `x`: at the right margin
    the next character wraps to a new line (pyte's DECAWM, on by default)."""
    end = x + drawn
    return end if end <= columns else (end - columns - 1) % columns + 1


class TerminalScreen:
    """pyte Screen + ByteStream (made when first needed), plus the prompt check."""

    def __init__(self, columns: int, rows: int, prompt_regex: str) -> None:
        self.columns = columns
        self.rows = rows
        self.prompt = re.compile(prompt_regex)
        self._screen: Any = None  # pyte.Screen, once emulating
        self._stream: Any = None
        # Until then: the cursor's line (columns wide) and column. Plain text never moves
        # the cursor up, so every row below it is blank, and a linefeed brings a blank one.
        self._line = " " * columns
        self._x = 0
        self._history = bytearray()  # the plain text so far (its tail), for pyte

    # -- the emulator, when needed ---------------------------------------------------

    @property
    def screen(self) -> Any:
        """The pyte screen (emulating from here on)."""
        self._emulate()
        return self._screen

    @property
    def stream(self) -> Any:
        """The pyte byte stream feeding it."""
        self._emulate()
        return self._stream

    def _emulate(self) -> None:
        if self._screen is not None:
            return
        import pyte

        self._screen = pyte.Screen(self.columns, self.rows)
        self._stream = pyte.ByteStream(self._screen)
        history, self._history = bytes(self._history), bytearray()
        if history:
            self._feed_emulated(history)

    # -- feeding ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Feed terminal output; a long burst only has its tail emulated."""
        if self._screen is None and _PLAIN.fullmatch(data):
            self._follow_plain(data)
            return
        self._emulate()
        self._feed_emulated(data)

    def _feed_emulated(self, data: bytes) -> None:
        cut = self._plain_cut(data)
        if cut < 0 and len(data) > 2 * TAIL_BYTES:
            cut = data.rfind(b"\n", 0, len(data) - TAIL_BYTES)
        if cut >= 0:
            # the pty turns \n into \r\n, so the skipped part ended at column 0 of a new
            # line: a carriage return and that \n put the cursor where it would have been
            data = b"\r" + data[cut:]
        self._stream.feed(data)

    def _follow_plain(self, data: bytes) -> None:
        """Move the cursor line as a terminal would for plain text (no emulator)."""
        *passed, last = data.decode("ascii").split("\n")
        if passed:
            # the lines before the last linefeed scrolled up or stay above the cursor:
            # only the column they leave the cursor in counts (a linefeed keeps it), and
            # that is decided from the last carriage return among them on
            start = len(passed) - 1
            while start > 0 and "\r" not in passed[start]:
                start -= 1
            x = self._x
            for line in passed[start:]:
                pieces = line.split("\r")
                x = _after(x if len(pieces) == 1 else 0, len(pieces[-1]), self.columns)
            self._line, self._x = " " * self.columns, x
        for i, piece in enumerate(last.split("\r")):
            if i:
                self._x = 0
            self._draw(piece)
        self._keep(data)

    def _draw(self, text: str) -> None:
        if not text:
            return
        x, columns = self._x, self.columns
        if x + len(text) <= columns:
            self._line = self._line[:x] + text + self._line[x + len(text) :]
            self._x = x + len(text)
        else:  # it wrapped: the cursor's line holds what came after the last wrap
            self._x = _after(x, len(text), columns)
            self._line = text[-self._x :] + " " * (columns - self._x)

    def _keep(self, data: bytes) -> None:
        """Keep the plain text for pyte, cut as feed() cuts a burst when it grows long."""
        self._history += data
        if len(self._history) <= HISTORY_BYTES:
            return
        history = bytes(self._history)
        cut = len(history)
        for _ in range(2 * self.rows):
            cut = history.rfind(b"\n", 0, cut)
            if cut <= 0:
                cut = history.rfind(b"\n", 0, len(history) - TAIL_BYTES)
                break
        if cut > 0:
            self._history = bytearray(b"\r" + history[cut:])
        else:  # no line ends at all: the last part of one long line, from a CR if any
            tail = history[-TAIL_BYTES:]
            self._history = bytearray(tail[tail.find(b"\r") :] if b"\r" in tail else tail)

    def _plain_cut(self, data: bytes) -> int:
        """Where plain text (a flood of lines) can be skipped: -1 when it cannot.

        The kept tail holds twice the screen's rows in newlines: whatever row the cursor
        starts on, everything before the cut scrolls off the whole screen, in the full
        feed as in the tail. That holds only in the parser's ground state (not inside an
        escape sequence), without a scroll region, and when nothing skipped is modal.
        """
        if self.screen.margins is not None or not getattr(self.stream, "_taking_plain_text", False):
            return -1
        cut = len(data)
        for _ in range(2 * self.screen.lines):
            cut = data.rfind(b"\n", 0, cut)
            if cut < 0:
                return -1
        if cut == 0 or _MODAL.search(data, 0, cut) is not None:
            return -1
        return cut

    # -- reading ---------------------------------------------------------------------

    def cursor_line(self) -> str:
        """The text of the cursor's line, up to the cursor."""
        if self._screen is None:
            return self._line[: min(self._x, self.columns)]
        cursor = self._screen.cursor
        line = self._screen.buffer[cursor.y]
        return "".join(line[x].data for x in range(min(cursor.x, self._screen.columns)))

    def at_prompt(self) -> bool:
        """True when the cursor line up to the cursor matches the prompt regex."""
        return self.prompt.search(self.cursor_line()) is not None

    @property
    def emulating(self) -> bool:
        """Whether pyte runs (False while the output has been plain text only)."""
        return self._screen is not None

    def display(self) -> list[str]:
        """The whole screen as text lines (for diagnostics)."""
        return [line.rstrip() for line in self.screen.display]
