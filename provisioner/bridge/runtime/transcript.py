"""Terminal bytes to transcript lines, the sequenced transcript, and its conversation view."""

from __future__ import annotations

import bisect
import codecs
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from .wire import INPUT, LOG_ENTRY_HEAD, OUTPUT, SOURCE_SETUP, LogEntry

# Complete escape sequences: CSI, OSC (ended by BEL or ST), DCS/SOS/PM/APC (ended by ST),
# and the short ones (charset designations, keypad modes, ...).
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[P^_X][^\x1b]*\x1b\\"
    r"|\x1b[ -/]*[0-~]"
)
# A sequence cut off by the end of a chunk: kept back until the next chunk completes it.
_INCOMPLETE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[P^_X][^\x1b]*\x1b?|[ -/]*)\Z")
# Control characters a transcript reader never wants (tab, \b, \r and \n are handled apart).
_CONTROL = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")
# Past this, a held-back "escape sequence" is garbage, not a sequence still arriving.
_MAX_PENDING = 65536
# A line this long without a newline is cut, so a runaway line cannot grow without bound.
_MAX_LINE = 16384
# json.dumps(..., ensure_ascii=False) builds a new encoder on every call: in a flood that
# was most of the cost of a line. The same output from one encoder and the C string quoter.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_quote = json.encoder.encode_basestring
_HEAD = frozenset(LOG_ENTRY_HEAD)


def entry_json(entry: LogEntry) -> str:
    """An entry as one JSON line: the same text as json.dumps(entry, ensure_ascii=False)."""
    seq, type, content, time = entry["seq"], entry["type"], entry["content"], entry["time"]
    head = (
        f'{{"seq": {seq:d}, "type": {_quote(type)}, "content": {_quote(content)}, '
        f'"time": {_quote(time)}'
    )
    if len(entry) == 4:
        return head + "}"
    rest = {k: v for k, v in entry.items() if k not in _HEAD}
    return head + ", " + _encode(rest)[1:]


def utc_iso(ts: float) -> str:
    """Format a Unix timestamp as ISO 8601 UTC with milliseconds."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _apply_backspaces(text: str) -> str:
    """Apply backspaces as a terminal would: move left, later characters overwrite."""
    cells: list[str] = []
    pos = 0
    for ch in text:
        if ch == "\b":
            pos = max(0, pos - 1)
        elif pos < len(cells):
            cells[pos] = ch
            pos += 1
        else:
            cells.append(ch)
            pos += 1
    return "".join(cells)


def _resolve(raw: str) -> str:
    """What a terminal line shows: the text after the last bare carriage return."""
    raw = raw.rstrip("\r")
    cut = raw.rfind("\r")
    if cut >= 0:
        raw = raw[cut + 1 :]
    if "\b" in raw:
        raw = _apply_backspaces(raw)
    return raw


class LineAssembler:
    """Turn a stream of terminal output bytes into clean text lines, incrementally."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending_escape = ""
        self._partial = ""
        # set when the partial line was emitted early, so its later newline adds no blank line
        self._flushed = False

    @property
    def partial(self) -> str:
        """The unfinished current line, as the terminal would show it."""
        return _resolve(self._partial)

    def feed(self, data: bytes) -> list[str]:
        """Consume a chunk of output; return the lines it completed."""
        text = self._pending_escape + self._decoder.decode(data)
        self._pending_escape = ""
        if "\x1b" in text:
            held = _INCOMPLETE.search(text)
            if held is not None and len(text) - held.start() <= _MAX_PENDING:
                self._pending_escape = text[held.start() :]
                text = text[: held.start()]
            text = _ESCAPE.sub("", text)
        text = _CONTROL.sub("", text)
        if not text:
            return []
        pieces = text.split("\n")
        lines: list[str] = []
        for piece in pieces[:-1]:
            line = _resolve(self._partial + piece)
            self._partial = ""
            if line or not self._flushed:
                lines.append(line)
            self._flushed = False
        self._partial += pieces[-1]
        self._compact()
        if len(self._partial) > _MAX_LINE:
            lines.append(self.partial)
            self._partial = ""
            self._flushed = True
        return lines

    def _compact(self) -> None:
        """Drop text an inner carriage return already overwrote (spinners, progress bars)."""
        cut = self._partial.rstrip("\r").rfind("\r")
        if cut > 0:
            self._partial = self._partial[cut:]

    def flush(self) -> str | None:
        """Emit the partial line early (e.g. a prompt); None when it shows nothing."""
        line = self.partial
        if not line:
            return None
        self._partial = ""
        self._flushed = True
        return line

    def finish(self) -> str | None:
        """Emit whatever is left at the end of the stream."""
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.feed(tail.encode())
        self._pending_escape = ""
        return self.flush()


