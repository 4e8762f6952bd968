"""A virtual terminal screen (pyte) that tells whether the agent shows its input prompt."""

from __future__ import annotations

import re

import pyte

# pyte is slow on big bursts (about 0.5 MB/s); only the final screen matters for idle
# detection, so a long burst is cut to its tail, starting at a line boundary.
TAIL_BYTES = 16384


class TerminalScreen:
    """pyte Screen + ByteStream, plus the prompt check."""

    def __init__(self, columns: int, rows: int, prompt_regex: str) -> None:
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.prompt = re.compile(prompt_regex)

    def feed(self, data: bytes) -> None:
        """Feed terminal output; a long burst only has its tail emulated."""
        if len(data) > 2 * TAIL_BYTES:
            cut = data.rfind(b"\n", 0, len(data) - TAIL_BYTES)
            if cut >= 0:
                # the pty turns \n into \r\n, so the skipped part ended at column 0 of a new
                # line: a carriage return and that \n put the cursor where it would have been
                data = b"\r" + data[cut:]
        self.stream.feed(data)

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
