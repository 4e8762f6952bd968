"""What a prompt and a request's text may hold: pure checks, no I/O.

A prompt is typed into the agent's terminal, where a control character is a key: Ctrl-U
erases what came before it, Ctrl-D ends a line-mode agent, Ctrl-C/Ctrl-Z/Ctrl-\\ signal
it. So a prompt may hold text, newlines and tabs only (a CRLF counts as a newline); any
other control character is refused with its name and position rather than quietly
dropped, so the sender learns what was wrong. Text that is not valid Unicode (an unpaired
surrogate, from a JSON escape such as "\\ud800") cannot be stored or encoded, and NUL
ends strings in C: both are refused in every string of a request.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import time
from typing import Any

from provisioner.bridge.runtime.wire import DELIVERED, FAILED, PROMPT_FINISHED, QUEUED, TAKEN
from provisioner.errors import ParameterError, PayloadTooLarge

# The largest prompt taken, in UTF-8 bytes. JSON-escaped on its way to the bridge it grows
# at most threefold (a 4-byte character becomes a 12-byte surrogate pair escape; newlines,
# tabs, quotes and backslashes double), so it stays well under the bridge's body limit.
MAX_PROMPT_BYTES = 256 * 1024
SHOWN_CHARS = 80  # a name or value quoted in a message is cut to this

# C0 controls but newline and tab, a CR not part of a CRLF, DEL and the C1 controls
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_SURROGATE_OR_NUL = re.compile("[\x00\ud800-\udfff]")

_NAMED = {
    0x00: "NUL",
    0x08: "Backspace",
    0x0D: "carriage return",
    0x1B: "Escape",
    0x1C: "Ctrl-\\",
    0x1D: "Ctrl-]",
    0x1E: "Ctrl-^",
    0x1F: "Ctrl-_",
    0x7F: "Delete",
    0x9B: "CSI",
}


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` for a message: never more than `limit` characters of it."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(char: str) -> str:
    """`U+0015 (Ctrl-U)`: a control character as a message names it."""
    code = ord(char)
    name = _NAMED.get(code)
    if name is None and code < 0x20:
        name = f"Ctrl-{chr(code + 0x40)}"
    if name is None and 0x80 <= code <= 0x9F:
        name = "C1 control"
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def check_prompt(text: str, what: str = "the prompt", limit: int = MAX_PROMPT_BYTES) -> str:
    """The prompt as it will be typed (CRLF as newline); raises if it may not be sent."""
    check_text(what, text)
    bad = _CONTROL.search(text)
    if bad is not None:
        raise ParameterError(
            f"{what} contains control character {describe(bad.group())} at position "
            f"{bad.start()}; only newlines and tabs are allowed"
        )
    text = text.replace("\r\n", "\n")
    check_size(text, what, limit)
    return text


def check_size(text: str, what: str, limit: int, taker: str = "") -> None:
    """Refuse text over `limit` UTF-8 bytes; `taker` (a template) says whose limit it is."""
    size = len(text.encode("utf-8"))
    if size <= limit:
        return
    shown = f"{limit} bytes" + (f" ({limit // 1024} KiB)" if limit % 1024 == 0 else "")
    whose = f"template {shorten(taker)} takes" if taker else "Dockyard takes"
    raise PayloadTooLarge(
        f"{what} is {size} bytes; {whose} at most {shown}",
        hint="put long material in a file in the workspace and point the agent at it",
    )


def check_text(field: str, value: str) -> None:
    """Refuse text that is not valid Unicode, or holds NUL; `field` names it."""
    bad = _SURROGATE_OR_NUL.search(value)
    if bad is None:
        return
    code = ord(bad.group())
    what = "NUL" if code == 0 else f"an unpaired surrogate U+{code:04X}"
    raise ParameterError(
        f"{shorten(field)} contains {what} at position {bad.start()}; "
        "text must be valid Unicode without NUL"
    )


def check_strings(value: Any, field: str) -> None:
    """check_text on every string in `value` (keys too), each named by its path."""
    if isinstance(value, str):
        check_text(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if isinstance(key, str) else field
            if isinstance(key, str):
                check_text(f"a key of {field}", key)
            check_strings(item, name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_strings(item, f"{field}[{i}]")


_ids = itertools.count()


def new_prompt_id() -> str:
    """A prompt id (32 hex digits) that sorts in the order prompts were made.

    Prompts are delivered in (created_at, id) order and created_at has milliseconds: a
    burst sent within one millisecond kept its order only if the ids sort like time. The
    clock in nanoseconds, then a counter of this process, then randomness for uniqueness.
    """
    return f"{time.time_ns():016x}{next(_ids) % 0x10000:04x}{secrets.token_hex(6)}"


# A prompt's delivery states. Taken and failed are final: a failed prompt was refused or
# could not be typed whole, and the reason says why; neither holds up the prompts after it.
FINISHED = PROMPT_FINISHED
STATE_ORDER = {QUEUED: 0, DELIVERED: 1, TAKEN: 2, FAILED: 2}

# what a bridge answers to a prompt it will never take, however often it is sent (a body
# too large, content it cannot read); any other error may pass (the agent not started,
# the bridge restarting) and the prompt stays queued
REFUSED_FOR_GOOD = frozenset({400, 413, 414, 415, 422})


def refusal_reason(status: int, body: str) -> str | None:
    """Why a prompt failed, when a bridge's `status` answer refuses it for good; else None."""
    if status not in REFUSED_FOR_GOOD:
        return None
    said = body
    with contextlib.suppress(ValueError, AttributeError):
        # the bridge's problem+json says it in "detail" (agentapi's ErrorModel); a bridge
        # older than that, still running in a workspace, in "error"
        data = json.loads(body)
        said = str(data.get("detail") or data.get("error") or body)
    return f"the workspace's bridge refused it ({status}): {shorten(said.strip())}"
