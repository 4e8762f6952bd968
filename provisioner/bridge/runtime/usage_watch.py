"""Following an agent's own records for usage (the parsers of usage.py), so that every
token it spends is reported once, across bridge restarts.

Claude Code and Codex write session logs under the agent's home; Aider prints a usage
line after each reply, which lands in the bridge's transcript. `UsageWatch.poll` reads
what is new since the last poll (whole lines only, from byte offsets kept per file) and
returns the usage found, merged per model. Its place in every file is kept in a small
JSON file in the bridge's state directory: a restarted bridge goes on where it stopped
instead of counting a session twice.

The files are the agent's, so as hostile as it: bounded in number and in what one poll
reads, and a file that shrank is read afresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .statedir import atomic_write, log
from .usage import AiderReport, ClaudeTranscript, CodexSession, Usage

# which agents keep records we read, by agentapi's agent type (config.agent_type)
CLAUDE, CODEX, AIDER = "claude", "codex", "aider"
WATCHED = (CLAUDE, CODEX, AIDER)
MAX_FILES = 200  # the newest session files followed; an agent makes one a session
READ_BYTES = 4 << 20  # read from one file in one poll at most (the rest next time)


def session_files(agent: str, home: Path, env: dict[str, str]) -> list[Path]:
    """The session logs `agent` writes under `home`, newest last (at most MAX_FILES)."""
    if agent == CLAUDE:
        root = Path(env.get("CLAUDE_CONFIG_DIR") or home / ".claude") / "projects"
        pattern = "*/*.jsonl"
    elif agent == CODEX:
        root = Path(env.get("CODEX_HOME") or home / ".codex") / "sessions"
        pattern = "*/*/*/rollout-*.jsonl"
    else:
        return []
    found = []
    for path in root.glob(pattern):
        try:
            if path.is_file() and not path.is_symlink():
                found.append((path.stat().st_mtime, str(path)))
        except OSError:
            continue  # gone meanwhile
    return [Path(p) for _, p in sorted(found)[-MAX_FILES:]]


def merged(found: Iterable[Usage]) -> list[Usage]:
    """Usage summed per model (dollars kept apart: a sum with dollars and one without)."""
    sums: dict[tuple[str | None, bool], list[float]] = {}
    for usage in found:
        key = (usage.model, usage.cost_usd is not None)
        total = sums.setdefault(key, [0, 0, 0.0])
        total[0] += usage.tokens_in
        total[1] += usage.tokens_out
        total[2] += usage.cost_usd or 0.0
    return [
        Usage(int(t[0]), int(t[1]), round(t[2], 6) if priced else None, model)
        for (model, priced), t in sums.items()
    ]


class UsageWatch:
    """Finds the usage of one workspace's agent in its own records."""

    def __init__(self, agent: str, home: Path, state_path: Path, env: dict[str, str]) -> None:
        self.agent = agent
        self.home = home
        self.env = env
        self.state_path = state_path
        self.claude = ClaudeTranscript()  # message ids are unique across its sessions
        self.aider = AiderReport()
        self.codex: dict[str, CodexSession] = {}
        self.offsets: dict[str, int] = {}
        self.seq = 0  # the last transcript entry read (Aider)
        self._load()

    @property
    def active(self) -> bool:
        """Whether this agent keeps records we know how to read."""
        return self.agent in WATCHED

    @property
    def reads_transcript(self) -> bool:
        """Whether poll() wants the bridge's transcript entries (Aider prints its usage)."""
        return self.agent == AIDER

    def _load(self) -> None:
        try:
            data = json.loads(self.state_path.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log(f"cannot read {self.state_path} ({exc}); usage is read afresh")
            return
        if not isinstance(data, dict):
            return
        seq = data.get("seq")
        self.seq = seq if isinstance(seq, int) else 0
        for path, place in (data.get("files") or {}).items():
            if not isinstance(place, dict) or not isinstance(place.get("offset"), int):
                continue
            self.offsets[str(path)] = max(place["offset"], 0)
            totals, model = place.get("totals"), place.get("model")
            if self.agent == CODEX and isinstance(totals, list) and len(totals) == 2:
                session = CodexSession()
                session.resume((totals[0], totals[1]), model if isinstance(model, str) else None)
                self.codex[str(path)] = session

    def _save(self) -> None:
        files: dict[str, Any] = {}
        for path, offset in self.offsets.items():
            files[path] = {"offset": offset}
            session = self.codex.get(path)
            if session is not None:
                files[path].update(totals=list(session.totals), model=session.model)
        try:
            atomic_write(self.state_path, json.dumps({"seq": self.seq, "files": files}))
        except OSError as exc:
            log(f"cannot keep the usage read so far in {self.state_path}: {exc}")

    def poll(self, transcript: Iterable[dict[str, Any]] = ()) -> list[Usage]:
        """Usage added since the last poll, merged per model; `transcript`: the bridge's
        entries after `self.seq` (Aider prints its usage there)."""
        if not self.active:
            return []
        found: list[Usage] = []
        moved = False
        if self.agent == AIDER:
            for entry in transcript:
                seq = entry.get("seq")
                if not isinstance(seq, int) or seq <= self.seq:
                    continue
                self.seq, moved = seq, True
                if entry.get("type") == "output" and not entry.get("partial"):
                    usage = self.aider.feed(str(entry.get("content", "")))
                    if usage is not None:
                        found.append(usage)
        for path in session_files(self.agent, self.home, self.env):
            lines = self._new_lines(path)
            if lines is None:
                continue
            moved = True
            parser = self.claude if self.agent == CLAUDE else self._codex(str(path))
            for line in lines:
                usage = parser.feed(line)
                if usage is not None:
                    found.append(usage)
        if moved:
            self._save()
        return merged(found)

    def _codex(self, path: str) -> CodexSession:
        return self.codex.setdefault(path, CodexSession())

    def _new_lines(self, path: Path) -> list[str] | None:
        """The whole lines added to `path` since its offset (None: nothing new)."""
        key = str(path)
        offset = self.offsets.get(key, 0)
        try:
            size = path.stat().st_size
            if size < offset:  # rewritten: read it afresh
                offset = 0
                self.codex.pop(key, None)
            if size == offset:
                return None
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                f.seek(offset)
                data = f.read(READ_BYTES)
        except OSError:
            return None
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < READ_BYTES:
                return None  # a line being written: next time
            end = len(data)  # one line longer than a poll reads: not a usage line, skip it
        self.offsets[key] = offset + end
        return data[:end].decode("utf-8", "replace").splitlines()
