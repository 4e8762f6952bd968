"""The prompt queue and the working/idle decision, as a pure state machine over timestamps."""

from __future__ import annotations

from collections import deque
from typing import Any

from .hooks import PROMPT_SUBMITTED, HookTracker
from .transcript import utc_iso
from .wire import (
    BRIDGE_STATES as STATES,
)
from .wire import (
    DELIVERED,
    EXITED,
    FAILED,
    IDLE,
    QUEUED,
    SETUP,
    SETUP_FAILED,
    STARTING,
    STOPPING,
    TAKEN,
    WORKING,
    PromptRecord,
)

__all__ = [
    "DELIVERED",
    "EXITED",
    "FAILED",
    "IDLE",
    "QUEUED",
    "SETUP",
    "SETUP_FAILED",
    "STARTING",
    "STATES",
    "STOPPING",
    "TAKEN",
    "WORKING",
]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else utc_iso(ts)


class Prompt:
    """One user prompt and its delivery history.

    A plain class, not a dataclass: importing dataclasses (inspect, ast, ...) cost ~5 ms
    of the bridge's start, while the agent waits to be told its first prompt."""

    __slots__ = _FIELDS = (
        "id", "content", "state", "queued_at", "delivered_at", "taken_at", "assumed", "reason",
    )  # fmt: skip

    def __init__(
        self,
        id: str,
        content: str,
        state: str = QUEUED,
        queued_at: float = 0.0,
        delivered_at: float | None = None,
        taken_at: float | None = None,
        assumed: bool = False,
        reason: str = "",
    ) -> None:
        self.id = id
        self.content = content
        self.state = state
        self.queued_at = queued_at
        self.delivered_at = delivered_at
        self.taken_at = taken_at
        self.assumed = assumed
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_state().items())
        return f"Prompt({fields})"

    def to_dict(self) -> PromptRecord:
        """The API view, with ISO 8601 times."""
        return {
            "id": self.id,
            "content": self.content,
            "state": self.state,
            "queued_at": _iso(self.queued_at),
            "delivered_at": _iso(self.delivered_at),
            "taken_at": _iso(self.taken_at),
            "assumed": self.assumed,
            "reason": self.reason,
        }

    def to_state(self) -> dict[str, Any]:
        """The persisted view, with exact timestamps."""
        return {name: getattr(self, name) for name in self._FIELDS}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Prompt:
        """Rebuild a prompt from its persisted view."""
        state = data.get("state", QUEUED)
        if state not in (QUEUED, DELIVERED, TAKEN, FAILED):
            raise ValueError(f"unknown prompt state {state!r}")
        return cls(
            id=str(data["id"]),
            content=str(data["content"]),
            state=state,
            queued_at=float(data.get("queued_at") or 0.0),
            delivered_at=None if data.get("delivered_at") is None else float(data["delivered_at"]),
            taken_at=None if data.get("taken_at") is None else float(data["taken_at"]),
            assumed=bool(data.get("assumed", False)),
            reason=str(data.get("reason") or ""),
        )


