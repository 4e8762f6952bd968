"""The bridge: wires the agent, transcript, screen and activity together; entry point main()."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Any

from .activity import EXITED, IDLE, Activity, Prompt
from .agent import AgentProcess, terminal_env
from .config import BridgeConfig, ConfigError, load_config
from .screen import TerminalScreen
from .transcript import Conversation, LineAssembler, Transcript

PROMPTS_FILE = "prompts.json"
TRANSCRIPT_FILE = "transcript.jsonl"
MAX_WAIT_S = 30.0
MAX_LIMIT = 10000
USER, RAW = "user", "raw"


class Rejected(Exception):
    """A request the bridge refuses; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _log(message: str) -> None:
    sys.stderr.write(f"dockyard-bridge: {message}\n")
    sys.stderr.flush()


def _atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def submit_text(content: str, mode: str = "line") -> str:
    """The keystrokes that submit `content` to the agent (mode "line" is the only one yet)."""
    # a newline would submit early, so the whole prompt goes on one line
    text = content.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text + "\r"


class Bridge:
    """All bridge state behind one condition variable; HTTP handlers call its methods."""

    def __init__(self, config: BridgeConfig, token: str) -> None:
        self.config = config
        self.token = token
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.state_dir = Path(config.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        prompts_path = self.state_dir / PROMPTS_FILE
        transcript_path = self.state_dir / TRANSCRIPT_FILE
        self.resumed = prompts_path.exists() or (
            transcript_path.exists() and transcript_path.stat().st_size > 0
        )
        self.transcript = Transcript(transcript_path)
        profile = config.profile
        self.conversation = Conversation(re.compile(profile.prompt_regex))
        for entry in self.transcript.entries:
            self.conversation.add(entry)
        self.assembler = LineAssembler()
        self.screen = TerminalScreen(config.columns, config.rows, profile.prompt_regex)
        now = time.time()
        self.activity = Activity(profile.quiet_s, profile.take_timeout_s, now)
        self.initial_prompt_queued = self._load_prompts(prompts_path)
        if not self.initial_prompt_queued:
            if config.initial_prompt:
                prompt_id = config.initial_prompt_id or uuid.uuid4().hex
                self.activity.enqueue(prompt_id, config.initial_prompt, now)
            self.initial_prompt_queued = True
        self._persisted_changes = -1
        self._persist_prompts()
        self.agent: AgentProcess | None = None
        self.state = self.activity.state(now)
        # every status change, numbered, so each SSE client can send all it has not sent
        self.status_events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=256)
        self.status_counter = 0
        self._record_status()
        # bumped on any change a waiter may care about (entries, state, prompts)
        self.version = 0
        self._mirror = True
        self._ticker: threading.Thread | None = None

    # -- persistence ---------------------------------------------------------------------

    def _load_prompts(self, path: Path) -> bool:
        """Restore prompts from a previous run; return whether the initial prompt was queued."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            prompts = [Prompt.from_state(p) for p in data.get("prompts", [])]
            queued = bool(data.get("initial_prompt_queued", True))
        except FileNotFoundError:
            # a transcript without prompts.json is still a previous run: never re-run its prompt
            return self.resumed
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            broken = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            _log(f"cannot read {path} ({exc}); moved it to {broken.name}, starting with no queue")
            path.replace(broken)
            return True
        self.activity.restore(prompts)
        return queued

    def _persist_prompts(self) -> None:
        """Rewrite prompts.json if any prompt changed since the last write."""
        if self.activity.changes == self._persisted_changes:
            return
        data = {
            "version": 1,
            "initial_prompt_queued": self.initial_prompt_queued,
            "prompts": [p.to_state() for p in self.activity.prompts],
        }
        try:
            _atomic_write(self.state_dir / PROMPTS_FILE, json.dumps(data, ensure_ascii=False))
            self._persisted_changes = self.activity.changes
        except OSError as exc:
            _log(f"cannot persist prompts: {exc}")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the agent (resume_command on a resumed workspace) and the ticker thread."""
        config = self.config
        argv = config.agent_command
        if self.resumed and config.resume_command:
            argv = config.resume_command
        self.agent = AgentProcess(
            argv,
            config.cwd,
            terminal_env(config.env),
            config.columns,
            config.rows,
            self._on_output,
            self._on_exit,
        )
        try:
            self.agent.start()
        except OSError as exc:
            _log(f"cannot start the agent: {exc}")
            self.agent = None
            self._on_exit(127)
        self._ticker = threading.Thread(target=self._tick_loop, name="bridge-ticker", daemon=True)
        self._ticker.start()

    def shutdown(self) -> None:
        """Stop the agent (TERM, then KILL after 2 s), then persist everything."""
        if self.agent is not None:
            self.agent.terminate(grace_s=2.0)
        with self.cond:
            self.stopping.set()
            self.cond.notify_all()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
        with self.cond:
            line = self.assembler.finish()
            if line is not None:
                self._append_output(line, time.time(), partial=True)
            self.transcript.close()
            self._persist_prompts()

    # -- agent events (reader thread) ----------------------------------------------------

    def _on_output(self, data: bytes) -> None:
        if self._mirror:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except (OSError, ValueError):
                self._mirror = False  # nobody reads the container log: keep going without it
        # only the reader thread touches the screen, so emulation runs outside the lock
        self.screen.feed(data)
        at_prompt = self.screen.at_prompt()
        with self.cond:
            now = time.time()
            for line in self.assembler.feed(data):
                self._append_output(line, now)
            self.activity.on_output(now, at_prompt)
            self.transcript.flush()
            self._changed(now)

    def _on_exit(self, code: int) -> None:
        with self.cond:
            now = time.time()
            line = self.assembler.finish()
            if line is not None:
                self._append_output(line, now, partial=True)
            self.activity.on_exit(code, now)
            self.transcript.flush()
            self._changed(now)
        _log(f"agent exited with code {code}")

    # -- ticker --------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        """Apply time-driven changes: partial-line flush, deliveries, take timeouts, idle."""
        with self.cond:
            while not self.stopping.is_set():
                now = time.time()
                self._tick(now)
                deadline = self.activity.next_deadline(now)
                timeout = 1.0 if deadline is None else min(1.0, max(0.005, deadline - now))
                self.cond.wait(timeout)

    def _tick(self, now: float) -> None:
        activity = self.activity
        last_seq = self.transcript.last_seq
        activity.tick(now)
        if activity.quiet(now):
            line = self.assembler.flush()
            if line is not None:
                # the transcript is complete when idle: a prompt line shows up before input
                self._append_output(line, now, partial=True)
                self.transcript.flush()
        prompt = activity.next_delivery(now)
        if prompt is not None:
            self._deliver(prompt, now)
        # most ticks change nothing: then waiters are not woken
        self._changed(now, touched=self.transcript.last_seq != last_seq)

    def _deliver(self, prompt: Prompt, now: float) -> None:
        """Type a prompt into the terminal and record it where the terminal shows it."""
        entry = self.transcript.append("input", prompt.content, now, prompt_id=prompt.id)
        self.conversation.add(entry)
        self.transcript.flush()
        if self.agent is not None:
            text = submit_text(prompt.content, self.config.profile.submit)
            self.agent.write(text.encode("utf-8"))

    # -- shared helpers (lock held) ------------------------------------------------------

    def _append_output(self, line: str, now: float, partial: bool = False) -> None:
        extra = {"partial": True} if partial else {}
        entry = self.transcript.append("output", line, now, **extra)
        self.conversation.add(entry)

    def _changed(self, now: float, touched: bool = True) -> None:
        """Record a state change, persist prompts, wake every waiter if anything changed."""
        state = self.activity.state(now)
        if state != self.state:
            self.state = state
            self._record_status()
            touched = True
        if self.activity.changes != self._persisted_changes:
            self._persist_prompts()
            touched = True
        if touched:
            self.version += 1
            self.cond.notify_all()

    def _record_status(self) -> None:
        self.status_counter += 1
        event = {"status": "stable" if self.state == IDLE else "running", "state": self.state}
        self.status_events.append((self.status_counter, event))

    def status_locked(self) -> dict[str, Any]:
        """The GET /status body (lock held)."""
        agent = self.agent
        return {
            "status": "stable" if self.state == IDLE else "running",
            "dockyard": {
                "state": self.state,
                "exit_code": self.activity.exit_code,
                "last_seq": self.transcript.last_seq,
                "queued_prompts": self.activity.queued,
                "agent_pid": agent.pid if agent is not None and self.state != EXITED else None,
            },
        }

    # -- API -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The GET /status body."""
        with self.cond:
            return self.status_locked()

    def messages(self) -> list[dict[str, Any]]:
        """agentapi's conversation turns."""
        with self.cond:
            return self.conversation.messages()

    def prompts(self) -> list[dict[str, Any]]:
        """Every prompt with its delivery history."""
        with self.cond:
            return [p.to_dict() for p in self.activity.prompts]

    def submit(self, content: str, type: str, prompt_id: str | None) -> str:
        """Queue a user prompt or type raw keys; return the prompt id."""
        prompt_id = prompt_id or uuid.uuid4().hex
        with self.cond:
            if self.activity.exited:
                code = self.activity.exit_code
                raise Rejected(409, f"the agent has exited (code {code}); it takes no input")
            now = time.time()
            if type == RAW:
                entry = self.transcript.append("input", content, now, raw=True, prompt_id=prompt_id)
                self.conversation.add(entry)
                self.transcript.flush()
                if self.agent is not None:
                    self.agent.write(content.encode("utf-8"))
                self._changed(now)
                return prompt_id
            existing = self.activity.find(prompt_id)
            if existing is not None:
                # a retried POST must not run the prompt twice
                if existing.content == content:
                    return prompt_id
                raise Rejected(409, f"prompt id {prompt_id} already used for a different prompt")
            self.activity.enqueue(prompt_id, content, now)
            self._changed(now)  # working from this moment, before the caller hears back
            return prompt_id

    def log(self, after: int, wait: float, limit: int, state: str | None) -> dict[str, Any]:
        """Entries after `after`; long-polls up to `wait` s while none and the state holds."""
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        with self.cond:
            expected = state or self.state
            while True:
                entries = self.transcript.after(after, limit)
                if entries or self.state != expected or self.stopping.is_set():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            return {
                "entries": entries,
                "last_seq": self.transcript.last_seq,
                "status": self.status_locked(),
            }


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM/SIGINT; 0 on a clean stop, non-zero on a bad start."""
    from .http import make_server  # here, so the pure modules import without http machinery

    parser = argparse.ArgumentParser(prog="dockyard-bridge", description=__doc__)
    parser.add_argument("--config", required=True, help="the bridge's JSON configuration")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, warn=_log)
        token = config.read_token()
    except ConfigError as exc:
        _log(f"bad configuration: {exc}")
        return 2
    try:
        bridge = Bridge(config, token)
    except OSError as exc:
        _log(f"cannot use state_dir {config.state_dir}: {exc}")
        return 1
    try:
        server = make_server(bridge, config.host, config.port)
    except OSError as exc:
        _log(f"cannot listen on {config.listen}: {exc}")
        return 1
    stop = threading.Event()
    _install_signals(stop)
    bridge.start()  # forks the agent before the HTTP threads exist
    # a short poll interval makes server.shutdown() quick when Docker stops the container
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
    )
    serving.start()
    pid = bridge.agent.pid if bridge.agent is not None else None
    _log(
        f"listening on {config.host}:{server.server_port}; agent pid {pid}; "
        f"resumed: {bridge.resumed}"
    )
    while not stop.wait(1.0):
        pass
    _log("stopping")
    bridge.shutdown()
    server.shutdown()
    server.server_close()
    return 0
