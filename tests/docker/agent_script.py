"""The conversation every real-agent test plays: write a file, then edit it, then recap."""

from __future__ import annotations

WRITE_PROMPT = "Create hello.py that prints hello (dockyard-write)"
# long and multi-line: it must arrive whole (typed as a bracketed paste, then Enter)
EDIT_PROMPT = "Make hello.py greet dockyard instead (dockyard-edit).\n" + "\n".join(
    f"Requirement {i}: keep the file tidy." for i in range(1, 61)
)
RECAP_PROMPT = "What have you done so far? (dockyard-recap)"
HELLO = "print('hello')\n"
EDITED = "print('hello, dockyard')\n"
