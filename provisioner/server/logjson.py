"""The logs page of the API as JSON text, written straight from the store's rows.

A flood's page holds up to 10,000 entries: building a dict per row and handing it to
FastAPI's serialisation (or even `json.dumps`) cost three times what formatting each row
with the C string quoter costs. The text is the one `json.dumps` gives (ASCII, escapes).
On SQLite the store writes the array itself (`Store.log_rows_json`); this is the rest.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

# The store's row: the values of a wire.StoredLogEntry in the order of its fields
# (STORED_LOG_KEYS: id, seq, type, content, time, prompt_id, source, delivery)
LogRow = tuple[Any, ...]

_encode = json.JSONEncoder(separators=(",", ":")).encode


def _text(value: Any) -> str:
    """A column that is a string or NULL; anything else as `json.dumps` has it."""
    if value is None:
        return "null"
    if type(value) is str:
        return str(_quote(value))
    return _encode(value)


def _number(value: Any) -> str:
    """A column that is an integer or NULL."""
    if type(value) is int:
        return str(value)
    return _encode(value)


def entry_json(row: LogRow) -> str:
    """One log entry as a JSON object: a wire.StoredLogEntry, its keys in their order.

    Written out by hand for speed; tests compare it with `json.dumps` of the store's
    entries (built from STORED_LOG_KEYS), so the two cannot drift apart."""
    id_, seq, type_, content, time, prompt_id, source, delivery = row
    q = _quote
    # the usual types inline (a function call per column would double the cost)
    return (
        f'{{"id":{id_ if type(id_) is int else _number(id_)},'
        f'"seq":{seq if type(seq) is int else _number(seq)},'
        f'"type":{q(type_) if type(type_) is str else _text(type_)},'
        f'"content":{q(content) if type(content) is str else _text(content)},'
        f'"time":{q(time) if type(time) is str else _text(time)},'
        f'"prompt_id":{"null" if prompt_id is None else _text(prompt_id)},'
        # agent | screen | setup, or null (an agent whose screen is its output)
        f'"source":{"null" if source is None else _text(source)},'
        f'"delivery":{"null" if delivery is None else _text(delivery)}}}'
    )


def entries_json(rows: list[LogRow]) -> str:
    """Log entries as a JSON array."""
    return "[" + ",".join([entry_json(row) for row in rows]) + "]"


def page_json(entries: str, rest: dict[str, Any]) -> bytes:
    """`{"logs": entries, **rest}` as UTF-8, `entries` being a JSON array already."""
    tail = _encode(rest)
    return ('{"logs":' + entries + ("," + tail[1:] if len(tail) > 2 else "}")).encode("utf-8")
