"""A virtual terminal screen (pyte) that tells whether the agent shows its input prompt."""

from __future__ import annotations

import re

import pyte

# pyte is slow on big bursts (about 0.5 MB/s); only the final screen matters for idle
# detection, so a long burst is cut to its tail, starting at a line boundary.
TAIL_BYTES = 16384
# Bytes that can change the terminal's modes: ESC, the charset shifts SO/SI, and the
# second byte of UTF-8 encoded C1 CSI/OSC (pyte acts on those too). Text without them only
# draws characters and moves the cursor, so once it has scrolled off it left no trace.
_MODAL = re.compile(rb"[\x1b\x0e\x0f\x9b\x9d]")


class TerminalScreen:
    """pyte Screen + ByteStream, plus the prompt check."""

    def __init__(self, columns: int, rows: int, prompt_regex: str) -> None:
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.prompt = re.compile(prompt_regex)

    def feed(self, data: bytes) -> None:
        """Feed terminal output; a long burst only has its tail emulated."""
        cut = self._plain_cut(data)
        if cut < 0 and len(data) > 2 * TAIL_BYTES:
            cut = data.rfind(b"\n", 0, len(data) - TAIL_BYTES)
        if cut >= 0:
            # the pty turns \n into \r\n, so the skipped part ended at column 0 of a new
            # line: a carriage return and that \n put the cursor where it would have been
            data = b"\r" + data[cut:]
        self.stream.feed(data)

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

    def cursor_line(self) -> str:
        """The text of the cursor's line, up to the cursor."""
        cursor = self.screen.cursor
        line = self.screen.buffer[cursor.y]
        return "".join(line[x].data for x in range(min(cursor.x, self.screen.columns)))

    def at_prompt(self) -> bool:
        """True when the cursor line up to the cursor matches the prompt regex."""
        return self.prompt.search(self.cursor_line()) is not None

    def display(self) -> list[str]:
        """The whole screen as text lines (for diagnostics)."""
        return [line.rstrip() for line in self.screen.display]
