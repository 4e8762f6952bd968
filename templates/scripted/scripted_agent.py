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
  /mcp TOOL [JSON]  call a Dockyard MCP tool through `dockyard-mcp` (the in-workspace
                    relay) with JSON arguments; print its answer
  /spawn TEXT       create a child task (template scripted) whose prompt is TEXT
  /await            wait until every child this session created has ended
  /fanout N TEXT    spawn N children with prompt TEXT, await them, then complete this
                    task: SUCCESS when all completed, else FAILED
With --resume it continues a previous session: it prints `Resumed` and the number of
inputs it has handled so far (kept in a small context file) instead of starting afresh.
Standard library only: it runs on the workspace's python3.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# `subprocess` is imported where a command needs it, and the arguments are read without
# argparse: the agent's start (to its first `> `) is on the way to every task's idle, and
# those two were ~8 ms of the ~25 it took

PROGRESS_STEPS = 3
# the reports an agent makes to Dockyard from inside its workspace (see dockyard-task)
TASK_COMMAND = "dockyard-task"
# Dockyard's MCP tools inside the workspace: a stdio MCP server the bridge installs
MCP_COMMAND = "dockyard-mcp"
CHILD_TEMPLATE = "scripted"
ENDED = ("completed", "failed", "cancelled")
AWAIT_POLL_S = 0.5
AWAIT_LIMIT_S = 900.0


class McpError(Exception):
    """A tool call that failed (the tool's error, or the relay's)."""


class Mcp:
    """A minimal MCP client over dockyard-mcp's stdio: one JSON-RPC message a line."""

    def __init__(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [MCP_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        self.next_id = 1
        self._request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "scripted-agent", "version": "1"},
            },
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def _request(self, method: str, params: dict) -> dict:
        message_id = self.next_id
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": message_id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise McpError(f"{MCP_COMMAND} ended without an answer")
            answer = json.loads(line)
            if answer.get("id") == message_id:
                break
        if "error" in answer:
            raise McpError(str(answer["error"].get("message")))
        return dict(answer.get("result") or {})

    def call(self, tool: str, arguments: dict) -> dict:
        """The tool's JSON answer; McpError with the tool's words when it failed."""
        result = self._request("tools/call", {"name": tool, "arguments": arguments})
        text = "".join(c.get("text", "") for c in result.get("content", []))
        if result.get("isError"):
            raise McpError(text)
        try:
            return dict(json.loads(text))
        except ValueError:
            return {"text": text}


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
    import subprocess

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
        # (not evaluated: annotations are strings here, and subprocess comes with /fork)
        self.children: list[subprocess.Popen[bytes]] = []
        self.spawned: list[str] = []  # ids of the child tasks this session created
        self._mcp: Mcp | None = None

    def tool(self, name: str, arguments: dict) -> dict | None:
        """Call a Dockyard tool through dockyard-mcp; None (said) when it failed."""
        try:
            if self._mcp is None or self._mcp.proc.poll() is not None:
                self._mcp = Mcp()
            return self._mcp.call(name, arguments)
        except (McpError, OSError, ValueError) as exc:
            _say(f"Error: {name}: {exc}")
            return None

    def spawn(self, text: str) -> str | None:
        made = self.tool(
            "create_task", {"title": text[:80], "prompt": text, "template": CHILD_TEMPLATE}
        )
        if made is None:
            return None
        self.spawned.append(str(made["taskId"]))
        _say(f"Spawned: {made['name']}")
        return str(made["taskId"])

    def await_children(self) -> dict[str, str] | None:
        """Wait until every spawned child has ended: {name: status}, None on an error."""
        deadline = time.monotonic() + AWAIT_LIMIT_S
        while True:
            statuses = {}
            for task_id in self.spawned:
                shown = self.tool("get_task", {"taskId": task_id})
                if shown is None:
                    return None
                statuses[str(shown["name"])] = str(shown["status"])
            if all(status in ENDED for status in statuses.values()):
                for name, status in statuses.items():
                    _say(f"Child {name}: {status}")
                return statuses
            if time.monotonic() > deadline:
                _say(f"Error: children still running after {AWAIT_LIMIT_S:g} s: {statuses}")
                return None
            time.sleep(AWAIT_POLL_S)

    def fanout(self, rest: str) -> None:
        count, _, text = rest.strip().partition(" ")
        if not count.isdigit() or not text.strip():
            _say("Error: usage /fanout N TEXT")
            return
        _say(f"Working on: fanning out {count} children")
        for _ in range(int(count)):
            if self.spawn(text.strip()) is None:
                return
        statuses = self.await_children()
        if statuses is None:
            return
        outcome = "SUCCESS" if all(s == "completed" for s in statuses.values()) else "FAILED"
        summary = ", ".join(f"{n} {s}" for n, s in statuses.items())
        # through the report channel: it needs no task id, and ends this task
        _report("/complete", f"{outcome} {summary}")

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
        if cmd == "/mcp":
            tool, _, raw = rest.strip().partition(" ")
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                _say(f"Error: /mcp arguments are not JSON: {exc}")
                return None
            answer = self.tool(tool, arguments) if tool else None
            if answer is not None:
                _say(f"MCP {tool}: {json.dumps(answer, sort_keys=True)[:2000]}")
            return None
        if cmd == "/spawn":
            if rest.strip():
                self.spawn(rest.strip())
            else:
                _say("Error: usage /spawn TEXT")
            return None
        if cmd == "/await":
            if self.await_children() is not None:
                _say("Done: children ended")
            return None
        if cmd == "/fanout":
            self.fanout(rest)
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
            import subprocess

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


USAGE = """usage: scripted-agent [--work-seconds N] [--workdir DIR] [--resume]
                      [--context-file FILE]"""


class Arguments:
    """The agent's options (what argparse would give, without its import)."""

    def __init__(self) -> None:
        self.work_seconds = 1.0
        self.workdir = os.getcwd()
        self.resume = False
        self.context_file = os.path.join(os.path.expanduser("~"), ".scripted-agent", "context.json")


def _usage_error(message: str) -> None:
    sys.stderr.write(f"{USAGE}\nscripted-agent: error: {message}\n")
    sys.exit(2)


def parse_arguments(argv: list[str]) -> Arguments:
    """Read the options; exit 2 with the usage on anything else (0 on --help)."""
    args = Arguments()
    rest = list(argv)
    while rest:
        option = rest.pop(0)
        name, has_value, value = option.partition("=")
        if name in ("-h", "--help"):
            print(USAGE + "\n\n" + (__doc__ or "").splitlines()[0])
            sys.exit(0)
        if name == "--resume" and not has_value:
            args.resume = True
            continue
        if name not in ("--work-seconds", "--workdir", "--context-file"):
            _usage_error(f"unrecognized argument {option!r}")
        if not has_value:
            if not rest:
                _usage_error(f"{name} expects a value")
            value = rest.pop(0)
        if name == "--work-seconds":
            try:
                args.work_seconds = float(value)
            except ValueError:
                _usage_error(f"{name}: not a number: {value!r}")
        elif name == "--workdir":
            args.workdir = value
        else:
            args.context_file = value
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
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
