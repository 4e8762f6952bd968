"""The scripted agent reads its options without argparse (its start is on the way to
every task's idle): what it takes, and what it refuses, as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "templates" / "scripted" / "scripted_agent.py"


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AGENT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_options_in_both_forms_are_taken(tmp_path: Path) -> None:
    context = tmp_path / "ctx.json"
    done = run(
        "--work-seconds=0", "--workdir", str(tmp_path), "--context-file", str(context),
        stdin="/write out.txt hello\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    assert "Scripted agent ready." in done.stdout
    resumed = run("--resume", "--context-file", str(context), "--work-seconds", "0")
    assert "Resumed (previous context: 1 inputs)" in resumed.stdout


@pytest.mark.parametrize(
    "args, error",
    [
        (["--bogus"], "unrecognized argument '--bogus'"),
        (["--work-seconds"], "--work-seconds expects a value"),
        (["--work-seconds", "soon"], "--work-seconds: not a number: 'soon'"),
        (["--resume=yes"], "unrecognized argument '--resume=yes'"),
    ],
)
def test_bad_options_exit_2_with_the_usage(args: list[str], error: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: scripted-agent")
    assert done.stderr.rstrip().endswith(f"scripted-agent: error: {error}")
    assert done.stdout == ""  # it never showed a prompt


def test_help_exits_0() -> None:
    done = run("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: scripted-agent")
