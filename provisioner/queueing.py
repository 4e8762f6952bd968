"""The task queue's vocabulary and checks: priorities, tags, actions, sources, outcomes
and cost reports. Pure logic, no I/O: the engine, the API and the CLI share it.

Everything here is checked as if the caller were hostile: names are short and plain,
lists are bounded, numbers are finite and in range, text carries no control characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.errors import ParameterError
from provisioner.lifecycle import ErrorClass, Outcome

PRIORITY_NAMES = {"low": 25, "normal": 50, "high": 75}
DEFAULT_PRIORITY = 50
MAX_PRIORITY = 100

# queue: the default; interrupt: to the head of the queue, preempting an idle
# lower-priority task when no slot is free; backlog: parked until nothing else for its
# target waits; parallel: not counted against its target's limit; sprint: part of an
# epic that runs in dependency order
ACTIONS = ("queue", "interrupt", "backlog", "parallel", "sprint")
# who made a task: set by the server from how the request came, never by the caller
SOURCES = ("cli", "api", "dashboard", "agent", "cron", "webhook", "mcp", "a2a")
DEPENDENCY_POLICIES = ("fail", "wait")

MAX_TAGS = 20
MAX_DEPENDENCIES = 50
MAX_TITLE = 120
MAX_NOTE_BYTES = 2048
MAX_QUESTION_BYTES = 4096
MAX_OUTPUT_BYTES = 64 * 1024
MAX_TOKENS = 10**12  # far above any real run; keeps sums inside 64-bit columns
MAX_COST_USD = 10**6
MAX_RETRIES = 10

_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}")
# C0 and C1 controls, DEL, and the bidi overrides that make text read as something else
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def parse_priority(value: object) -> int:
    """A priority from 0 to 100, or low/normal/high (25/50/75)."""
    if isinstance(value, str):
        text = value.strip()
        named = PRIORITY_NAMES.get(text.lower())
        if named is not None:
            return named
        try:
            value = int(text)
        except ValueError:
            raise ParameterError(
                f"Invalid priority {text[:20]!r}: use 0-100 or low, normal, high"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"Invalid priority {value!r}: use 0-100 or low, normal, high")
    if not 0 <= value <= MAX_PRIORITY:
        raise ParameterError(f"Invalid priority {value}: it goes from 0 to {MAX_PRIORITY}")
    return value


def check_label(value: str | None, what: str) -> str | None:
    """A short plain name (a tag, a type, an epic, a target, a codebase), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _LABEL_RE.fullmatch(value):
        shown = value[:40] if isinstance(value, str) else value
        raise ParameterError(
            f"Invalid {what} {shown!r}: use 1-64 letters, digits and . _ : / -, "
            "starting with a letter or digit"
        )
    return value


# CodeTether's registration tasks: a task for this codebase any registered worker may claim
REGISTRATION_CODEBASE = "__pending__"


def check_codebase(value: str | None) -> str | None:
    """A codebase id (a label, `global`, or the registration codebase `__pending__`)."""
    if value == REGISTRATION_CODEBASE:
        return value
    return check_label(value, "codebase")


def check_tags(tags: Iterable[str]) -> list[str]:
    """Tags in the order given, duplicates dropped; at most MAX_TAGS."""
    result = list(dict.fromkeys(check_label(t, "tag") or "" for t in tags))
    if len(result) > MAX_TAGS:
        raise ParameterError(f"Too many tags ({len(result)}): at most {MAX_TAGS}")
    return result


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `choices`, else a ParameterError listing them."""
    if value not in choices:
        raise ParameterError(f"Invalid {what} {str(value)[:40]!r}: one of {', '.join(choices)}")
    return value


def check_text(value: str | None, what: str, max_bytes: int) -> str | None:
    """Free text of at most `max_bytes` UTF-8 bytes with no control characters other than
    newline and tab (a terminal must never receive one as a key), stripped."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParameterError(f"The {what} must be text")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ParameterError(f"The {what} is {size} bytes: at most {max_bytes}")
    bad = _CONTROL_RE.search(value)
    if bad:
        raise ParameterError(
            f"The {what} contains the control character U+{ord(bad.group()):04X}; "
            "only newlines and tabs are allowed"
        )
    return value.strip()


