"""Schedules' pure rules: what a cron expression and time zone mean, which fire times a
schedule owes at a moment, and what an overlapping run does.

No I/O and no clock of its own: the engine's scheduler (engine/scheduler.py) passes `now`
and the store claims each fire time once (a unique (schedule, fire time) row), so every
engine sharing a database computes the same fire times and exactly one of them wins each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from provisioner.errors import ParameterError

CATCH_UP = ("once", "skip")
CONCURRENCY = ("allow", "skip", "queue")
MAX_CRON = 120
# A fire time is on time while it is at most this old: a tick of the reconcile loop (about
# a second) or a slow pass must not count as missed. Older ones were missed (the servers
# were down or the schedule paused) and `catch_up` decides.
ON_TIME_S = 60.0
# fire times looked at in one decision at most: a year-old per-second schedule must not
# make a pass walk millions of times (the ones past this count are skipped as missed)
MAX_WALK = 10_000
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")  # a task name suffix still fits in 64


def check_name(name: str, what: str) -> str:
    """A schedule or trigger name: 1-40 lowercase letters, digits and dashes."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ParameterError(
            f"Invalid {what} name {str(name)[:60]!r}",
            hint="use 1-40 lowercase letters, digits and dashes, starting with a letter or digit",
        )
    return name


def check_cron(expression: str) -> str:
    """A cron expression of 5 fields, or 6 with seconds last (croniter's form)."""
    text = " ".join(str(expression).split())
    fields = text.split(" ")
    printable = all(" " <= c <= "~" for c in str(expression))
    if (
        not printable
        or len(text) > MAX_CRON
        or len(fields) not in (5, 6)
        or not croniter.is_valid(text)
    ):
        raise ParameterError(
            f"Invalid cron expression {str(expression)[:MAX_CRON]!r}",
            hint='five fields, minute hour day month weekday (e.g. "0 9 * * 1-5"), or a sixth '
            'for seconds (e.g. "* * * * * */30")',
        )
    return text


def check_timezone(name: str) -> ZoneInfo:
    """An IANA time zone such as Europe/Berlin (UTC when none is given)."""
    if not isinstance(name, str) or len(name) > 64 or ".." in name or name.startswith("/"):
        raise ParameterError(f"Unknown time zone {str(name)[:64]!r}", hint="e.g. Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ParameterError(
            f"Unknown time zone {name[:64]!r}", hint="an IANA name such as Europe/Berlin or UTC"
        ) from None


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ParameterError(f"Invalid {what} {str(value)[:40]!r}: one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Rule:
    """What decides a schedule's fire times."""

    cron: str
    timezone: str = "UTC"
    catch_up: str = "once"

    def times(
        self, after: datetime, until: datetime | None = None, limit: int = 5
    ) -> list[datetime]:
        """Fire times strictly after `after` (up to `until` when given), in UTC, at most
        `limit` of them."""
        it = croniter(self.cron, after.astimezone(ZoneInfo(self.timezone)))
        found: list[datetime] = []
        while len(found) < limit:
            try:
                at = it.get_next(datetime).astimezone(UTC)
            except CroniterError:  # no further time (e.g. 30 February): none
                break
            if until is not None and at > until:
                break
            found.append(at)
        return found


@dataclass(frozen=True)
class Decision:
    """What a schedule owes at `now`: the fire time to run (if any), how far it has
    now been considered (stored, so a time is never looked at twice), and how many
    fire times were missed and will not run."""

    fire: datetime | None
    considered: datetime | None
    missed: int = 0


def decide(rule: Rule, since: datetime, now: datetime) -> Decision:
    """The fire times in (since, now]: the latest runs when it is on time. Several owed
    at once, or one older than ON_TIME_S, mean no server ran the schedule for a while
    (all down, or it was paused): `catch_up: once` runs the latest once all the same,
    `skip` runs none of them. A schedule never runs a backlog of old times."""
    due = rule.times(since, now, MAX_WALK)
    if not due:
        return Decision(None, None)
    latest = due[-1]
    on_time = len(due) == 1 and (now - latest) <= timedelta(seconds=ON_TIME_S)
    if on_time or rule.catch_up == "once":
        return Decision(latest, latest, len(due) - 1)
    return Decision(None, latest, len(due))


# --- overlapping runs ---------------------------------------------------------------------

# a run is still going while its task waits, starts or its agent works; an idle agent, a
# paused or failed workspace and a finished task are no longer running it
WAITING = frozenset({"backlog", "pending", "offered", "claimed", "initializing"})


def still_running(status: str, state: str | None) -> bool:
    """True while a schedule's earlier run has not done its work yet."""
    return status in WAITING or (status == "active" and state not in ("idle", "input_required"))


def on_overlap(concurrency: str, running: bool) -> str:
    """`start` a run now, `skip` it, or `queue` it until the earlier run is done."""
    if not running or concurrency == "allow":
        return "start"
    return concurrency


def task_name(schedule: str, fire: datetime) -> str:
    """The task's name for one fire time: the same on every engine, so a fire time taken
    over after a crash finds the task it may already have made."""
    stamp = fire.astimezone(UTC).strftime("%Y%m%dt%H%M%S")
    return f"{schedule}-{stamp}"


def iso(moment: datetime) -> str:
    """A fire time as stored: UTC, seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
