"""Working/idle from the agent's own hooks (profile state_source "hooks"), not from its screen.

Agents such as Claude Code run hook commands at fixed points of a turn. A small hook
script POSTs each one to the bridge (`POST /dockyard/hook {"event": ...}`), and this
tracker turns them into a deterministic verdict:

* `prompt_submitted` (UserPromptSubmit): the agent took a prompt; a turn runs.
* `tool_use` (PreToolUse): a turn runs, even one nobody submitted (a scheduled wake-up).
* `stop` / `stop_failure` (Stop / StopFailure): the turn ended; the agent waits for input.
* `session_start`: the agent is up (with a quiet terminal: its input box is drawn).
* `notification`, `session_end`: recorded only.
* `output`: what the agent said while a turn runs (its `text`), nothing more.

A hook event may also carry what the agent said (`"text"`: its reply for the turn, tool
uses as one-line summaries). The bridge appends it to the transcript as output lines with
`"source": "agent"`: a TUI agent redraws its screen with cursor movement rather than
newlines, so the line-based screen capture (`"source": "screen"` then) is mostly chrome.

The screen still decides two things the hooks cannot: when the agent first shows its
input box (unless a session_start came), and a turn the hooks did not see start. Such a
turn begins when a delivered prompt is taken without a prompt_submitted (assumed after
the take timeout: a built-in slash command runs no hook) or when raw keys are typed (they
may interrupt a turn, which ends with no stop). Until the next hook event the screen's
verdict (quiet at the prompt) applies, so the state never sticks at working.
"""

from __future__ import annotations

import re
from typing import Any

SCREEN, HOOKS = "screen", "hooks"
STATE_SOURCES = (SCREEN, HOOKS)

SESSION_START = "session_start"
PROMPT_SUBMITTED = "prompt_submitted"
TOOL_USE = "tool_use"
STOP = "stop"
STOP_FAILURE = "stop_failure"
NOTIFICATION = "notification"
SESSION_END = "session_end"
OUTPUT = "output"
EVENTS = (
    SESSION_START,
    PROMPT_SUBMITTED,
    TOOL_USE,
    STOP,
    STOP_FAILURE,
    NOTIFICATION,
    SESSION_END,
    OUTPUT,
)
_BUSY = (PROMPT_SUBMITTED, TOOL_USE)
_DONE = (STOP, STOP_FAILURE)
# the longest event name accepted (unknown names are counted, never stored at length)
MAX_EVENT_LEN = 64
# a transcript line longer than this is cut into pieces (as the screen's lines are)
MAX_TEXT_LINE = 16384
# control characters a transcript reader never wants (tabs and newlines are kept)
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class HookTracker:
    """What the agent's hooks said: is a turn running, and can the hooks be trusted now."""

    def __init__(self) -> None:
        # a turn runs: a prompt_submitted/tool_use came and no stop since
        self.busy = False
        # True while the hooks saw every turn boundary; False: the screen decides for now
        self.confirmed = True
        self.session_started = False
        self.counts: dict[str, int] = {}
        self.ignored = 0
        self.last_event: str | None = None
        self.last_event_at: float | None = None

    def on_event(self, event: str, now: float) -> bool:
        """Record a hook event; False (and no state change) for an unknown one."""
        if event not in EVENTS:
            self.ignored += 1
            return False
        self.counts[event] = self.counts.get(event, 0) + 1
        if event == OUTPUT:
            return True  # lines only: it says nothing of the turn, may come after its end
        self.last_event = event
        self.last_event_at = now
        if event == SESSION_START:
            self.session_started = True
        elif event in _BUSY:
            self.busy = True
            self.confirmed = True
        elif event in _DONE:
            self.busy = False
            self.confirmed = True
        return True

    def unconfirm(self) -> None:
        """Something the hooks may not report happened: let the screen decide until they speak."""
        self.confirmed = False

    def idle(self, screen_resting: bool) -> bool:
        """Whether the agent waits for input (no prompt in flight or queued: the caller checks)."""
        if self.confirmed:
            return not self.busy
        return screen_resting

    def started(self, screen_resting: bool, quiet: bool) -> bool:
        """Whether the agent is up and ready for its first prompt."""
        return screen_resting or (self.session_started and quiet)

    def reason(self, queued: int, in_flight: bool) -> str:
        """Why the state is what it is, for the task's history."""
        if queued:
            return "a prompt is queued"
        if in_flight:
            return "a prompt was typed in; no prompt_submitted hook yet"
        if not self.confirmed:
            return "screen (a turn the hooks did not see)"
        if self.last_event is None:
            return "hooks (no event yet)"
        return f"hook {self.last_event}"

    def to_dict(self) -> dict[str, Any]:
        """The status view."""
        return {
            "busy": self.busy,
            "confirmed": self.confirmed,
            "last_event": self.last_event,
            "events": dict(self.counts),
            "ignored": self.ignored,
        }


def parse_event(body: dict[str, Any]) -> str:
    """The event name of a `POST /dockyard/hook` body; ValueError when there is none."""
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise ValueError("event must be a non-empty string")
    event = event.strip()
    if len(event) > MAX_EVENT_LEN:
        raise ValueError(f"event must be at most {MAX_EVENT_LEN} characters")
    return event


def parse_text(body: dict[str, Any]) -> list[str]:
    """The agent's text a `POST /dockyard/hook` body carries, as transcript lines.

    No text (absent, null, blank): no lines. CR LF and CR end lines too; other control
    characters and trailing spaces go; blank lines around the text go, blank lines inside
    it stay (paragraphs). ValueError when `text` is not a string.
    """
    text = body.get("text")
    if text is None:
        return []
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    text = _TEXT_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    kept = [i for i, line in enumerate(lines) if line]
    if not kept:
        return []
    lines = lines[kept[0] : kept[-1] + 1]
    return [
        line[i : i + MAX_TEXT_LINE]
        for line in lines
        for i in range(0, max(len(line), 1), MAX_TEXT_LINE)
    ]


def bridge_env(listen_host: str, port: int, token_file: str) -> dict[str, str]:
    """What the agent (and its hook commands) need to reach the bridge from inside."""
    host = listen_host.strip("[]")
    if host in ("", "0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return {
        "DOCKYARD_BRIDGE_URL": f"http://{host}:{port}",
        "DOCKYARD_BRIDGE_TOKEN_FILE": token_file,
    }