def title_from(prompt: str, title: str | None) -> str:
    """The title given (checked), or the prompt's first line, cut to MAX_TITLE."""
    if title is not None:
        checked = check_text(title, "title", 4 * MAX_TITLE) or ""
        if "\n" in checked:
            raise ParameterError("The title is one line")
        if not checked:
            raise ParameterError("The title is empty")
        return checked[:MAX_TITLE]
    first = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
    return _CONTROL_RE.sub("", first)[:MAX_TITLE]


def check_retries(value: object) -> int:
    """How many automatic retries: 0 to MAX_RETRIES."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ParameterError(f"Invalid retries {value!r}: from 0 to {MAX_RETRIES}")
    return value


@dataclass(frozen=True)
class Cost:
    """Tokens and money spent by one turn or attempt, as reported."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None  # None: not reported (pricing may fill it in)
    model: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.tokens_in or self.tokens_out or self.cost_usd or self.model)


def _count(value: object, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise ParameterError(f"Invalid {what} {value!r}: a whole number from 0 to {MAX_TOKENS}")
    return value


def parse_cost(data: Mapping[str, Any]) -> Cost:
    """The cost fields of a report or a completion (tokens_in, tokens_out, cost_usd, model)."""
    cost = data.get("cost_usd")
    if cost is not None:
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            raise ParameterError(f"Invalid cost_usd {cost!r}: a number of dollars")
        cost = float(cost)
        if not math.isfinite(cost) or not 0 <= cost <= MAX_COST_USD:
            raise ParameterError(f"Invalid cost_usd {cost!r}: from 0 to {MAX_COST_USD}")
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not _MODEL_RE.fullmatch(model)):
        raise ParameterError(f"Invalid model {str(model)[:40]!r}: a model name")
    return Cost(
        tokens_in=_count(data.get("tokens_in"), "tokens_in"),
        tokens_out=_count(data.get("tokens_out"), "tokens_out"),
        cost_usd=cost,
        model=model,
    )


@dataclass(frozen=True)
class Completion:
    """How a task ended, as reported by its agent or its user."""

    outcome: Outcome
    error_code: str | None = None
    error_class: ErrorClass | None = None
    output: str | None = None
    cost: Cost = Cost()


def parse_completion(data: Mapping[str, Any]) -> Completion:
    """A completion from a request or a workspace report; ParameterError if malformed."""
    raw = data.get("outcome")
    try:
        outcome = Outcome(str(raw).upper())
    except ValueError:
        choices = ", ".join(o.value for o in Outcome)
        raise ParameterError(f"Invalid outcome {str(raw)[:20]!r}: one of {choices}") from None
    klass = data.get("error_class")
    error_class = None
    if klass is not None:
        try:
            error_class = ErrorClass(str(klass).upper())
        except ValueError:
            choices = ", ".join(c.value for c in ErrorClass)
            raise ParameterError(
                f"Invalid error class {str(klass)[:20]!r}: one of {choices}"
            ) from None
    code = data.get("error_code")
    if code is not None and (not isinstance(code, str) or not _CODE_RE.fullmatch(code)):
        raise ParameterError(
            f"Invalid error code {str(code)[:40]!r}: 1-64 letters, digits and . _ : -"
        )
    if outcome == Outcome.SUCCESS and (error_class or code):
        raise ParameterError("A SUCCESS has no error code or class")
    if outcome == Outcome.FAILED and error_class is None:
        error_class = ErrorClass.UNKNOWN
    return Completion(
        outcome=outcome,
        error_code=code,
        error_class=error_class,
        output=check_text(data.get("output"), "output", MAX_OUTPUT_BYTES),
        cost=parse_cost(data),
    )


def waiting_for_message(blocking: Iterable[tuple[str, str]]) -> str:
    """`waiting for dependencies: build-1a2b (active), test-3c4d (pending)`."""
    shown = [f"{name} ({status})" for name, status in blocking]
    return "waiting for dependencies: " + ", ".join(shown)


def retry_delay(attempt: int, base_s: float = 5.0, cap_s: float = 300.0) -> float:
    """Seconds before automatic retry number `attempt` (1: the first retry): doubling."""
    return min(base_s * 2 ** max(attempt - 1, 0), cap_s)
