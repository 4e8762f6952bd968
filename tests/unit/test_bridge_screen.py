"""Unit tests for the bridge's virtual screen and prompt detection."""

from __future__ import annotations

import random

from provisioner.bridge.runtime.screen import HISTORY_BYTES, TAIL_BYTES, TerminalScreen

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


# -- plain text without the emulator ------------------------------------------------------


def _plain_chunks(rng: random.Random, columns: int) -> list[bytes]:
    """Random plain output: words, long lines that wrap, CRs (progress redraws), bare LFs
    and CRLFs, cut into chunks anywhere."""
    parts = []
    for _ in range(rng.randrange(1, 60)):
        kind = rng.random()
        if kind < 0.4:
            parts.append("".join(rng.choice("ab> $.") for _ in range(rng.randrange(0, 12))))
        elif kind < 0.5:
            parts.append("w" * rng.randrange(columns - 2, 3 * columns + 2))
        elif kind < 0.7:
            parts.append("\r\n")
        elif kind < 0.85:
            parts.append("\r")
        else:
            parts.append("\n")
    data = "".join(parts).encode()
    cuts = sorted(rng.sample(range(len(data) + 1), min(3, len(data) + 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]


def test_plain_text_is_followed_without_pyte_exactly_as_pyte_would() -> None:
    rng = random.Random(20261130)
    for case in range(400):
        columns = rng.choice((5, 8, 80))
        chunks = _plain_chunks(rng, columns)
        screen = TerminalScreen(columns, 4, PROMPT)
        reference = _reference(columns, 4, [])
        for chunk in chunks:
            screen.feed(chunk)
            reference.stream.feed(chunk)
            assert not screen.emulating
            assert screen.cursor_line() == reference.cursor_line(), (case, chunks)
            assert screen.at_prompt() == reference.at_prompt()


def test_the_first_byte_that_is_not_plain_brings_pyte_in_with_all_before_it() -> None:
    screen = TerminalScreen(80, 24, PROMPT)
    screen.feed(b"Scripted agent ready.\r\n> ")
    assert screen.at_prompt() and not screen.emulating
    screen.feed(b"\x1b[2K\r\x1b[1m>\x1b[0m ")  # a redraw of the prompt line, in bold
    assert screen.emulating and screen.at_prompt()
    redraw = [b"Scripted agent ready.\r\n> ", b"\x1b[2K\r\x1b[1m>\x1b[0m "]
    _same(screen, _reference(80, 24, redraw))
    wide = TerminalScreen(80, 24, r"^漢字> $")
    wide.feed(b"ready\r\n")
    wide.feed("漢字> ".encode())  # not ASCII: pyte and wcwidth measure it
    assert wide.emulating and wide.at_prompt()


def test_a_long_plain_flood_kept_for_pyte_gives_the_same_screen() -> None:
    screen = TerminalScreen(120, 40, PROMPT)
    lines = b"".join(b"flood line %d\r\n" % i for i in range(1, 20001))
    for start in range(0, len(lines), 4096):
        screen.feed(lines[start : start + 4096])
    screen.feed(b"Done\r\n> ")
    assert screen.at_prompt() and not screen.emulating
    assert len(screen._history) <= HISTORY_BYTES + 4096
    _same(screen, _reference(120, 40, [lines, b"Done\r\n> "]))
    assert screen.emulating
