#!/usr/bin/env python3
"""An offline, deterministic stand-in for a terminal coding agent.

It behaves the way the bridge expects a real agent to: it shows a `> ` prompt, waits for
a line of input, works for a while (printing progress), then shows the prompt again.
Commands:
  plain text        Working on: <text>, progress lines over --work-seconds, Done: <text>
  /write PATH TEXT  write TEXT to PATH under the workspace directory
  /sleep N          work N seconds with progress lines, then Done
  /flood N          print N numbered lines as fast as possible, then Done
  /alloc MB         allocate and hold MB MiB of memory (to test memory limits)
  /fork N           start N helper processes (to test process limits); exit 1 if one fails
  /exit CODE        exit with that code
  /complete OUTCOME [OUTPUT]  end the task: `dockyard-task complete --outcome OUTCOME`
  /progress NOTE    `dockyard-task progress NOTE`
  /ask QUESTION     `dockyard-task ask QUESTION`; the answer comes as the next input
  /usage IN OUT     `dockyard-task usage --tokens-in IN --tokens-out OUT`
With --resume it continues a previous session: it prints `Resumed` and the number of
inputs it has handled so far (kept in a small context file) instead of starting afresh.
Standard library only: it runs on the workspace's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROGRESS_STEPS = 3
# the reports an agent makes to Dockyard from inside its workspace (see dockyard-task)
TASK_COMMAND = "dockyard-task"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _work(seconds: float, label: str) -> None:
    """Spread PROGRESS_STEPS progress lines evenly over `seconds`."""
    step = max(seconds, 0.0) / PROGRESS_STEPS
    for i in range(1, PROGRESS_STEPS + 1):
        time.sleep(step)
        _say(f"  ... {label} ({i}/{PROGRESS_STEPS})")


def _dockyard_task(args: list[str]) -> bool:
    """Run dockyard-task with `args`, show what it said; True when it succeeded."""
    try:
        done = subprocess.run(
            [TASK_COMMAND, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"Error: cannot run {TASK_COMMAND}: {exc}")
        return False
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        _say(line)
    if done.returncode != 0:
        _say(f"Error: {TASK_COMMAND} exited with code {done.returncode}")
    return done.returncode == 0


def _report(cmd: str, rest: str) -> None:
    """/complete, /progress, /ask, /usage: a report to Dockyard through dockyard-task."""
    rest = rest.strip()
    if cmd == "/complete":
        outcome, _, output = rest.partition(" ")
        if not outcome:
            _say("Error: usage /complete OUTCOME [OUTPUT]")
            return
        args = ["complete", "--outcome", outcome]
        if output.strip():
            args += ["--output", output.strip()]
        if _dockyard_task(args):
            _say(f"Completed: {outcome}")
        return
    if cmd == "/usage":
        parts = rest.split()
        if len(parts) != 2:
            _say("Error: usage /usage IN OUT")
            return
        _dockyard_task(["usage", "--tokens-in", parts[0], "--tokens-out", parts[1]])
        return
    if not rest:
        _say(f"Error: usage {cmd} TEXT")
        return
    if _dockyard_task([cmd[1:], rest]) and cmd == "/ask":
        _say("Waiting for an answer")


class Agent:
    def __init__(self, workdir: Path, work_seconds: float, context_file: Path) -> None:
        self.workdir = workdir
        self.work_seconds = work_seconds
        self.context_file = context_file
        self.handled = 0
        self.ballast = bytearray()
        self.children: list[subprocess.Popen[bytes]] = []

    def load_context(self) -> None:
        try:
            self.handled = int(json.loads(self.context_file.read_text())["handled"])
        except (OSError, ValueError, KeyError, TypeError):
            self.handled = 0

    def save_context(self) -> None:
        try:
            self.context_file.parent.mkdir(parents=True, exist_ok=True)
            self.context_file.write_text(json.dumps({"handled": self.handled}))
        except OSError as exc:  # the context is a convenience, never a reason to stop
            _say(f"warning: cannot save context: {exc}")

    def handle(self, line: str) -> int | None:
        """Handle one input line; return an exit code to stop, else None."""
        text = line.strip()
        if not text:
            return None
        self.handled += 1
        self.save_context()
        cmd, _, rest = text.partition(" ")
        if cmd == "/exit":
            try:
                return int(rest.strip() or "0")
            except ValueError:
                _say(f"Error: /exit needs a number, got {rest!r}")
                return None
        if cmd in ("/complete", "/progress", "/ask", "/usage"):
            _report(cmd, rest)
            return None
        if cmd == "/write":
            path, _, content = rest.strip().partition(" ")
            if not path:
                _say("Error: usage /write PATH TEXT")
                return None
            target = (self.workdir / path).resolve()
            if self.workdir.resolve() not in (target, *target.parents):
                _say(f"Error: {path} is outside the workspace")
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content + "\n")
            _say(f"Wrote {path}")
            return None
        if cmd == "/sleep":
            try:
                seconds = float(rest.strip())
            except ValueError:
                _say(f"Error: /sleep needs a number, got {rest!r}")
                return None
            _say(f"Working on: {text}")
            _work(seconds, "sleeping")
            _say("Done")
            return None
        if cmd == "/fork":
            try:
                count = int(rest.strip())
            except ValueError:
                _say(f"Error: /fork needs a number, got {rest!r}")
                return None
            # Start helper processes the way an agent runs tools; one that cannot start
            # its tools gives up, like a real agent would.
            for i in range(count):
                try:
                    self.children.append(subprocess.Popen(["sleep", "600"]))
                except OSError as exc:
                    _say(f"Error: cannot start process {i + 1}: {exc}")
                    return 1
            _say(f"Done: started {count} processes")
            return None
        if cmd == "/alloc":
            try:
                megabytes = int(rest.strip())
            except ValueError:
                _say(f"Error: /alloc needs a number of MiB, got {rest!r}")
                return None
            _say(f"Allocating {megabytes} MiB")
            # Touch every page so the memory is really used (and a limit really hit).
            self.ballast = bytearray(megabytes * 1024 * 1024)
            for i in range(0, len(self.ballast), 4096):
                self.ballast[i] = 1
            _say(f"Done: allocated {megabytes} MiB")
            return None
        if cmd == "/flood":
            try:
                count = int(rest.strip())
            except ValueError:
                _say(f"Error: /flood needs a number, got {rest!r}")
                return None
            out = sys.stdout
            for i in range(1, count + 1):
                out.write(f"flood line {i}\n")
            out.flush()
            _say("Done")
            return None
        _say(f"Working on: {text}")
        _work(self.work_seconds, "thinking")
        _say(f"Done: {text}")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-seconds", type=float, default=1.0)
    parser.add_argument("--workdir", default=os.getcwd())
    parser.add_argument("--resume", action="store_true", help="continue the previous session")
    parser.add_argument(
        "--context-file",
        default=os.path.join(os.path.expanduser("~"), ".scripted-agent", "context.json"),
    )
    args = parser.parse_args(argv)
    agent = Agent(Path(args.workdir), args.work_seconds, Path(args.context_file))
    if args.resume:
        agent.load_context()
        _say(f"Resumed (previous context: {agent.handled} inputs)")
    else:
        agent.save_context()
        _say("Scripted agent ready.")
    while True:
        sys.stdout.write("> ")
        sys.stdout.flush()
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            _say("")
            continue
        if not line:  # end of input: the terminal went away
            return 0
        code = agent.handle(line)
        if code is not None:
            _say(f"Exiting with code {code}")
            return code


if __name__ == "__main__":
    sys.exit(main())