class Transcript:
    """Entries with increasing sequence numbers, appended to a JSONL file when given one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: list[LogEntry] = []
        self._seqs: list[int] = []
        self._file: IO[str] | None = None
        # a batch of lines shares one timestamp: format it once, not per line
        self._last_time: tuple[float, str] = (-1.0, "")
        if path is not None:
            self._load(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def _load(self, path: Path) -> None:
        """Read existing entries; cut a torn last line (a crash mid-write) off the file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        good = 0
        offset = 0
        for raw in data.splitlines(keepends=True):
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break
            try:
                entry = json.loads(raw)
                seq = int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                good = offset  # a corrupt complete line is skipped, not a reason to stop
                continue
            good = offset
            if self._seqs and seq <= self._seqs[-1]:
                continue
            self.entries.append(cast(LogEntry, entry))
            self._seqs.append(seq)
        if good < len(data):
            with path.open("r+b") as f:
                f.truncate(good)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest entry (0 when empty)."""
        return self._seqs[-1] if self._seqs else 0

    def append(
        self,
        type: str,
        content: str,
        now: float | None = None,
        *,
        prompt_id: str | None = None,
        raw: bool = False,
        partial: bool = False,
        source: str | None = None,
    ) -> LogEntry:
        """Add one entry and write it out (buffered: call flush() after a batch).

        The optional fields go in only when they say something (wire.LogEntry)."""
        if now is None:
            now = time.time()
        if now != self._last_time[0]:
            self._last_time = (now, utc_iso(now))
        entry: LogEntry = {
            "seq": self.last_seq + 1,
            "type": type,
            "content": content,
            "time": self._last_time[1],
        }
        if prompt_id is not None:
            entry["prompt_id"] = prompt_id
        if raw:
            entry["raw"] = True
        if partial:
            entry["partial"] = True
        if source is not None:
            entry["source"] = source
        self.entries.append(entry)
        self._seqs.append(entry["seq"])
        if self._file is not None:
            self._file.write(entry_json(entry) + "\n")
        return entry

    def after(self, seq: int, limit: int = 1000) -> list[LogEntry]:
        """Entries with a sequence number greater than `seq`, oldest first, at most `limit`."""
        start = bisect.bisect_right(self._seqs, seq)
        return self.entries[start : start + max(0, limit)]

    def flush(self) -> None:
        """Push buffered entries to the OS (no fsync: a crash loses at most the last batch)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


class _Message:
    """One conversation turn under construction."""

    def __init__(self, id: int, role: str, time: str) -> None:
        self.id = id
        self.role = role
        self.time = time
        self.parts: list[str] = []
        self._content: str | None = None

    def add(self, text: str) -> None:
        self.parts.append(text)
        self._content = None

    @property
    def content(self) -> str:
        if self._content is None:
            text = "\n".join(self.parts)
            # blank lines around an agent turn are terminal layout, not content
            self._content = text if self.role == "user" else text.strip("\n").rstrip()
        return self._content

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "content": self.content, "time": self.time}


class Conversation:
    """agentapi's turn model: a delivered prompt is a user turn, output between is an agent turn."""

    def __init__(self, prompt_regex: re.Pattern[str] | None = None) -> None:
        self._prompt = prompt_regex
        self._messages: list[_Message] = []
        self.version = 0

    def add(self, entry: LogEntry) -> None:
        """Fold one transcript entry into the conversation."""
        if entry["type"] == INPUT:
            if entry.get("raw"):
                return  # keystrokes are not a turn
            message = _Message(len(self._messages), "user", entry["time"])
            message.add(entry["content"])
            self._messages.append(message)
        elif entry["type"] == OUTPUT:
            if entry.get("source") == SOURCE_SETUP:
                return  # the setup script's output, before the agent started: not its turn
            # the idle prompt line (`> `) is terminal furniture, not something the agent said
            if entry.get("partial") and self._prompt and self._prompt.search(entry["content"]):
                return
            last = self._messages[-1] if self._messages else None
            if last is None or last.role != "agent":
                last = _Message(len(self._messages), "agent", entry["time"])
                self._messages.append(last)
            last.add(entry["content"])
        else:
            return
        self.version += 1

    def messages(self) -> list[dict[str, Any]]:
        """All turns, oldest first."""
        return [m.to_dict() for m in self._messages]

    def since(self, message_id: int) -> list[dict[str, Any]]:
        """Turns with id >= message_id (the first may have grown since it was last seen)."""
        return [m.to_dict() for m in self._messages[max(0, message_id) :]]

    def last(self) -> dict[str, Any] | None:
        """The newest turn, if any."""
        return self._messages[-1].to_dict() if self._messages else None
