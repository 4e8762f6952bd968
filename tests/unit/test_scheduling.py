"""The pure firing rules of schedules (provisioner.scheduling), with a clock given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from provisioner.errors import ParameterError
from provisioner.scheduling import (
    Rule,
    check_cron,
    check_name,
    check_timezone,
    decide,
    on_overlap,
    still_running,
    task_name,
)

T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_nothing_is_owed_before_the_first_fire_time() -> None:
    rule = Rule("* * * * *")
    assert decide(rule, at(0.1), at(0.9)).fire is None
    assert decide(rule, at(0.1), at(0.9)).considered is None


def test_a_fire_time_on_time_runs_once_and_is_then_considered() -> None:
    rule = Rule("* * * * *")
    first = decide(rule, at(0.5), at(1) + timedelta(seconds=2))
    assert first.fire == at(1) and first.considered == at(1) and first.missed == 0
    # the next pass starts from what was considered: nothing new until 09:02
    assert decide(rule, at(1), at(1.9)).fire is None
    assert decide(rule, at(1), at(2)).fire == at(2)


def test_missed_fire_times_run_once_with_catch_up_once() -> None:
    rule = Rule("* * * * *", catch_up="once")
    late = decide(rule, at(0.5), at(10.5))  # down from 09:00:30 to 09:10:30
    assert late.fire == at(10) and late.considered == at(10) and late.missed == 9


def test_missed_fire_times_are_skipped_with_catch_up_skip() -> None:
    rule = Rule("*/5 * * * *", catch_up="skip")
    late = decide(rule, at(0.5), at(17))  # 09:05, 09:10, 09:15 all missed
    assert late.fire is None and late.considered == at(15) and late.missed == 3
    # several owed at once: the servers were down, even if the latest is recent
    assert decide(rule, at(0.5), at(15.5)).fire is None
    # one, on time, runs
    on_time = decide(rule, at(10), at(15.5))
    assert on_time.fire == at(15) and on_time.missed == 0
    # one, long past (an hourly schedule, servers down for 40 minutes): missed
    hourly = Rule("0 * * * *", catch_up="skip")
    assert decide(hourly, at(-30), at(40)).fire is None


def test_time_zones_and_daylight_saving() -> None:
    rule = Rule("0 9 * * 1-5", "Europe/Berlin")
    # Monday 30 November 2026, 09:00 in Berlin is 08:00 UTC
    monday = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert rule.times(monday, limit=2) == [
        datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    ]
    # Friday to Monday: no weekend runs
    friday = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert rule.times(friday, limit=1) == [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
    # in summer Berlin is UTC+2
    assert Rule("0 9 * * *", "Europe/Berlin").times(datetime(2026, 7, 1, tzinfo=UTC), limit=1) == [
        datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    ]


def test_seconds_resolution_with_a_sixth_field() -> None:
    rule = Rule("* * * * * */20")
    assert rule.times(T0, limit=3) == [
        T0 + timedelta(seconds=20),
        T0 + timedelta(seconds=40),
        T0 + timedelta(seconds=60),
    ]


def test_a_long_outage_is_bounded_work() -> None:
    rule = Rule("* * * * * *", catch_up="once")  # every second, a year down
    late = decide(rule, T0, T0 + timedelta(days=365))
    assert late.fire is not None and late.missed > 0  # no hang, one run


@pytest.mark.parametrize(
    "bad", ["", "* * * *", "61 * * * *", "* * * * * * *", "@reboot", "x" * 200, "* * * * *\n*"]
)
def test_bad_cron_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ParameterError, match="cron"):
        check_cron(bad)


def test_cron_spacing_is_normalised() -> None:
    assert check_cron("0  9 * *   1-5") == "0 9 * * 1-5"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "x" * 80])
def test_bad_time_zones_are_refused(bad: str) -> None:
    with pytest.raises(ParameterError, match="time zone"):
        check_timezone(bad)


@pytest.mark.parametrize("bad", ["", "Caps", "a" * 41, "-lead", "a/b", "a b", "a\nb", "ä"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ParameterError, match="name"):
        check_name(bad, "schedule")


def test_a_task_name_per_fire_time_fits_the_task_name_rules() -> None:
    assert task_name("a" * 40, T0) == "a" * 40 + "-20261130t090000"
    assert len(task_name("a" * 40, T0)) <= 64


def test_overlap() -> None:
    assert still_running("pending", None) and still_running("initializing", None)
    assert still_running("active", "working")
    assert not still_running("active", "idle") and not still_running("paused", None)
    assert not still_running("completed", None) and not still_running("error", None)
    assert on_overlap("skip", False) == "start"
    assert on_overlap("allow", True) == "start"
    assert on_overlap("skip", True) == "skip"
    assert on_overlap("queue", True) == "queue"
