"""What this process observes as it happens, for Prometheus (pure: no I/O).

Histograms and counters here are observed where things happen (the store as a phase
closes or a prompt is taken, the follower as a bridge answers) and are per process: with
several servers sharing a database, Prometheus sums them across the servers it scrapes.
Counts that are true of the whole database (tasks by status, the queue, workspaces per
node, webhook deliveries) are not kept here: they are read from the store at scrape time
(provisioner/server/metrics_api.py), so every server reports the same numbers.

The metrics are registered in no global registry: each server app puts them in its own
(tests run many apps in one process).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.registry import Collector

# provisioning phases last from well under a second (start) to minutes (a first image)
_PHASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# a prompt is taken within a second by an idle agent, after minutes by a busy one
_PROMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

PHASE_SECONDS = Histogram(
    "dockyard_phase_duration_seconds",
    "How long each provisioning phase took (image, create, start, setup, agent)",
    ["phase"],
    buckets=_PHASE_BUCKETS,
    registry=None,
)
CREATE_TO_IDLE = Histogram(
    "dockyard_create_to_idle_seconds",
    "From a task's creation to its agent's first idle (queueing included)",
    buckets=_PHASE_BUCKETS,
    registry=None,
)
SEND_TO_TAKEN = Histogram(
    "dockyard_send_to_taken_seconds",
    "From a prompt's send to the agent taking it",
    buckets=_PROMPT_BUCKETS,
    registry=None,
)
FOLLOWER_LAG = Histogram(
    "dockyard_follower_lag_seconds",
    "From a bridge writing a log line to this server storing it (newest line of a batch)",
    buckets=_LAG_BUCKETS,
    registry=None,
)
BRIDGE_ERRORS = Counter(
    "dockyard_bridge_errors",
    "Polls of a bridge that failed: unreachable (no answer) or error (a bad answer)",
    ["kind"],
    registry=None,
)
CLAIM_CONFLICTS = Counter(
    "dockyard_claim_conflicts",
    "Compare-and-set changes of a task lost to another engine or request (normal in "
    "small numbers with several servers; a steady climb means they fight over tasks)",
    registry=None,
)

OBSERVED: tuple[Collector, ...] = (
    PHASE_SECONDS,
    CREATE_TO_IDLE,
    SEND_TO_TAKEN,
    FOLLOWER_LAG,
    BRIDGE_ERRORS,
    CLAIM_CONFLICTS,
)


def seconds_between(start: object, end: object) -> float | None:
    """Seconds from one stored time (ISO 8601, `Z` or offset) to another; None when
    either is missing or unreadable (a metric is never worth failing a write)."""
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    if start is None or end is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return max((b - a).total_seconds(), 0.0)


def observe_phases(phases: list[dict[str, object]], already_closed: int) -> None:
    """Observe the phases closed since `already_closed` of them were (each once)."""
    for entry in phases[already_closed:]:
        duration = entry.get("duration_s")
        if isinstance(duration, int | float):
            PHASE_SECONDS.labels(phase=str(entry.get("phase") or "unknown")[:16]).observe(duration)


def closed_count(phases: list[dict[str, object]] | None) -> int:
    """How many of a task's phases are closed (have a duration)."""
    return sum(1 for p in phases or [] if p.get("duration_s") is not None)
