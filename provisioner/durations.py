"""Durations as people write them in config and on the command line: `30s`, `24h`, `7d`.
Pure and tiny: the template schema (spec.py), the engine and the server use it."""

from __future__ import annotations

import re

from provisioner.errors import ParameterError

KEEP = "keep"
_DURATION_RE = re.compile(r"([0-9]{1,7})(s|m|h|d|w)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_S = 3660 * 86400


def parse_duration(text: object, what: str) -> float:
    """`30s`, `15m`, `24h`, `7d`, `2w` in seconds; anything else is a ParameterError."""
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
        raise ParameterError(
            f"Invalid {what} {shown}: use a number and a unit, s (seconds), m (minutes), "
            "h (hours), d (days) or w (weeks), e.g. 30s or 24h"
        )
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise ParameterError(f"The {what} {text} is too long (at most 3660d)")
    return float(seconds)


def parse_retention(value: object) -> float | None:
    """Seconds a finished task's workspace is kept; None: kept until the task is deleted."""
    if value is None or value == KEEP:
        return None
    return parse_duration(value, "retention (keep, or a duration such as 24h)")
