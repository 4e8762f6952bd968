"""The keystrokes a prompt types (pure): control characters inert, long lines in pieces."""

from __future__ import annotations

import pytest

from provisioner.bridge.runtime.keys import (
    CANON_LINE_BYTES,
    CHUNK_BYTES,
    Undeliverable,
    canonical_keys,
    inert,
    shown_text,
    submit_text,
)


def test_every_control_character_but_newline_and_tab_shows_as_a_symbol() -> None:
    controls = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
    shown = inert("".join(controls))
    assert len(shown) == len(controls)
    assert [c for c in shown if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F] == ["\t", "\n"]
    assert inert("a\x15b\x04\x7f\x9b") == "a\u2415b\u2404\u2421\ufffd"
    assert inert("plain é \U0001f600") == "plain é \U0001f600"
    assert inert("x \ud800") == "x \ufffd"  # cannot be encoded at all


@pytest.mark.parametrize("mode", ["line", "paste"])
def test_no_key_but_the_final_enter_is_typed_in_either_mode(mode: str) -> None:
    keys = submit_text("a\x03b\x1ac\x1cd\x16e\x17f\x7fg\rh\x04\x1b[201~\x9bi", mode)
    body = keys.removeprefix("\x1b[200~").removesuffix("\r").removesuffix("\x1b[201~")
    assert not [c for c in body if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert keys.endswith("\r")


def test_newlines_per_mode() -> None:
    assert shown_text("a\r\nb\rc\nd", "line") == "a b c d"
    assert shown_text("a\r\nb\rc\nd", "paste") == "a\nb\nc\nd"


def test_a_short_line_is_typed_as_is() -> None:
    keys = b"x" * CANON_LINE_BYTES + b"\r"
    assert canonical_keys(keys, b"\x04") == keys


def test_a_long_line_goes_in_pieces_each_handed_over_by_the_eof_key() -> None:
    text = ("é" * 3000 + "z").encode()  # two-byte characters: never cut inside one
    keys = canonical_keys(text + b"\r", b"\x04")
    pieces = keys.split(b"\x04")
    assert b"".join(pieces) == text + b"\r"
    assert all(0 < len(p) <= CHUNK_BYTES for p in pieces)
    assert [p.decode() for p in pieces]  # each piece is whole characters


def test_eof_never_follows_an_empty_line() -> None:
    # paste mode keeps newlines: a piece ending a line is followed by the newline, not EOF
    line = b"y" * (CHUNK_BYTES * 4)
    keys = canonical_keys(line + b"\n\n" + line + b"\r", b"\x04")
    assert b"\n\x04" not in keys and b"\x04\x04" not in keys and not keys.startswith(b"\x04")
    assert keys.replace(b"\x04", b"") == line + b"\n\n" + line + b"\r"


def test_without_an_eof_key_a_long_line_is_refused_with_its_size() -> None:
    with pytest.raises(Undeliverable) as caught:
        canonical_keys(b"x" * 5000 + b"\r", b"\0")
    assert str(caught.value) == (
        "the agent reads lines in canonical mode, which holds at most 4095 bytes; "
        "this prompt has a line of 5000 bytes"
    )
    with pytest.raises(Undeliverable):
        canonical_keys(b"a" * 5000, b"a")  # an EOF key that is text: it would act
