"""The bridge's state directory: what survives a bridge restart, and how it is written.

Light on imports on purpose: the launcher reads it before the agent starts, and
everything imported before that delays the agent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .setup import RunState

T = TypeVar("T")

PROMPTS_FILE = "prompts.json"
TRANSCRIPT_FILE = "transcript.jsonl"
RUN_STATE_FILE = "state.json"
# the id of the task whose workspace wrote this state dir
OWNER_FILE = "workspace"
REPORTS_FILE = "reports.jsonl"
# the agent's credential for POST /dockyard/report (dockyard-task): made by the bridge on
# its first start, 0600; it opens that route and nothing else (never the bridge token)
REPORT_KEY_FILE = "report-key"
# whose reports reports.jsonl holds: a hash of the bridge token of the task that made them
REPORTS_OWNER_FILE = "reports-owner"
# where the bridge installs the commands it gives the agent (dockyard-task), on its PATH
BIN_DIR = "bin"
TASK_COMMAND = "dockyard-task"
MCP_COMMAND = "dockyard-mcp"  # Dockyard's MCP tools for the agent, relayed (mcp_command.py)


def log(message: str) -> None:
    """One line on the bridge's stderr (the container log)."""
    sys.stderr.write(f"dockyard-bridge: {message}\n")
    sys.stderr.flush()


