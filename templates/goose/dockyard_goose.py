#!/usr/bin/env python3
"""Dockyard's glue around the goose CLI in a workspace (standard library only).

dockyard-goose resume [ARGS]   start `goose session --resume ARGS` when Goose kept a
                               session for this working directory, else `goose session
                               ARGS`: with none to resume, --resume only says "No session
                               found to resume" and exits (a workspace stopped before
                               Goose first came up has none)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

LIST_TIMEOUT_S = 30


def has_session(workdir: str, goose: str = "goose") -> bool:
    """Whether Goose has a session started in `workdir` (its session list says so)."""
    try:
        out = subprocess.run(
            [goose, "session", "list", "--format", "json", "--working_dir", workdir],
            capture_output=True,
            text=True,
            timeout=LIST_TIMEOUT_S,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        sessions = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        sys.stderr.write(f"dockyard-goose: cannot list Goose's sessions ({exc}); a new one\n")
        return False
    return isinstance(sessions, list) and bool(sessions)


def resume_argv(args: list[str], workdir: str, goose: str = "goose") -> list[str]:
    """The goose command line that continues the last session here, or starts one."""
    if has_session(workdir, goose):
        return [goose, "session", "--resume", *args]
    return [goose, "session", *args]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "resume":
        command = resume_argv(argv[1:], os.getcwd())
        os.execvp(command[0], command)
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
