"""Unit tests for the bridge's line assembly, transcript persistence and conversation view."""

from __future__ import annotations

import json
import re
from pathlib import Path

from provisioner.bridge.runtime.transcript import (
    Conversation,
    LineAssembler,
    Transcript,
    entry_json,
    utc_iso,
)


def feed_all(assembler: LineAssembler, *chunks: bytes) -> list[str]:
    """Feed chunks one by one and collect every completed line."""
    lines: list[str] = []
    for chunk in chunks:
        lines += assembler.feed(chunk)
    return lines


def test_plain_lines_with_crlf() -> None:
    assembler = LineAssembler()
    assert feed_all(assembler, b"one\r\ntwo\r\nthr") == ["one", "two"]
    assert assembler.partial == "thr"
    assert feed_all(assembler, b"ee\r\n") == ["three"]


def test_ansi_sequences_are_stripped() -> None:
    assembler = LineAssembler()
    data = (
        b"\x1b[1;32mgreen\x1b[0m text\r\n"  # SGR
        b"\x1b]0;window title\x07after osc\r\n"  # OSC ended by BEL
        b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\r\n"  # OSC ended by ST
        b"\x1b(B\x1b=\x1b[?25lkeypad\x1b[K\r\n"  # charset, keypad, private CSI
        b"bell\x07 and nul\x00\r\n"
    )
    assert feed_all(assembler, data) == [
        "green text",
        "after osc",
        "link",
        "keypad",
        "bell and nul",
    ]


def test_escape_sequence_split_across_chunks() -> None:
    assembler = LineAssembler()
    assert feed_all(assembler, b"a\x1b[3", b"1mred\x1b", b"[0m b\r\n") == ["ared b"]
    assert feed_all(assembler, b"x\x1b]0;ti", b"tle\x1b", b"\\y\r\n") == ["xy"]


def test_bare_carriage_return_keeps_last_text() -> None:
    assembler = LineAssembler()
    lines = feed_all(assembler, b"progress 10%\rprogress 50%\rprogress 100%\r\n")
    assert lines == ["progress 100%"]
    # a \r split from its \n by a chunk boundary is still a line ending
    assert feed_all(assembler, b"done\r", b"\nnext\r\n") == ["done", "next"]
    # a spinner redraw clears with \r + erase-line; the last text wins
    assert feed_all(assembler, b"| work\r\x1b[K/ work\r\x1b[Kfinished\r\n") == ["finished"]


def test_backspace_overwrites() -> None:
    assembler = LineAssembler()
    assert feed_all(assembler, b"abc\b\bX\r\n") == ["aXc"]


def test_utf8_split_across_chunks() -> None:
    assembler = LineAssembler()
    data = "héllo ✓ wörld\r\n".encode()
    cut = data.index("✓".encode()) + 1  # in the middle of a 3-byte character
    assert feed_all(assembler, data[:cut], data[cut:]) == ["héllo ✓ wörld"]
    chunks = [bytes([b]) for b in data]  # byte by byte
    assert feed_all(LineAssembler(), *chunks) == ["héllo ✓ wörld"]


def test_partial_flush_then_continuation() -> None:
    assembler = LineAssembler()
    assert feed_all(assembler, b"ready\r\n> ") == ["ready"]
    assert assembler.flush() == "> "
    assert assembler.flush() is None
    # the agent answers on the prompt's line: the continuation is its own line
    assert feed_all(assembler, b"Working on: x\r\n") == ["Working on: x"]
    # a flushed prompt followed by a bare newline adds no blank line
    assert feed_all(assembler, b"> ") == []
    assert assembler.flush() == "> "
    assert feed_all(assembler, b"\r\nnext\r\n") == ["next"]
    # blank lines that are really in the output are kept
    assert feed_all(assembler, b"\r\n\r\n") == ["", ""]


def test_flush_of_empty_partial_keeps_pending_cr() -> None:
    assembler = LineAssembler()
    assert feed_all(assembler, b"text\r") == []
    assert assembler.flush() == "text"
    assert assembler.feed(b"\n") == []


def test_finish_flushes_remaining_text() -> None:
    assembler = LineAssembler()
    assembler.feed(b"bye")
    assert assembler.finish() == "bye"
    assert assembler.finish() is None


def test_runaway_line_is_cut() -> None:
    assembler = LineAssembler()
    lines = assembler.feed(b"x" * 20000)
    assert len(lines) == 1 and len(lines[0]) == 20000
    assert assembler.partial == ""


def test_transcript_sequence_and_after(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.jsonl")
    for i in range(5):
        transcript.append("output", f"line {i}", now=1_700_000_000.0)
    transcript.append("input", "prompt", now=1_700_000_001.0, prompt_id="p1")
    assert transcript.last_seq == 6
    assert [e["seq"] for e in transcript.after(3)] == [4, 5, 6]
    assert [e["seq"] for e in transcript.after(0, limit=2)] == [1, 2]
    assert transcript.after(6) == []
    assert transcript.entries[5]["prompt_id"] == "p1"
    assert transcript.entries[0]["time"] == utc_iso(1_700_000_000.0) == "2023-11-14T22:13:20.000Z"


def test_entry_json_is_what_json_dumps_writes() -> None:
    contents = [
        "plain",
        'quote " and \\ back',
        "tab\tnew\nline \x00\x1f\x7f",
        "é 漢字 😀 \u2028",
        "",
    ]
    extras: list[dict[str, object]] = [
        {},
        {"partial": True},
        {"source": "setup", "partial": True},
        {"raw": True, "prompt_id": 'p"1'},
        {"prompt_id": None},
    ]
    for content in contents:
        for extra in extras:
            entry = {
                "seq": 7,
                "type": "output",
                "content": content,
                "time": "2023-11-14T22:13:20.000Z",
            }
            entry.update(extra)
            assert entry_json(entry) == json.dumps(entry, ensure_ascii=False)


def test_transcript_reload_continues_seq(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    first = Transcript(path)
    first.append("output", "a")
    first.append("output", "b")
    first.close()
    second = Transcript(path)
    assert [e["content"] for e in second.entries] == ["a", "b"]
    second.append("output", "c")
    second.close()
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == [1, 2, 3]


def test_transcript_reload_cuts_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    first = Transcript(path)
    first.append("output", "kept")
    first.close()
    with path.open("a") as f:
        f.write('{"seq": 2, "type": "outp')  # a crash in the middle of a write
    second = Transcript(path)
    assert second.last_seq == 1
    second.append("output", "next")
    second.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["seq"], e["content"]) for e in lines] == [(1, "kept"), (2, "next")]


def test_conversation_turns() -> None:
    transcript = Transcript()
    conversation = Conversation(re.compile(r"^> ?$"))
    for entry in [
        transcript.append("output", "installing tools", source="setup"),
        transcript.append("output", "Scripted agent ready."),
        transcript.append("output", "> ", partial=True),
        transcript.append("input", "do it", prompt_id="p1"),
        transcript.append("input", "\x03", raw=True, prompt_id="k1"),
        transcript.append("output", "Working on: do it"),
        transcript.append("output", "Done: do it"),
        transcript.append("output", "> ", partial=True),
    ]:
        conversation.add(entry)
    messages = conversation.messages()
    assert [(m["id"], m["role"], m["content"]) for m in messages] == [
        (0, "agent", "Scripted agent ready."),
        (1, "user", "do it"),
        (2, "agent", "Working on: do it\nDone: do it"),
    ]
    assert conversation.last() == messages[-1]
    assert conversation.since(1) == messages[1:]
    # the setup script's output is in the transcript, not in the conversation
    assert transcript.entries[0]["source"] == "setup"