class Activity:
    """Decides working/idle and when the next queued prompt may be delivered."""

    # idle = quiet for quiet_s, cursor at the prompt, nothing queued, last delivery taken;
    # with `hooks` (state_source hooks) the agent's hook events decide instead: see hooks.py.
    # `prompt_last`: the agent writes its prompt last and nothing after it until it gets
    # input (the profile says so), so the screen at the prompt after a write is proof
    # enough: the quiet window ends there instead of quiet_s later.

    def __init__(
        self,
        quiet_s: float,
        take_timeout_s: float,
        now: float,
        hooks: HookTracker | None = None,
        prompt_last: bool = False,
    ) -> None:
        self.quiet_s = quiet_s
        self.prompt_last = prompt_last
        self.take_timeout_s = take_timeout_s
        self.hooks = hooks
        self.prompts: list[Prompt] = []
        self._queue: deque[Prompt] = deque()
        self._in_flight: Prompt | None = None
        self._started = False
        self.exit_code: int | None = None
        self.exited = False
        self.last_output_at = now
        self.at_prompt = False
        # bumped on every prompt state change, so the owner knows when to persist
        self.changes = 0

    # -- prompts -------------------------------------------------------------------------

    def enqueue(self, prompt_id: str, content: str, now: float) -> Prompt:
        """Queue a user prompt; from this moment the agent counts as working."""
        prompt = Prompt(id=prompt_id, content=content, queued_at=now)
        self.prompts.append(prompt)
        self._queue.append(prompt)
        self.changes += 1
        return prompt

    def restore(self, prompts: list[Prompt]) -> None:
        """Load prompts from a previous run: any not taken is queued again, in order."""
        for prompt in prompts:
            if prompt.state not in (TAKEN, FAILED):
                # a delivery the old agent never took may have been lost with it: deliver again
                prompt.state = QUEUED
                prompt.delivered_at = None
                self._queue.append(prompt)
            self.prompts.append(prompt)
        self.changes += 1

    def find(self, prompt_id: str) -> Prompt | None:
        """The prompt with this id, if known."""
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        return None

    @property
    def queued(self) -> int:
        """How many prompts wait for delivery."""
        return len(self._queue)

    @property
    def in_flight(self) -> Prompt | None:
        """The delivered prompt the agent has not taken yet."""
        return self._in_flight

    # -- events --------------------------------------------------------------------------

    def on_output(self, now: float, at_prompt: bool) -> None:
        """The agent printed something; `at_prompt` is the screen's verdict afterwards."""
        self.last_output_at = now
        self.at_prompt = at_prompt
        # with hooks, output is no proof: the agent echoes a prompt before it submits it
        if self._in_flight is not None and self.hooks is None:
            self._take(now, assumed=False)

    def on_hook(self, event: str, now: float) -> bool:
        """The agent's hook reported `event`; False if it is unknown (or hooks are off)."""
        if self.hooks is None or self.exited or not self.hooks.on_event(event, now):
            return False
        if event == PROMPT_SUBMITTED:
            self._started = True  # it takes prompts, so it is up
            if self._in_flight is not None:
                self._take(now, assumed=False)
        return True

    def on_raw_input(self) -> None:
        """Keys were typed directly: they may start or interrupt a turn no hook reports."""
        if self.hooks is not None:
            self.hooks.unconfirm()

    def on_exit(self, code: int, now: float) -> None:
        """The agent process ended."""
        self.exited = True
        self.exit_code = code
        self.at_prompt = False
        if self._in_flight is not None:
            # it was delivered and the agent ended: keep it delivered (a resume re-queues it)
            self._in_flight = None

    def tick(self, now: float) -> None:
        """Apply time-driven transitions: the take timeout and first reaching the prompt."""
        if self._in_flight is not None and now - self._in_flight_at() >= self.take_timeout_s:
            self._take(now, assumed=True)
            if self.hooks is not None:
                self.hooks.unconfirm()  # taken, but no hook saw it: the screen decides
        if not self._started and self._may_start(now):
            self._started = True

    def next_delivery(self, now: float) -> Prompt | None:
        """Pop the next prompt to type if the agent is ready for it; it becomes delivered."""
        self.tick(now)
        if not self._queue or not self._ready(now):
            return None
        prompt = self._queue.popleft()
        prompt.state = DELIVERED
        prompt.delivered_at = now
        self._in_flight = prompt
        self.changes += 1
        return prompt

    # -- queries -------------------------------------------------------------------------

    def quiet(self, now: float) -> bool:
        """No output for quiet_s (with prompt_last: or the last write left it at the prompt)."""
        if self.prompt_last and self.at_prompt:
            return True
        return now - self.last_output_at >= self.quiet_s

    def state(self, now: float) -> str:
        """starting, working, idle or exited."""
        if self.exited:
            return EXITED
        if not (self._started or self._may_start(now)):
            return STARTING
        if self._ready(now) and not self._queue:
            return IDLE
        return WORKING

    def next_deadline(self, now: float) -> float | None:
        """The next time at which state() may change without any new event."""
        deadlines = []
        if not self.quiet(now):
            deadlines.append(self.last_output_at + self.quiet_s)
        if self._in_flight is not None:
            deadlines.append(self._in_flight_at() + self.take_timeout_s)
        return min(deadlines) if deadlines else None

    # -- internals -----------------------------------------------------------------------

    def _resting(self, now: float) -> bool:
        return not self.exited and self.at_prompt and self.quiet(now)

    def _may_start(self, now: float) -> bool:
        if self.hooks is None:
            return self._resting(now)
        return not self.exited and self.hooks.started(self._resting(now), self.quiet(now))

    def _ready(self, now: float) -> bool:
        if self.hooks is None:
            return self._in_flight is None and self._resting(now)
        return (
            self._in_flight is None
            and not self.exited
            and (self._started or self._may_start(now))
            and self.hooks.idle(self._resting(now))
        )

    def fail(self, prompt: Prompt, reason: str, now: float) -> None:
        """The prompt just popped for delivery cannot be typed: it fails, the next may go."""
        prompt.state = FAILED
        prompt.reason = reason
        prompt.delivered_at = None
        if self._in_flight is prompt:
            self._in_flight = None
        self.changes += 1

    def _in_flight_at(self) -> float:
        assert self._in_flight is not None and self._in_flight.delivered_at is not None
        return self._in_flight.delivered_at

    def _take(self, now: float, assumed: bool) -> None:
        assert self._in_flight is not None
        self._in_flight.state = TAKEN
        self._in_flight.taken_at = now
        self._in_flight.assumed = assumed
        self._in_flight = None
        self.changes += 1
