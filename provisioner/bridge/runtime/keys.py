"""The keystrokes that type a prompt into the agent's terminal: pure, no I/O.

Whatever a prompt holds, typing it must only ever enter text. In a terminal a control
character is a key: Ctrl-U erases the line typed so far, Ctrl-D ends a line-mode agent's
input, Ctrl-C/Ctrl-Z/Ctrl-\\ signal it (the tty's ISIG), Ctrl-V quotes the next key, ESC
and the C1 CSI (0x9b) start sequences a full-screen agent acts on. The server refuses
them already; here (defence in depth: the initial prompt comes from a config, and any
client with the token can queue a prompt) each is shown as an inert visible symbol.
`type: raw` input, the agentapi way to send keys on purpose, never comes through here.
"""

from __future__ import annotations

LINE, PASTE = "line", "paste"

# Linux's N_TTY holds at most 4096 bytes of unread input in canonical mode, the last one
# kept for the newline: a longer line is cut there, silently
CANON_LINE_BYTES = 4095
# a long line goes to a canonical-mode reader in pieces this big (see canonical_keys)
CHUNK_BYTES = 1024
BRACKETED_PASTE = ("\x1b[200~", "\x1b[201~")


def _inert_table() -> dict[int, str]:
    # C0 as its Control Pictures symbol (U+2400 + code: ^U shows as U+2415), DEL as U+2421,
    # C1 (no pictures exist) as U+FFFD; newline and tab stay text
    table = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
    table[0x7F] = "\u2421"
    table.update({code: "\ufffd" for code in range(0x80, 0xA0)})
    # an unpaired surrogate cannot be encoded at all (nor written to the transcript)
    table.update({code: "\ufffd" for code in range(0xD800, 0xE000)})
    return table


_INERT = _inert_table()


def inert(text: str) -> str:
    """`text` with every control character but newline and tab made a visible symbol
    (and an unpaired surrogate U+FFFD)."""
    return text.translate(_INERT)


def shown_text(content: str, mode: str = LINE) -> str:
    """What the agent is given of `content`: its lines as `mode` sends them, inert."""
    if mode == PASTE:
        # newlines are the terminal's \n inside a paste
        text = content.replace("\r\n", "\n").replace("\r", "\n")
    else:
        # a newline would submit early, so the whole prompt goes on one line
        text = content.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return inert(text)


def submit_text(content: str, mode: str = LINE) -> str:
    """The keystrokes that submit `content` to the agent.

    "line": typed on one line, then Enter. "paste": a bracketed paste, then Enter, for
    agents that turn on bracketed paste (Claude Code): the lines stay lines, and a long
    prompt is not taken for a paste that swallows the Enter. Inside, an ESC would end the
    paste early: like every control character it is shown, not typed.
    """
    text = shown_text(content, mode)
    if mode == PASTE:
        start, end = BRACKETED_PASTE
        return f"{start}{text}{end}\r"
    return text + "\r"


class Undeliverable(Exception):
    """A prompt the agent's terminal cannot take whole; the message says why."""


def canonical_keys(keys: bytes, veof: bytes) -> bytes:
    """`keys` made safe for a terminal in canonical mode, where a line holds 4095 bytes.

    A longer line goes in pieces, each ended by the terminal's end-of-file key (VEOF,
    Ctrl-D): in canonical mode it hands what was typed so far to the reader without a
    newline, so the reader's next read goes on with the same line (a line reader reads
    on until the newline) and the next piece finds the buffer free. VEOF on an empty
    line would be end of input, so it only ever follows a piece of text. `veof`: the
    terminal's VEOF character; b"\\0" when it is disabled, and then a line too long is
    refused.
    """
    lines = keys.split(b"\n")
    # the Enter that ends a line (a CR the terminal reads as newline) takes no place
    longest = max(len(line.removesuffix(b"\r")) for line in lines)
    if longest <= CANON_LINE_BYTES:
        return keys
    if veof in (b"", b"\0") or veof in keys:
        # no way to hand a piece over (or the key would come through as text)
        raise Undeliverable(
            f"the agent reads lines in canonical mode, which holds at most "
            f"{CANON_LINE_BYTES} bytes; this prompt has a line of {longest} bytes"
        )
    return b"\n".join(veof.join(_pieces(line)) for line in lines)


def _pieces(line: bytes) -> list[bytes]:
    """`line` in non-empty pieces of at most CHUNK_BYTES, never inside a UTF-8 character."""
    pieces = []
    start = 0
    while start < len(line):
        end = min(start + CHUNK_BYTES, len(line))
        while end < len(line) and end > start + 1 and (line[end] & 0xC0) == 0x80:
            end -= 1  # a continuation byte: cut before its character
        pieces.append(line[start:end])
        start = end
    return pieces or [line]
