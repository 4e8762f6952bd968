#!/usr/bin/env python3
"""Dockyard's glue around Claude Code in a workspace (standard library only).

dockyard-claude seed           answer Claude Code's first-run questions ahead of time,
                               install the hooks that report each turn to the bridge and
                               register Dockyard's MCP tools (dockyard-mcp)
                               (the template's setup script; safe to run again)
dockyard-claude hook EVENT     a hook command: tell the bridge EVENT (prompt_submitted,
                               stop, ...), and at the end of a turn what Claude Code said
                               in it; never fails Claude Code, never prints to stdout
dockyard-claude report INFO    left behind by a tool_use hook: once Claude Code wrote the
                               tool use down, tell the bridge what the turn said so far
dockyard-claude resume ARGS    start `claude ARGS --continue` when the workspace has a
                               conversation to continue, else `claude ARGS`
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HOOK_COMMAND = "dockyard-claude hook"
# the in-workspace MCP relay the bridge puts on the agent's PATH (docs/agents.md)
MCP_COMMAND = "dockyard-mcp"
# Claude Code hook event -> the bridge's event name (POST /dockyard/hook)
HOOK_EVENTS = {
    "SessionStart": "session_start",
    "UserPromptSubmit": "prompt_submitted",
    "PreToolUse": "tool_use",
    "Stop": "stop",
    "StopFailure": "stop_failure",
    "Notification": "notification",
    "SessionEnd": "session_end",
}
HOOK_TIMEOUT_S = 10
POST_TIMEOUT_S = 5.0
# events that end a turn: their POST carries the turn's reply (the bridge's transcript
# shows it; Claude Code's screen is redrawn in place, so its lines are mostly chrome)
TURN_END_EVENTS = ("stop", "stop_failure")
# a tool about to run (PreToolUse): a reporter then sends what the turn said up to it,
# as an `output` event (lines only), once Claude Code has written that to its transcript
TOOL_USE_EVENT = "tool_use"
OUTPUT_EVENT = "output"
REPORT_WAIT_S = 10.0
REPORT_POLL_S = 0.05
# at most this much reply text in one POST (the bridge takes bodies up to 1 MiB)
MAX_TEXT_CHARS = 256 * 1024
# a tool use is one line: its name and the input that tells most, cut to this length
TOOL_SUMMARY_CHARS = 120
# the transcript lines _read_turn parses: messages and the summaries of Stop hooks
_MAYBE_TURN = re.compile(r'"type"\s*:\s*"(?:assistant|user)"|"stop_hook_summary"')
TOOL_SUMMARY_KEYS = (
    "file_path",
    "notebook_path",
    "command",
    "pattern",
    "url",
    "query",
    "description",
    "path",
    "skill",
)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"dockyard-claude: {path} is unreadable ({exc}); starting it afresh\n")
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.dockyard.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def _claude_version() -> str | None:
    try:
        out = subprocess.run(
            ["claude", "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"\s*(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def _our_hooks() -> dict[str, list[dict[str, Any]]]:
    return {
        claude_event: [
            {
                "hooks": [
                    {
                        "type": "command",
                        "command": f"{HOOK_COMMAND} {event}",
                        "timeout": HOOK_TIMEOUT_S,
                    }
                ]
            }
        ]
        for claude_event, event in HOOK_EVENTS.items()
    }


def _merge_hooks(existing: Any) -> dict[str, Any]:
    """The user's own hooks, kept, plus ours (replacing earlier copies of ours)."""
    hooks: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
    for claude_event, ours in _our_hooks().items():
        kept = []
        for group in hooks.get(claude_event) or []:
            commands = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(commands, list) and any(
                isinstance(c, dict) and str(c.get("command", "")).startswith(HOOK_COMMAND)
                for c in commands
            ):
                continue
            kept.append(group)
        hooks[claude_event] = kept + ours
    return hooks


