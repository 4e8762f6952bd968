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


def _reference(columns: int, rows: int, chunks: list[bytes]) -> TerminalScreen:
    """A screen fed every byte, with no shortcut."""
    screen = TerminalScreen(columns, rows, PROMPT)
    for chunk in chunks:
        screen.stream.feed(chunk)
    return screen


def _same(a: TerminalScreen, b: TerminalScreen) -> None:
    assert a.display() == b.display()
    assert (a.screen.cursor.x, a.screen.cursor.y) == (b.screen.cursor.x, b.screen.cursor.y)


def test_plain_flood_skips_to_its_last_screens_with_the_same_result() -> None:
    lines = [b"flood line %d" % i for i in range(1, 400)]
    lines[50] = b"w" * 300  # wraps over several rows
    lines[60] = b"tab\there and back\b\bspace"
    lines[70] = "漢字 wide".encode()
    burst = b"".join(line + b"\r\n" for line in lines) + b"Done\r\n> "
    start = b"Scripted agent ready.\r\n> /flood 400\r\n"
    for rows in (2, 5, 24):
        screen = TerminalScreen(80, rows, PROMPT)
        screen.feed(start)
        assert screen._plain_cut(burst) > 0  # the shortcut is taken
        screen.feed(burst)
        _same(screen, _reference(80, rows, [start, burst]))
        assert screen.at_prompt()


def test_flood_with_escapes_or_mid_sequence_is_fed_whole() -> None:
    colored = b"".join(b"\x1b[32mline %d\x1b[0m\r\n" % i for i in range(200))
    screen = TerminalScreen(80, 24, PROMPT)
    assert screen._plain_cut(colored) == -1
    # a chunk that ends inside an escape sequence: the next one must be parsed from its start
    first, second = b"hello\x1b[3", b"1m" + b"".join(b"plain %d\r\n" % i for i in range(200))
    screen.feed(first)
    assert screen._plain_cut(second) == -1
    screen.feed(second)
    _same(screen, _reference(80, 24, [first, second]))


def test_flood_inside_a_scroll_region_is_fed_whole() -> None:
    screen = TerminalScreen(80, 24, PROMPT)
    head = b"\x1b[2;10rheader\r\n"  # a TUI keeps rows outside rows 2-10 for itself
    screen.feed(head)
    burst = b"".join(b"line %d\r\n" % i for i in range(200))
    assert screen._plain_cut(burst) == -1
    screen.feed(burst)
    _same(screen, _reference(80, 24, [head, burst]))
