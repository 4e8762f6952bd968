"""The bridge: wires the agent, transcript, screen and activity together.

launch.main() starts it; this module is what the launcher imports once the agent runs.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .activity import IDLE, WORKING, Activity, Prompt
from .agent import AgentProcess, agent_argv, agent_env, terminal_env
from .agentapi import TRANSPORT
from .cgroup import oom_kills, pids_limit_hits
from .config import BridgeConfig
from .hooks import HOOKS, HookTracker
from .keys import Undeliverable, shown_text, submit_text
from .mcp_relay import McpRelay
from .reports import PAGE as REPORTS_PAGE
from .reports import ReportLog
from .screen import TerminalScreen
from .setup import (
    DONE,
    FAILED,
    RUNNING,
    RunState,
    SetupScript,
    bridge_state,
    resolve_shell,
    setup_argv,
)
from .statedir import StateDir, log
from .task_command import COMPLETE, USAGE, ReportError, check_report
from .transcript import Conversation, LineAssembler, Transcript
from .usage_watch import UsageWatch
from .wire import (
    INPUT,
    OUTPUT,
    SOURCE_AGENT,
    SOURCE_SCREEN,
    SOURCE_SETUP,
    BridgeStatus,
    LogReply,
    PromptRecord,
)

MAX_WAIT_S = 30.0
# An unfinished line is shown early at the prompt (quiet_ms), elsewhere (a progress
# message) only after this long: a busy agent can pause mid-line for longer than quiet_ms,
# and the line would then be cut in two entries
PARTIAL_LINE_AFTER_S = 1.0
RECENT_PROMPTS = 32  # prompts carried in a log reply: enough to cover a burst
MAX_LIMIT = 10000
# how often the agent's own records are read for usage: each look that finds some makes
# a report, so seldom enough that they never crowd out the agent's own (a bounded log)
USAGE_EVERY_S = 15.0
USAGE_FILE = "usage.json"
USER, RAW = "user", "raw"


def _new_id() -> str:
    """An id for a prompt sent without one (the server always gives one)."""
    import uuid  # seldom needed, and ~2 ms of the bridge's start (it loads platform)

    return uuid.uuid4().hex


class Rejected(Exception):
    """A request the bridge refuses; carries the HTTP status to answer with, and for a
    request that is not as documented, agentapi's error details (location, message)."""

    def __init__(
        self, status: int, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


class Bridge:
    """All bridge state behind one condition variable; HTTP handlers call its methods."""

    def __init__(
        self,
        config: BridgeConfig,
        token: str,
        state: StateDir | None = None,
        run_state: RunState | None = None,
        agent: AgentProcess | None = None,
    ) -> None:
        """`state`, `run_state`: as the launcher read them (read here when not given).
        `agent`: the agent the launcher already started, not yet attached; start() adopts it.
        """
        self.config = config
        self.token = token
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.state_dir = (
            state if state is not None else StateDir(config.state_dir, config.workspace_id)
        )
        has_history = self.state_dir.has_history
        self.run_state = run_state if run_state is not None else self.state_dir.load_run_state()
        # the agent ran here before: start it with resume_command
        self.resumed = self.run_state.agent_started
        self.transcript = Transcript(self.state_dir.transcript_path)
        # what the agent reported with dockyard-task, and the key it reports with
        self.state_dir.claim_reports(token)
        self.reports = ReportLog(self.state_dir.reports_path)
        # a complete ends this run's reports; a later start (a retry of the task in the
        # same workspace) reports afresh, numbered on
        self.reports_from = self.reports.last_seq
        self.report_key = self.state_dir.report_key()
        # the agent's MCP messages, held until the server's relay answers them
        self.mcp = McpRelay()
        profile = config.profile
        self.conversation = Conversation(re.compile(profile.prompt_regex))
        for entry in self.transcript.entries:
            self.conversation.add(entry)
        self.assembler = LineAssembler()
        self.screen = TerminalScreen(config.columns, config.rows, profile.prompt_regex)
        now = time.time()
        hooks = HookTracker() if profile.state_source == HOOKS else None
        self.activity = Activity(
            profile.quiet_s, profile.take_timeout_s, now, hooks, prompt_last=profile.prompt_last
        )
        self.initial_prompt_queued = self._load_prompts(has_history)
        if not self.initial_prompt_queued:
            if config.initial_prompt:
                prompt_id = config.initial_prompt_id or _new_id()
                self.activity.enqueue(prompt_id, config.initial_prompt, now)
            self.initial_prompt_queued = True
        self._persisted_changes = -1
        self._persist_prompts()
        self.agent: AgentProcess | None = None
        self._early_agent = agent
        # the setup script: none, running (from the start when it must run), done or failed
        self.setup_phase = self.run_state.setup_phase(config.setup_script)
        self.setup_exit_code: int | None = 0 if self.setup_phase == DONE else None
        self._setup: SetupScript | None = None
        self._setup_thread: threading.Thread | None = None
        self._setup_assembler = LineAssembler()
        # SIGTERM/SIGINT arrived: from then on the state is `stopping`, whatever the agent does
        self.stop_requested = False
        self.state = self._current_state(now)
        # every status change, numbered, so each SSE client can send all it has not sent
        self.status_events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=256)
        self.status_counter = 0
        self._record_status()
        # bumped on any change a waiter may care about (entries, state, prompts)
        self.version = 0
        self._mirror = True
        self._ticker: threading.Thread | None = None
        # usage the agent records itself (Claude Code, Codex, Aider), reported as it grows
        env = terminal_env(config.env)
        home = Path(env.get("HOME") or Path.home())
        self.usage = UsageWatch(config.agent_type, home, self.state_dir.root / USAGE_FILE, env)
        self._usage_thread: threading.Thread | None = None
        self._usage_lock = threading.Lock()  # one look at a time (the thread, a complete)
        # the port the API really listens on (main() sets it once bound: the config may say 0)
        self.listen_port = config.port

    # -- persistence ---------------------------------------------------------------------

    def _save_run_state(self) -> None:
        self.state_dir.save_run_state(self.run_state)

    def _load_prompts(self, has_history: bool) -> bool:
        """Restore prompts from a previous run; return whether the initial prompt was queued."""

        def restore(states: list[Any]) -> None:
            self.activity.restore([Prompt.from_state(p) for p in states])

        loaded = self.state_dir.load_prompts(restore)
        if loaded is None:
            # a transcript without prompts.json is still a previous run: never re-run its prompt
            return has_history
        return loaded[1]

    def _persist_prompts(self) -> None:
        """Rewrite prompts.json if any prompt changed since the last write."""
        if self.activity.changes == self._persisted_changes:
            return
        prompts = [p.to_state() for p in self.activity.prompts]
        if self.state_dir.save_prompts(prompts, self.initial_prompt_queued):
            self._persisted_changes = self.activity.changes

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the setup script if it must run, else the agent; and the ticker thread."""
        config = self.config
        if self.setup_phase == RUNNING:
            assert config.setup_script is not None
            self._setup = SetupScript(
                setup_argv(resolve_shell(config.setup_shell), config.setup_script),
                config.cwd,
                self._env(),
                self._on_setup_output,
                self._on_setup_quiet,
            )
            self._setup_thread = threading.Thread(
                target=self._setup_then_agent, name="bridge-setup", daemon=True
            )
            self._setup_thread.start()
        elif self._early_agent is not None:
            self._adopt(self._early_agent)
        else:
            self._start_agent()
        self._ticker = threading.Thread(target=self._tick_loop, name="bridge-ticker", daemon=True)
        self._ticker.start()
        if self.usage.active:
            self._usage_thread = threading.Thread(
                target=self._usage_loop, name="bridge-usage", daemon=True
            )
            self._usage_thread.start()

    def _start_agent(self) -> None:
        """Spawn the agent (resume_command when it ran before)."""
        config = self.config
        agent = AgentProcess(
            agent_argv(config, self.resumed),
            config.cwd,
            self._env(),
            config.columns,
            config.rows,
        )
        try:
            agent.start()
        except OSError as exc:
            log(f"cannot start the agent: {exc}")
            self._on_exit(127, time.time())
            return
        self._adopt(agent)

    def _adopt(self, agent: AgentProcess) -> None:
        """Take over a started agent: its output so far, then all that follows."""
        if agent.pid is None:  # the launcher could not start it: it said why
            self._on_exit(127, time.time())
            return
        with self.cond:
            self.agent = agent
        agent.attach(self._on_output, self._on_exit)
        if not self.run_state.agent_started:
            with self.cond:
                self.run_state.agent_started = True
                self._save_run_state()

    def _env(self) -> dict[str, str]:
        """The environment of the setup script and the agent: how to reach the bridge too."""
        return agent_env(self.config, self.listen_port)

    def _setup_then_agent(self) -> None:
        """Run the setup script (setup thread); start the agent if it succeeded."""
        assert self._setup is not None
        shell = " ".join(self._setup.argv[:-2])
        log(f"running the setup script with {shell} in {self.config.cwd}")
        try:
            code = self._setup.run()
        except Exception as exc:  # the setup must end in a state whatever happens
            log(f"the setup script failed: {exc!r}")
            self._setup.terminate(grace_s=0.5)
            code = 1
        with self.cond:
            now = time.time()
            line = self._setup_assembler.finish()
            if line is not None:
                self._append_setup_line(line, now, partial=True)
            self.transcript.flush()
            self.setup_exit_code = code
            self.setup_phase = DONE if code == 0 else FAILED
            self.run_state.setup_done = code == 0
            self.run_state.setup_exit_code = code
            self._save_run_state()
            self._changed(now)
            start_agent = code == 0 and not self.stop_requested
        log(f"the setup script exited with code {code}")
        if start_agent:
            # shutdown() waits for this thread, so an agent started here is stopped too
            self._start_agent()

    def begin_stop(self) -> None:
        """A stop was asked for: report `stopping` from now on, and refuse new input."""
        with self.cond:
            if not self.stop_requested:
                self.stop_requested = True
                self._changed(time.time())

    def shutdown(self) -> None:
        """Stop the setup script or the agent (TERM, then KILL after 2 s), persist everything."""
        self.begin_stop()
        if self._setup is not None:
            self._setup.terminate(grace_s=2.0)
        if self._setup_thread is not None:
            self._setup_thread.join(timeout=10.0)
        with self.cond:
            agent = self.agent
        if agent is not None:
            agent.terminate(grace_s=2.0)
        with self.cond:
            self.stopping.set()
            self.cond.notify_all()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
        if self._usage_thread is not None:
            self._usage_thread.join(timeout=2.0)
        self.report_usage()  # what the agent spent last, before it is gone
        with self.cond:
            line = self.assembler.finish()
            if line is not None:
                self._append_output(line, time.time(), partial=True)
            self.transcript.close()
            self._persist_prompts()

    # -- agent events (reader thread) ----------------------------------------------------

    def _mirror_output(self, data: bytes) -> None:
        """Copy output to the bridge's stdout: the container log."""
        if self._mirror:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except (OSError, ValueError):
                self._mirror = False  # nobody reads the container log: keep going without it

    def _on_output(self, data: bytes, now: float) -> None:
        """Output the reader read at `now` (the launcher's early output comes late)."""
        self._mirror_output(data)
        # only the reader thread touches the screen, so emulation runs outside the lock
        self.screen.feed(data)
        at_prompt = self.screen.at_prompt()
        with self.cond:
            for line in self.assembler.feed(data):
                self._append_output(line, now)
            self.activity.on_output(now, at_prompt)
            self.transcript.flush()
            self._changed(now)

    def _on_exit(self, code: int, now: float) -> None:
        with self.cond:
            line = self.assembler.finish()
            if line is not None:
                self._append_output(line, now, partial=True)
            self.activity.on_exit(code, now)
            self.transcript.flush()
            self._changed(now)
        log(f"agent exited with code {code}")

    # -- setup events (setup thread) -----------------------------------------------------

    def _on_setup_output(self, data: bytes) -> None:
        self._mirror_output(data)
        with self.cond:
            now = time.time()
            for line in self._setup_assembler.feed(data):
                self._append_setup_line(line, now)
            self.transcript.flush()
            self._changed(now)

    def _on_setup_quiet(self) -> None:
        """No setup output for a while: show an unfinished line (a progress message)."""
        with self.cond:
            line = self._setup_assembler.flush()
            if line is not None:
                now = time.time()
                self._append_setup_line(line, now, partial=True)
                self.transcript.flush()
                self._changed(now)

    # -- ticker --------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        """Apply time-driven changes: partial-line flush, deliveries, take timeouts, idle."""
        with self.cond:
            while not self.stopping.is_set():
                now = time.time()
                self._tick(now)
                deadline = self.activity.next_deadline(now)
                if self.assembler.partial:
                    # an unfinished line away from the prompt shows at this time
                    shown_at = self.activity.last_output_at + PARTIAL_LINE_AFTER_S
                    if shown_at > now:
                        deadline = shown_at if deadline is None else min(deadline, shown_at)
                timeout = 1.0 if deadline is None else min(1.0, max(0.005, deadline - now))
                self.cond.wait(timeout)

    def _tick(self, now: float) -> None:
        activity = self.activity
        last_seq = self.transcript.last_seq
        activity.tick(now)
        if activity.quiet(now) and (
            activity.at_prompt or now - activity.last_output_at >= PARTIAL_LINE_AFTER_S
        ):
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
        mode = self.config.profile.submit
        keys = submit_text(prompt.content, mode).encode("utf-8")
        if self.agent is not None:
            try:
                keys = self.agent.typeable(keys)
            except Undeliverable as exc:
                # never typed cut short: the prompt fails, and says why
                self.activity.fail(prompt, str(exc), now)
                log(f"prompt {prompt.id} not delivered: {exc}")
                return
        # what the agent is given: on one line in line mode, control characters as the
        # symbols typed instead
        shown = shown_text(prompt.content, mode)
        entry = self.transcript.append(INPUT, shown, now, prompt_id=prompt.id)
        self.conversation.add(entry)
        self.transcript.flush()
        if self.agent is not None:
            self.agent.write(keys)

    # -- shared helpers (lock held) ------------------------------------------------------

    def _append_output(self, line: str, now: float, partial: bool = False) -> None:
        # with hooks deciding (state_source hooks), the lines cut from the agent's screen
        # are a TUI's screen lines: mostly chrome, kept but marked
        source = SOURCE_SCREEN if self.activity.hooks is not None else None
        entry = self.transcript.append(OUTPUT, line, now, partial=partial, source=source)
        self.conversation.add(entry)

    def _append_setup_line(self, line: str, now: float, partial: bool = False) -> None:
        # setup output is in the transcript, but it is not the agent's turn in the conversation
        self.transcript.append(OUTPUT, line, now, partial=partial, source=SOURCE_SETUP)

    def _current_state(self, now: float) -> str:
        return bridge_state(self.activity.state(now), self.setup_phase, self.stop_requested)

    def _changed(self, now: float, touched: bool = True) -> None:
        """Record a state change, persist prompts, wake every waiter if anything changed."""
        state = self._current_state(now)
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
        event = {
            "status": "stable" if self.state == IDLE else "running",
            "agent_type": self.config.agent_type,
            "state": self.state,
        }
        self.status_events.append((self.status_counter, event))

    def _state_reason(self) -> str:
        """Why the agent counts as working or idle; only told when hooks decide."""
        hooks = self.activity.hooks
        if hooks is None or self.state not in (IDLE, WORKING):
            return ""
        return hooks.reason(self.activity.queued, self.activity.in_flight is not None)

    def status_locked(self) -> BridgeStatus:
        """The GET /status body (lock held)."""
        agent = self.agent
        exit_code = self.activity.exit_code
        if exit_code is None and self.setup_phase == FAILED:
            exit_code = self.setup_exit_code
        exited = self.activity.exited
        return {
            # agentapi's fields, then Dockyard's
            "status": "stable" if self.state == IDLE else "running",
            "agent_type": self.config.agent_type,
            "transport": TRANSPORT,
            "dockyard": {
                "state": self.state,
                "exit_code": exit_code,
                "last_seq": self.transcript.last_seq,
                "queued_prompts": self.activity.queued,
                "state_source": self.config.profile.state_source,
                "state_reason": self._state_reason(),
                "hooks": self.activity.hooks.to_dict() if self.activity.hooks else None,
                "agent_pid": agent.pid if agent is not None and not exited else None,
                "setup": {"state": self.setup_phase, "exit_code": self.setup_exit_code},
                # Only worth reading once the agent died: was it the memory limit?
                "oom_kills": oom_kills() if exited else None,
                "pids_limit_hits": pids_limit_hits() if exited else None,
            },
        }

    # -- API -----------------------------------------------------------------------------

    def status(self) -> BridgeStatus:
        """The GET /status body."""
        with self.cond:
            return self.status_locked()

    def messages(self) -> list[dict[str, Any]]:
        """agentapi's conversation turns."""
        with self.cond:
            return self.conversation.messages()

    def prompts(self) -> list[PromptRecord]:
        """Every prompt with its delivery history."""
        with self.cond:
            return [p.to_dict() for p in self.activity.prompts]

    def submit(self, content: str, type: str, prompt_id: str | None) -> str:
        """Queue a user prompt or type raw keys; return the prompt id."""
        prompt_id = prompt_id or _new_id()
        with self.cond:
            if self.stop_requested:
                raise Rejected(409, "the bridge is stopping; it takes no input")
            if self.setup_phase == FAILED:
                code = self.setup_exit_code
                raise Rejected(409, f"setup failed (exit code {code}); the agent was not started")
            if self.activity.exited:
                code = self.activity.exit_code
                raise Rejected(409, f"the agent has exited (code {code}); it takes no input")
            now = time.time()
            if type == RAW:
                if self.agent is None:
                    # a prompt waits in the queue; keystrokes have nowhere to go yet
                    raise Rejected(409, "the agent has not started yet (the setup script runs)")
                entry = self.transcript.append(INPUT, content, now, raw=True, prompt_id=prompt_id)
                self.conversation.add(entry)
                self.transcript.flush()
                if self.agent is not None:
                    self.agent.write(content.encode("utf-8"))
                self.activity.on_raw_input()
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

    def hook(self, event: str, lines: list[str] | None = None) -> dict[str, Any]:
        """An agent hook reported `event` (POST /dockyard/hook); unknown events are counted.

        `lines`: what the agent said (its reply, tool uses), appended to the transcript as
        output with source "agent" before the event applies, so a reader sees the reply
        with the idle it ends in. Only when hooks decide (state_source hooks): otherwise the
        screen's lines are the agent's output already, and the text would repeat them.
        """
        with self.cond:
            now = time.time()
            appended = 0
            if lines and self.activity.hooks is not None:
                for line in lines:
                    entry = self.transcript.append(OUTPUT, line, now, source=SOURCE_AGENT)
                    self.conversation.add(entry)
                self.transcript.flush()
                appended = len(lines)
            known = self.activity.on_hook(event, now)
            self._changed(now)
            source = self.config.profile.state_source
            return {
                "ok": True,
                "known": known,
                "state_source": source,
                "state": self.state,
                "lines": appended,
            }

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        """Keep a report the agent made (POST /dockyard/report); its seq and id.

        `body` was checked (task_command.check_report). After a `complete` the task is
        over: later reports of this run are refused (409), as are reports past the bounds
        (429).
        """
        if body.get("kind") == COMPLETE:
            self.report_usage()  # what the agent spent up to now goes before its end
        line_size = len(json.dumps(body, ensure_ascii=False).encode("utf-8")) + 128
        with self.cond:
            done = self.reports.completed_after(self.reports_from)
            if done is not None:
                raise Rejected(
                    409,
                    f"the task was already completed ({done.get('outcome')}, report "
                    f"{done['id']}); it takes no more reports",
                )
            if not self.reports.room_for(line_size):
                raise Rejected(429, "this workspace has made too many reports")
            now = time.time()
            try:
                record = self.reports.append(body, now)
            except OSError as exc:
                log(f"cannot persist a report: {exc}")
                raise Rejected(503, f"the bridge cannot keep the report: {exc}") from None
            self._changed(now)  # wakes the follower's long-poll
            return {"ok": True, "id": record["id"], "seq": record["seq"]}

    def _usage_loop(self) -> None:
        while not self.stopping.wait(USAGE_EVERY_S):
            self.report_usage()

    def report_usage(self) -> int:
        """Report what the agent spent since the last look at its records (usage_watch),
        as `usage` reports like the agent's own; how many were made."""
        with self._usage_lock:
            entries: list[dict[str, Any]] = []
            if self.usage.reads_transcript:
                with self.cond:
                    entries = [dict(e) for e in self.transcript.after(self.usage.seq, MAX_LIMIT)]
            found = self.usage.poll(entries)
        made = 0
        for usage in found:
            try:
                self.report(check_report({"kind": USAGE, **usage.report()}))
            except (Rejected, ReportError) as exc:
                # after a `complete`, or past the bounds: the server has the rest already
                log(f"usage not reported: {exc}")
                continue
            made += 1
        return made

    def report_page(self, after: int, limit: int) -> dict[str, Any]:
        """GET /dockyard/reports: reports after seq `after` (at most `limit`)."""
        with self.cond:
            return {
                "reports": self.reports.after(after, limit),
                "last_seq": self.reports.last_seq,
            }

    def log(
        self,
        after: int,
        wait: float,
        limit: int,
        state: str | None,
        prompts: int = -1,
        reports_after: int = -1,
    ) -> LogReply:
        """Entries after `after`; long-polls up to `wait` s while none and the state holds.

        With `prompts` (the `prompts_version` a reader saw) it also answers as soon as a
        prompt moves (queued, delivered, taken), and carries the recent prompts, so a
        follower learns `taken` without a second request. With `reports_after` (the last
        report seq a reader applied) it also answers as soon as there is a newer report,
        and carries the next ones (`reports`, `reports_last_seq`).
        """
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        with self.cond:
            expected = state or self.state
            while True:
                entries = self.transcript.after(after, limit)
                moved = prompts >= 0 and self.activity.changes != prompts
                # a reader ahead of the log (its state dir was lost) hears at once too
                reported = reports_after >= 0 and self.reports.last_seq != reports_after
                if entries or moved or reported or self.state != expected or self.stopping.is_set():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            reply: LogReply = {
                "entries": entries,
                "last_seq": self.transcript.last_seq,
                "status": self.status_locked(),
            }
            if prompts >= 0:
                reply["prompts_version"] = self.activity.changes
                reply["prompts"] = [p.to_dict() for p in self.activity.prompts[-RECENT_PROMPTS:]]
            if reports_after >= 0:
                reply["reports"] = self.reports.after(reports_after, REPORTS_PAGE)
                reply["reports_last_seq"] = self.reports.last_seq
            return reply