def seed(workdir: str) -> int:
    """Pre-answer first-run questions in ~/.claude.json; hooks in ~/.claude/settings.json."""
    home = Path.home()
    state_path = home / ".claude.json"
    state = _load(state_path)
    state["hasCompletedOnboarding"] = True
    version = _claude_version()
    if version:
        state["lastOnboardingVersion"] = version  # no release notes screen either
    state.setdefault("theme", "dark")
    state["autoUpdates"] = False
    state["bypassPermissionsModeAccepted"] = True
    key = os.environ.get("ANTHROPIC_API_KEY", "")
    if key:
        # Claude Code asks once whether to use a key from the environment; it remembers the
        # answer by the key's last 20 characters
        responses = state.setdefault("customApiKeyResponses", {})
        approved = responses.setdefault("approved", [])
        if key[-20:] not in approved:
            approved.append(key[-20:])
        responses.setdefault("rejected", [])
    project = state.setdefault("projects", {}).setdefault(workdir, {})
    project["hasTrustDialogAccepted"] = True
    project["hasCompletedProjectOnboarding"] = True
    project.setdefault("allowedTools", [])
    relay = shutil.which(MCP_COMMAND)
    if relay:
        # Dockyard's tools (create_task, get_task, complete_task...) for this task, over
        # the bridge's relay: a stdio server of the user's scope, which needs no approval
        state.setdefault("mcpServers", {})["dockyard"] = {
            "type": "stdio",
            "command": relay,
            "args": [],
            "env": {},
        }
    _save(state_path, state)

    settings_path = home / ".claude" / "settings.json"
    settings = _load(settings_path)
    settings["skipDangerousModePermissionPrompt"] = True
    settings["hooks"] = _merge_hooks(settings.get("hooks"))
    _save(settings_path, settings)
    where = f"version {version}" if version else "version unknown"
    tools = ", Dockyard's MCP tools registered" if relay else ""
    print(f"dockyard-claude: Claude Code ({where}) set up for {workdir}, hooks installed{tools}")
    return 0


def _turn_start(entry: dict[str, Any]) -> bool:
    """Whether a transcript entry opens a turn's reply: a prompt typed by the user, or the
    end of an earlier Stop (a Stop hook that blocked lets the turn go on: not twice)."""
    if entry.get("type") == "system":
        return entry.get("subtype") == "stop_hook_summary"
    if entry.get("type") != "user" or entry.get("isMeta") or entry.get("isCompactSummary"):
        return False
    content = (entry.get("message") or {}).get("content")
    if isinstance(content, str):
        return True
    # a list: tool results come back as user entries; they continue the turn
    return isinstance(content, list) and not any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _read_turn(transcript_path: str) -> tuple[str, list[dict[str, Any]]]:
    """(which turn, its assistant entries): the entries of Claude Code's session JSONL since
    the current turn began; the turn is named by its first entry's uuid (or line number)."""
    turn: list[dict[str, Any]] = []
    key = ""
    with open(transcript_path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not _MAYBE_TURN.search(line):
                continue  # not a message (most lines): not worth parsing
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written
            if not isinstance(entry, dict) or entry.get("isSidechain"):
                continue
            if _turn_start(entry):
                turn = []
                key = str(entry.get("uuid") or f"line {number}")
            elif entry.get("type") == "assistant":
                turn.append(entry)
    return key, turn


def tool_summary(name: str, tool_input: Any, cwd: str = "") -> str:
    """One line for a tool use: `[tool] Write hello.py`, `[tool] Bash: pytest -q`."""
    detail = ""
    if isinstance(tool_input, dict):
        for key in TOOL_SUMMARY_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value.strip():
                detail = value.strip().splitlines()[0]
                if key.endswith("path") and cwd and detail.startswith(cwd.rstrip("/") + "/"):
                    detail = detail[len(cwd.rstrip("/")) + 1 :]
                detail = (": " if key == "command" else " ") + detail
                break
    line = f"[tool] {name}{detail}"
    if len(line) > TOOL_SUMMARY_CHARS:
        line = line[: TOOL_SUMMARY_CHARS - 1] + "…"
    return line


def turn_lines(payload: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(which turn, its lines, its texts) so far: every text block since the user's prompt
    and each tool use as one line, in order, from the session transcript."""
    lines: list[str] = []
    texts: list[str] = []
    key = ""
    path = payload.get("transcript_path")
    cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else ""
    if isinstance(path, str) and path:
        try:
            key, turn = _read_turn(path)
        except OSError:
            turn = []
        for entry in turn:
            content = (entry.get("message") or {}).get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            for block in content if isinstance(content, list) else []:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and str(block.get("text") or "").strip():
                    texts.append(str(block["text"]).strip())
                    lines.append(texts[-1])
                elif block.get("type") == "tool_use":
                    lines.append(tool_summary(str(block.get("name")), block.get("input"), cwd))
    return key, lines, texts


def turn_text(payload: dict[str, Any], already_sent: int = 0) -> str:
    """What Claude Code said in the turn that just ended, less the first `already_sent`
    lines (reported while it ran); the hook input's last_assistant_message when the
    transcript lacks it (or is gone)."""
    _key, lines, texts = turn_lines(payload)
    return _reply(payload, lines[already_sent:], texts)


def _reply(payload: dict[str, Any], lines: list[str], texts: list[str]) -> str:
    """`lines`, plus the hook input's last_assistant_message where the transcript's
    `texts` lack it."""
    last = payload.get("last_assistant_message")
    said = {line.strip() for text in texts for line in text.splitlines()}
    if isinstance(last, str) and any(
        line.strip() not in said for line in last.splitlines() if line.strip()
    ):
        lines = [*lines, last.strip()]  # the transcript is behind (or unreadable)
    return _capped("\n".join(lines))


def _capped(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        cut = len(text) - MAX_TEXT_CHARS
        text = f"[{cut} characters of the reply left out]\n" + text[cut:]
    return text


class TurnProgress:
    """How many lines of the running turn were already reported, kept in a small file
    (each hook is its own process) and locked (tools may run, and hooks fire, in parallel)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> TurnProgress:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # releases the lock

    def _load(self, session: str, turn: str) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(self._fd, 65536, 0) or b"{}")
        except ValueError:
            return {}
        if not isinstance(data, dict) or [data.get("session"), data.get("turn")] != [session, turn]:
            return {}  # another turn (or session): nothing of this one was reported
        return data

    def sent(self, session: str, turn: str) -> int:
        sent = self._load(session, turn).get("sent")
        return sent if isinstance(sent, int) and sent >= 0 else 0

    def done(self, session: str, turn: str) -> bool:
        """The turn's end was reported: a reporter that comes later sends nothing."""
        return self._load(session, turn).get("done") is True

    def record(self, session: str, turn: str, sent: int, done: bool = False) -> None:
        data = json.dumps({"session": session, "turn": turn, "sent": sent, "done": done})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data.encode(), 0)