def atomic_write(path: Path, text: str, durable: bool = True) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half of one.

    `durable`: on disk before this returns (fsync: 1-5 ms on a workspace's volume). Not
    for a file made again from what is at hand whenever it is missing or unreadable (the
    token from the environment, a new report key): those go before the agent's start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _set_aside(path: Path, why: Exception) -> Path:
    """Move an unreadable file out of the way (kept for a post-mortem) and say so."""
    broken = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    log(f"cannot read {path} ({why}); moved it to {broken.name}")
    path.replace(broken)
    return broken


class StateDir:
    """The files of one workspace's bridge state (created on first use; OSError if it
    cannot be). `owner`: the task whose workspace this is (see claim)."""

    def __init__(self, root: str | Path, owner: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            self.claim(owner)
        self.prompts_path = self.root / PROMPTS_FILE
        self.transcript_path = self.root / TRANSCRIPT_FILE
        self.run_state_path = self.root / RUN_STATE_FILE
        self.reports_path = self.root / REPORTS_FILE
        self.report_key_path = self.root / REPORT_KEY_FILE
        # an earlier run left something: its prompts must never run again
        self.has_history = self.prompts_path.exists() or (
            self.transcript_path.exists() and self.transcript_path.stat().st_size > 0
        )

    def claim(self, owner: str) -> bool:
        """Make this state dir `owner`'s; True when it was another task's.

        A forked task's disk is a copy of its parent's, this directory included. What the
        parent's bridge kept of its own conversation (transcript, prompts, anything else
        here) is not the fork's: it goes, or the fork would take the parent's prompts for
        its own and never run its first one. Only the run state stays: the agent ran on
        this disk, so it starts with resume_command and continues the parent's session.
        """
        path = self.root / OWNER_FILE
        try:
            recorded: str | None = path.read_text("utf-8").strip()
        except FileNotFoundError:
            recorded = None  # a new workspace, or one from before owners were recorded
        except OSError as exc:
            log(f"cannot read {path} ({exc}); taking this state dir as this workspace's")
            recorded = None
        if recorded == owner:
            return False
        forked = recorded is not None
        if forked:
            import shutil  # only a fork's first start needs it

            log(
                f"this state dir is a copy of workspace {recorded}'s (a fork): keeping its "
                "run state (the agent resumes its session), starting afresh otherwise"
            )
            for entry in self.root.iterdir():
                if entry.name == RUN_STATE_FILE:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        atomic_write(path, owner + "\n")
        return forked

    def load_run_state(self) -> RunState:
        """What earlier runs recorded; written on the first run (OSError if it cannot be)."""
        try:
            return RunState.from_state(json.loads(self.run_state_path.read_text("utf-8")))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            _set_aside(self.run_state_path, exc)
        # no record: a first run, or a state dir from before there was one, whose agent
        # ran if it left anything behind
        run_state = RunState(agent_started=self.has_history)
        # what a lost file is rebuilt from next time too: not worth an fsync
        atomic_write(self.run_state_path, json.dumps(run_state.to_state()), durable=False)
        return run_state

    def save_run_state(self, run_state: RunState) -> None:
        try:
            atomic_write(self.run_state_path, json.dumps(run_state.to_state()))
        except OSError as exc:
            log(f"cannot persist the run state: {exc}")

    def load_prompts(self, restore: Callable[[list[Any]], T]) -> tuple[T, bool] | None:
        """(restore(prompt states), whether the initial prompt was queued) from a previous
        run, or None when there is no prompts file (then `has_history` tells whether a
        previous run's initial prompt must be taken as queued).

        A file that cannot be read or restored is set aside and taken as an empty queue
        whose initial prompt was queued: a prompt of a previous run is never run again.
        """
        try:
            data = json.loads(self.prompts_path.read_text(encoding="utf-8"))
            return restore(data.get("prompts", [])), bool(data.get("initial_prompt_queued", True))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _set_aside(self.prompts_path, exc)
            return restore([]), True

    def save_prompts(self, prompts: list[dict[str, Any]], initial_prompt_queued: bool) -> bool:
        """Rewrite prompts.json; False (and a log line) when it cannot be written."""
        data = {"version": 1, "initial_prompt_queued": initial_prompt_queued, "prompts": prompts}
        try:
            atomic_write(self.prompts_path, json.dumps(data, ensure_ascii=False))
            return True
        except OSError as exc:
            log(f"cannot persist prompts: {exc}")
            return False

    def report_key(self) -> str:
        """The workspace's report key: read, or made (0600) on the first start."""
        try:
            key = self.report_key_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = ""
        return key if len(key) >= 32 else self.new_report_key()

    def claim_reports(self, token: str) -> None:
        """Reports belong to the task whose bridge made them. A state dir copied from
        another task's workspace (a fork starts from a copy of its parent's disk) has the
        other task's reports and key: they are set aside, and this task starts afresh."""
        import hashlib  # here, not at the top: the launcher imports this module early

        owner = hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]
        path = self.root / REPORTS_OWNER_FILE
        try:
            current: str | None = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            current = None
        if current == owner:
            return
        if current is not None:
            if self.reports_path.exists():
                aside = self.reports_path.with_name(f"{REPORTS_FILE}.task-{current[:12]}")
                self.reports_path.replace(aside)
                log(f"reports of another task's workspace moved to {aside.name}")
            self.new_report_key()  # the other task's agent knew the old one
        atomic_write(path, owner + "\n", durable=False)  # lost: written again next start

    def new_report_key(self) -> str:
        """Make (or replace) the report key: 32 random bytes, hex, in a 0600 file."""
        key = os.urandom(32).hex()  # no `secrets` import: this runs before the agent starts
        old_mask = os.umask(0o077)
        try:
            # a key lost with a crash is made anew at the next start (report_key)
            atomic_write(self.report_key_path, key + "\n", durable=False)
        finally:
            os.umask(old_mask)
        os.chmod(self.report_key_path, 0o600)
        return key

    def install_command(self, name: str, source: bytes) -> Path:
        """Put an executable `name` holding `source` in the bin dir (the agent's PATH);
        rewritten only when it differs."""
        bin_dir = self.root / BIN_DIR
        bin_dir.mkdir(exist_ok=True)
        path = bin_dir / name
        try:
            current = path.read_bytes()
        except OSError:
            current = None
        if current != source or not os.access(path, os.X_OK):
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_bytes(source)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        return path


def bin_dir(state_dir: str) -> str:
    """The directory of the agent's commands for a state dir."""
    return os.path.join(state_dir, BIN_DIR)


def report_key_path(state_dir: str) -> str:
    """The report key's file for a state dir."""
    return os.path.join(state_dir, REPORT_KEY_FILE)
