"""Unit tests for the bridge's virtual screen and prompt detection."""

from __future__ import annotations

from provisioner.bridge.runtime.screen import TAIL_BYTES, TerminalScreen

PROMPT = r"^> ?$"


def test_prompt_after_output() -> None:
    screen = TerminalScreen(80, 24, PROMPT)
    screen.feed(b"Scripted agent ready.\r\n> ")
    assert screen.cursor_line() == "> "
    assert screen.at_prompt()


def test_not_at_prompt_while_printing() -> None:
    screen = TerminalScreen(80, 24, PROMPT)
    screen.feed(b"> Working on: x\r\n  ... thinking (1/3)\r\n")
    assert screen.cursor_line() == ""
    assert not screen.at_prompt()
    screen.feed(b"  ... thinking")
    assert not screen.at_prompt()


def test_only_text_left_of_cursor_counts() -> None:
    screen = TerminalScreen(80, 24, PROMPT)
    # a TUI draws its prompt and a hint, then moves the cursor back to the input position
    screen.feed(b"> \x1b[2m(type here)\x1b[0m\x1b[11D")
    assert screen.cursor_line() == "> "
    assert screen.at_prompt()


def test_colored_prompt_and_redraw() -> None:
    screen = TerminalScreen(80, 24, r"^\$ $")
    screen.feed(b"old text\r\x1b[K\x1b[1;34m$\x1b[0m ")
    assert screen.at_prompt()


def test_wide_characters_before_cursor() -> None:
    screen = TerminalScreen(80, 24, r"^漢字> $")
    screen.feed("漢字> ".encode())
    assert screen.cursor_line() == "漢字> "
    assert screen.at_prompt()


def test_large_burst_feeds_tail_and_keeps_the_final_line() -> None:
    screen = TerminalScreen(120, 40, PROMPT)
    burst = b"".join(b"flood line %d\r\n" % i for i in range(1, 20001)) + b"Done\r\n> "
    assert len(burst) > 2 * TAIL_BYTES
    screen.feed(burst)
    assert screen.at_prompt()
    display = screen.display()
    assert display[screen.screen.cursor.y - 1] == "Done"
    assert display[screen.screen.cursor.y - 2] == "flood line 20000"


def test_large_burst_ending_mid_line_is_not_a_prompt() -> None:
    screen = TerminalScreen(120, 40, PROMPT)
    screen.feed(b"x" * 10 + b"\r\n" + b"y" * (4 * TAIL_BYTES))
    assert not screen.at_prompt()