def progress_path() -> Path:
    return Path.home() / ".dockyard" / "claude-turn.json"


def final_text(payload: dict[str, Any], progress: TurnProgress) -> str:
    """At the turn's end: what it said that was not reported while it ran. The whole turn
    then counts as reported, so a reporter that comes late sends nothing twice."""
    session = str(payload.get("session_id") or "")
    key, lines, texts = turn_lines(payload)  # the transcript read once
    sent = progress.sent(session, key) if key else 0
    text = _reply(payload, lines[sent:], texts)
    # done, whatever the transcript had yet: the reply may have come from the hook input
    progress.record(session, key, len(lines), done=True)
    return text


def progress_text(payload: dict[str, Any], progress: TurnProgress) -> str:
    """While the turn runs: what it said since the last report (its text and tool uses)."""
    session = str(payload.get("session_id") or "")
    key, lines, _texts = turn_lines(payload)
    if not key or progress.done(session, key):
        return ""
    sent = progress.sent(session, key)
    progress.record(session, key, max(sent, len(lines)))
    return _capped("\n".join(lines[sent:]))


def _written(transcript_path: str, marker: str, offset: int) -> bool:
    """Whether `marker` is in the transcript past `offset` (its size at the hook: what is
    written down after that is all that can hold the tool use; a session's transcript
    can be tens of megabytes, and it is looked at every REPORT_POLL_S)."""
    try:
        with open(transcript_path, "rb") as f:
            f.seek(max(0, offset - len(marker)))
            return marker.encode() in f.read()
    except OSError:
        return False


