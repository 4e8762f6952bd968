"""The queue's checks of what creators and agents send (pure: no I/O)."""

from __future__ import annotations

import pytest

from provisioner.errors import ParameterError
from provisioner.lifecycle import ErrorClass, Outcome, Status, outcome_status
from provisioner.model import QueueFields
from provisioner.queueing import (
    check_tags,
    check_text,
    parse_completion,
    parse_cost,
    parse_priority,
    retry_delay,
    title_from,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("low", 25), ("Normal", 50), (" high ", 75), ("0", 0), (100, 100), ("7", 7)],
)
def test_priorities_by_name_or_number(given: object, expected: int) -> None:
    assert parse_priority(given) == expected


@pytest.mark.parametrize("given", [-1, 101, "urgent", "1e3", True, 3.5, None, "", "50; rm"])
def test_bad_priorities_are_refused(given: object) -> None:
    with pytest.raises(ParameterError, match="priority"):
        parse_priority(given)


def test_outcomes_map_to_terminal_statuses() -> None:
    assert outcome_status(Outcome.SUCCESS) == Status.COMPLETED
    assert outcome_status(Outcome.FAILED) == Status.FAILED
    assert outcome_status(Outcome.SKIPPED) == Status.CANCELLED
    assert outcome_status(Outcome.CANCELLED) == Status.CANCELLED


def test_tags_are_checked_deduplicated_and_bounded() -> None:
    assert check_tags(["api", "p1", "api"]) == ["api", "p1"]
    for bad in ["", "-x", "a b", "x" * 65, "tag\n", "é"]:
        with pytest.raises(ParameterError, match="tag"):
            check_tags([bad])
    with pytest.raises(ParameterError, match="Too many tags"):
        check_tags([f"t{i}" for i in range(21)])


def test_text_refuses_control_characters_and_size() -> None:
    assert check_text("  line one\n\tline two  ", "note", 100) == "line one\n\tline two"
    for bad in ["\x1b[31mred", "bell\x07", "\x00", "rtl\u202eevil", "c1\x9b"]:
        with pytest.raises(ParameterError, match="control character"):
            check_text(bad, "note", 100)
    with pytest.raises(ParameterError, match="at most 10"):
        check_text("é" * 6, "note", 10)  # counted in bytes, not characters


def test_title_defaults_to_the_prompts_first_line() -> None:
    assert title_from("\n  Fix the login bug\nthen more", None) == "Fix the login bug"
    assert title_from("x" * 500, None) == "x" * 120
    assert title_from("prompt", "Given") == "Given"
    with pytest.raises(ParameterError, match="one line"):
        title_from("prompt", "two\nlines")


def test_completion_parses_and_checks_every_field() -> None:
    done = parse_completion(
        {
            "outcome": "failed",
            "error_class": "transient",
            "error_code": "E_NET-1",
            "output": "network down",
            "tokens_in": 10,
            "tokens_out": 5,
            "cost_usd": 0.25,
            "model": "claude-sonnet-4.5",
        }
    )
    assert done.outcome == Outcome.FAILED
    assert done.error_class == ErrorClass.TRANSIENT
    assert done.cost.tokens_in == 10 and done.cost.cost_usd == 0.25
    # a failure without a class is UNKNOWN; a success cannot carry an error
    assert parse_completion({"outcome": "FAILED"}).error_class == ErrorClass.UNKNOWN
    with pytest.raises(ParameterError, match="SUCCESS has no error"):
        parse_completion({"outcome": "SUCCESS", "error_code": "E1"})


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("outcome", "DONE", "Invalid outcome"),
        ("error_class", "FATAL", "Invalid error class"),
        ("error_code", "rm -rf /", "Invalid error code"),
        ("tokens_in", -1, "tokens_in"),
        ("tokens_out", 10**13, "tokens_out"),
        ("tokens_in", True, "tokens_in"),
        ("cost_usd", float("nan"), "cost_usd"),
        ("cost_usd", float("inf"), "cost_usd"),
        ("cost_usd", -0.5, "cost_usd"),
        ("model", "a model; with spaces", "model"),
        ("output", "x" * (64 * 1024 + 1), "at most"),
    ],
)
def test_hostile_completions_are_refused(field: str, value: object, fragment: str) -> None:
    report = {"outcome": "FAILED", field: value}
    with pytest.raises(ParameterError, match=fragment):
        parse_completion(report)


def test_cost_alone() -> None:
    cost = parse_cost({"tokens_in": 3})
    assert (cost.tokens_in, cost.tokens_out, cost.cost_usd) == (3, 0, None)
    assert parse_cost({}).empty


def test_queue_fields_check() -> None:
    fields = QueueFields(priority="high", tags=("a", "a"))  # type: ignore[arg-type]
    fields.check()
    assert fields.priority == 75 and fields.tags == ("a",)
    for bad in (
        QueueFields(action="now"),
        QueueFields(on_dependency_failure="ignore"),
        QueueFields(retries=11),
        QueueFields(action="sprint"),  # without an epic
        QueueFields(epic="bad epic"),
        QueueFields(depends_on=tuple(f"t{i}" for i in range(51))),
    ):
        with pytest.raises(ParameterError):
            bad.check()


def test_retry_backoff_doubles_up_to_a_cap() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert retry_delay(30) == 300.0
