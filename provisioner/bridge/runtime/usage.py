"""What an agent spent, read from what the agent writes down anyway, without its help:
Claude Code's session transcript, Codex's session log, Aider's usage lines. Pure parsers
(standard library only: this runs inside the workspace), fed one line at a time, each
returning the usage that line adds (a `Usage` delta) or None.

Each parser keeps just enough state to count a thing once: Claude Code writes a message's
usage on every content block of it, Codex writes running totals. What it reads is as
hostile as the agent: malformed lines are skipped, numbers must be whole and in range.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from typing import Any, NamedTuple

# far above any real turn; keeps a hostile line from making a sum absurd (the server
# checks again: tokens at most 10**12, dollars at most 10**6 a report)
MAX_TOKENS = 10**9
MAX_USD = 10_000.0
_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}")
# message ids remembered to count each once: far more than one session's messages that
# can still be written again (a message's blocks follow one another)
_SEEN = 4096


class Usage(NamedTuple):
    """Tokens (and dollars, when the agent says) one model call or turn added. (A
    NamedTuple, not a dataclass: dataclasses would load inspect and ast into the bridge.)"""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None  # None: not said; the server prices the tokens
    model: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.tokens_in or self.tokens_out or self.cost_usd)

    def report(self) -> dict[str, Any]:
        """The fields of a `usage` report (what the server's parse_cost reads)."""
        fields: dict[str, Any] = {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out}
        if self.cost_usd is not None:
            fields["cost_usd"] = self.cost_usd
        if self.model is not None:
            fields["model"] = self.model
        return fields


def _count(value: object) -> int:
    """A token count as written, or 0 when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return 0
    return value


def _model(value: object) -> str | None:
    if isinstance(value, str) and _MODEL_RE.fullmatch(value):
        return value
    return None


def _json(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None  # a line being written, or not JSON at all
    return data if isinstance(data, dict) else None


class ClaudeTranscript:
    """Claude Code's session transcript (~/.claude/projects/<dir>/<session>.jsonl).

    Each assistant entry carries `message.usage` (input_tokens, cache_creation_input_tokens,
    cache_read_input_tokens, output_tokens) and `message.model`. A message with several
    content blocks is written as several entries with the same `message.id`, each with
    the message's usage so far: counted once, the growth of a later copy added. Cache
    tokens are input tokens (they are sent to the model); `<synthetic>` entries (errors
    Claude Code writes itself) cost nothing.
    """

    INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def feed(self, line: str) -> Usage | None:
        if '"usage"' not in line:
            return None  # most lines: not worth parsing
        entry = _json(line) or {}
        message = entry.get("message") if entry.get("type") == "assistant" else None
        if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
            return None
        model = _model(message.get("model"))
        if model is None:
            return None  # `<synthetic>`, or no model: nothing was called
        usage = message["usage"]
        tokens_in = sum(_count(usage.get(k)) for k in self.INPUT_KEYS)
        tokens_out = _count(usage.get("output_tokens"))
        key = message.get("id") if isinstance(message.get("id"), str) else None
        if key is None:
            key = str(entry.get("requestId") or entry.get("uuid") or "")
        before_in, before_out = self._seen.pop(key, (0, 0)) if key else (0, 0)
        if key:
            self._seen[key] = (max(before_in, tokens_in), max(before_out, tokens_out))
            while len(self._seen) > _SEEN:
                self._seen.popitem(last=False)
        delta = Usage(max(tokens_in - before_in, 0), max(tokens_out - before_out, 0), None, model)
        return None if delta.empty else delta


class CodexSession:
    """Codex's session log (~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl).

    `turn_context` entries name the model; `event_msg` entries of type `token_count`
    carry `info.total_token_usage`, the session's running totals (input_tokens, which
    includes cached_input_tokens, and output_tokens, which includes reasoning tokens). The
    delta is the growth of those totals; totals that shrink started afresh (a new
    session in the same log) and count whole.
    """

    def __init__(self) -> None:
        self.totals = (0, 0)  # the running totals (input, output) last seen
        self.model: str | None = None

    def resume(self, totals: tuple[int, int], model: str | None) -> None:
        """Go on from totals and a model kept from an earlier read of the same log."""
        self.totals = (_count(totals[0]), _count(totals[1]))
        self.model = _model(model)

    def feed(self, line: str) -> Usage | None:
        if '"turn_context"' not in line and '"token_count"' not in line:
            return None
        entry = _json(line)
        payload = entry.get("payload") if entry else None
        if not isinstance(payload, dict):
            return None
        if entry and entry.get("type") == "turn_context":
            self.model = _model(payload.get("model")) or self.model
            return None
        info = payload.get("info") if payload.get("type") == "token_count" else None
        totals = info.get("total_token_usage") if isinstance(info, dict) else None
        if not isinstance(totals, dict):
            return None  # `info: null`: rate limits only
        now = (_count(totals.get("input_tokens")), _count(totals.get("output_tokens")))
        before = self.totals
        if now[0] < before[0] or now[1] < before[1]:
            before = (0, 0)
        self.totals = now
        delta = Usage(now[0] - before[0], now[1] - before[1], None, self.model)
        return None if delta.empty else delta


# Tokens: 2.5k sent, 1.1k cache write, 3.4k cache hit, 150 received. Cost: $0.0052 message,
# $0.01 session.   (aider's base_coder: counts under 1000 whole, then 1.2k, 12k, and M)
_AIDER_RE = re.compile(
    r"Tokens: (?P<sent>[\d.]+[kM]?) sent, (?:(?P<write>[\d.]+[kM]?) cache write, )?"
    r"(?:(?P<hit>[\d.]+[kM]?) cache hit, )?(?P<received>[\d.]+[kM]?) received\."
    r"(?: Cost: \$(?P<cost>\d+(?:\.\d+)?) message, \$[\d.]+ session\.)?"
)
_SCALE = {"": 1, "k": 1_000, "M": 1_000_000}


def _aider_tokens(text: str | None) -> int:
    if not text:
        return 0
    unit = text[-1] if text[-1] in "kM" else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        return 0
    count = value * _SCALE[unit]
    return round(count) if math.isfinite(count) and 0 <= count <= MAX_TOKENS else 0


class AiderReport:
    """Aider's usage line after each reply, in the agent's output (the bridge's transcript).

    Aider rounds the tokens (1.2k), so they are close, not exact; the message's dollars
    are its own (from LiteLLM's prices), shown only when it knows the model's price. The
    model is not on the line: the server prices the tokens as the task's model, if any.
    """

    def feed(self, line: str) -> Usage | None:
        if "Tokens: " not in line:
            return None
        # Aider prints it on a line of its own: the same words quoted anywhere else (the
        # user's prompt echoed, a reply) are not a usage report
        found = _AIDER_RE.fullmatch(line.strip())
        if found is None:
            return None
        # "sent" is what Aider counts as the prompt, cache writes included (cache hits are
        # a part of it some providers also show): added once, never again from the parts
        tokens_in = _aider_tokens(found.group("sent"))
        cost = None
        if found.group("cost") is not None:
            value = float(found.group("cost"))
            cost = value if math.isfinite(value) and 0 <= value <= MAX_USD else None
        delta = Usage(tokens_in, _aider_tokens(found.group("received")), cost, None)
        return None if delta.empty else delta