def report(info: dict[str, Any]) -> int:
    """The reporter a PreToolUse hook leaves behind: wait until Claude Code has written the
    tool use to its transcript (it writes in batches: at the hook it is often not there
    yet), then send the bridge what the turn said up to it. Never blocks the tool."""
    path = info.get("transcript_path")
    if not isinstance(path, str) or not path:
        return 0
    marker = info.get("tool_use_id")
    # without the tool's id there is nothing to wait for: a short while, then report
    deadline = time.monotonic() + (REPORT_WAIT_S if marker else 1.0)
    offset = 0
    while time.monotonic() < deadline:
        # the whole file once (it may be written down already), then only what came since
        if isinstance(marker, str) and marker and _written(path, marker, offset):
            break
        offset = int(info.get("offset") or 0)
        time.sleep(REPORT_POLL_S)
    with TurnProgress(progress_path()) as progress:
        text = progress_text(info, progress)
        if text:
            _post({"event": OUTPUT_EVENT, "text": text})  # in order: under the lock
    return 0


def _start_reporter(payload: dict[str, Any]) -> None:
    info = {k: payload.get(k) for k in ("transcript_path", "session_id", "cwd", "tool_use_id")}
    try:
        info["offset"] = os.path.getsize(str(info["transcript_path"]))
    except (OSError, TypeError):
        info["offset"] = 0
    # detached, its output nowhere: Claude Code waits for a hook's output to close
    subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "report", json.dumps(info)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _post(body: dict[str, Any]) -> None:
    """POST a hook event to the bridge; a failure is said on stderr, never raised."""
    url = os.environ.get("DOCKYARD_BRIDGE_URL")
    token_file = os.environ.get("DOCKYARD_BRIDGE_TOKEN_FILE")
    if not url or not token_file:
        return  # not under a Dockyard bridge
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        request = urllib.request.Request(
            url.rstrip("/") + "/dockyard/hook",
            data=json.dumps(body).encode("utf-8"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        # the bridge is on this machine: no proxy, whatever the environment says
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=POST_TIMEOUT_S) as response:
            response.read()
    except Exception as exc:  # the message names the URL and the error, never the token
        event = body.get("event")
        sys.stderr.write(f"dockyard-claude: could not report {event} to the bridge: {exc}\n")


def hook(event: str) -> int:
    """Report `event` to the bridge. Exit 0 whatever happens: a hook must not block a turn."""
    try:
        payload = json.loads(sys.stdin.read() or "{}")
    except (OSError, ValueError):
        payload = {}
    if not os.environ.get("DOCKYARD_BRIDGE_URL") or not os.environ.get(
        "DOCKYARD_BRIDGE_TOKEN_FILE"
    ):
        return 0  # not under a Dockyard bridge
    body: dict[str, Any] = {"event": event}
    if isinstance(payload, dict):
        # never the prompt (the bridge has it): what says which turn this is, and at the
        # turn's end what Claude Code said in it (the task's logs show it)
        for key in ("hook_event_name", "session_id", "prompt_id", "notification_type"):
            if isinstance(payload.get(key), str):
                body[key] = payload[key]
        try:
            if event in TURN_END_EVENTS:
                with TurnProgress(progress_path()) as progress:
                    text = final_text(payload, progress)
                    if text:
                        body["text"] = text
                    _post(body)  # under the lock: after any report of this turn
                return 0
            if event == TOOL_USE_EVENT:
                _start_reporter(payload)
        except Exception as exc:  # a transcript in an unknown shape: the event still goes
            sys.stderr.write(f"dockyard-claude: could not read the turn's reply: {exc!r}\n")
    _post(body)
    return 0


def _has_conversation(workdir: str) -> bool:
    """Whether Claude Code kept a conversation for `workdir` that --continue can pick up."""
    config_dir = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    folder = config_dir / "projects" / re.sub(r"[^A-Za-z0-9]", "-", workdir)
    for path in folder.glob("*.jsonl"):
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                if any('"type":"user"' in line.replace(" ", "") for line in f):
                    return True
        except OSError:
            continue
    return False


def resume(args: list[str], workdir: str) -> int:
    """Exec Claude Code, continuing the last conversation when there is one."""
    argv = ["claude", *args]
    if _has_conversation(workdir):
        argv.append("--continue")
    os.execvp(argv[0], argv)
    return 127  # not reached


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "hook":
        return hook(argv[1])
    if len(argv) == 2 and argv[0] == "report":
        try:
            info = json.loads(argv[1])
        except ValueError:
            return 2
        return report(info) if isinstance(info, dict) else 2
    if argv and argv[0] == "seed":
        return seed(os.getcwd())
    if argv and argv[0] == "resume":
        return resume(argv[1:], os.getcwd())
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
