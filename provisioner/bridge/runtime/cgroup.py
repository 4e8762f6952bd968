"""What the workspace's own cgroup says about limits it enforced (read from inside it)."""

from __future__ import annotations

from pathlib import Path

# cgroup v2 keeps the counter in memory.events; v1 in memory.oom_control (kernel >= 4.13).
_SOURCES = (
    Path("/sys/fs/cgroup/memory.events"),
    Path("/sys/fs/cgroup/memory/memory.oom_control"),
)


def parse_oom_kills(text: str) -> int | None:
    """The `oom_kill N` counter of a memory.events or memory.oom_control file."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def oom_kills(sources: tuple[Path, ...] = _SOURCES) -> int | None:
    """How many processes the kernel OOM-killed in this cgroup; None when unknown."""
    for source in sources:
        try:
            count = parse_oom_kills(source.read_text())
        except OSError:
            continue
        if count is not None:
            return count
    return None


_PIDS_SOURCES = (
    Path("/sys/fs/cgroup/pids.events"),
    Path("/sys/fs/cgroup/pids/pids.events"),
)


def parse_pids_max_events(text: str) -> int | None:
    """The `max N` counter of a pids.events file: forks refused by the pids limit."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "max" and value.strip().isdigit():
            return int(value)
    return None


def pids_limit_hits(sources: tuple[Path, ...] = _PIDS_SOURCES) -> int | None:
    """How many times a process could not start because of the pids limit; None if unknown."""
    for source in sources:
        try:
            count = parse_pids_max_events(source.read_text())
        except OSError:
            continue
        if count is not None:
            return count
    return None
