"""How a server bounds badly signed deliveries to its triggers (pure: the caller passes
the time, the route does the I/O).

A sender that guesses signatures, or floods a trigger with junk, must cost a counter, not
HMACs, database lookups and a row per request. So, in each server's memory:

- per trigger and per source address, bad deliveries (a wrong or missing signature; for a
  source also a trigger name that does not exist) are counted over a sliding minute; past
  the limit the route answers 429 before reading the trigger or checking anything;
- only the first RECORD_EACH bad deliveries to a trigger in a minute get a delivery row of
  their own; from then on, for as long as the flood lasts, one `limited` row per flood
  sums them up (rejected and refused counts, the busiest sources, the last reason),
  rewritten at most every FLUSH_S. A flood of any length adds RECORD_EACH + 1 rows.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

BAD_PER_TRIGGER = 30  # bad deliveries to one trigger in a minute before 429
# bad deliveries (or unknown names) from one address in a minute, across triggers: above
# one trigger's, so a sender with one wrong secret is told by its trigger's 429 first
BAD_PER_SOURCE = 100
RECORD_EACH = 10  # bad deliveries to one trigger in a minute recorded one by one
WINDOW_S = 60.0
FLUSH_S = 5.0  # how often a flood's summary row is rewritten, at most
MAX_KEYS = 10_000  # triggers or sources counted at once: beyond, forget rather than grow
SOURCES_SHOWN = 5
FLOOD_SOURCES = 1000  # sources one flood counts; past it, only its busiest 100 are kept


@dataclass
class Flood:
    """One trigger's run of bad deliveries past RECORD_EACH a minute: its summary row."""

    started: float
    last: float
    rejected: int = 0  # checked, and the signature was wrong
    refused: int = 0  # answered 429 unchecked
    sources: collections.Counter[str] = field(default_factory=collections.Counter)
    reason: str = ""
    row_id: int | None = None
    flushed: float = 0.0
    writing: bool = False
    dirty: bool = False

    def summary(self) -> str:
        """The row's reason: bounded, whatever the flood's size."""
        busiest = ", ".join(f"{s} ({n})" for s, n in self.sources.most_common(SOURCES_SHOWN))
        more = len(self.sources) - SOURCES_SHOWN
        return (
            f"a flood of badly signed deliveries: {self.rejected} more rejected and "
            f"{self.refused} refused (429) unchecked, from {len(self.sources)} source(s): "
            f"{busiest}{f' and {more} more' if more > 0 else ''}; last reason: {self.reason}"
        )[:2000]


class _Window:
    """Times of bad deliveries per key over the last WINDOW_S, bounded in keys."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, collections.deque[float]] = {}

    def count(self, key: str, now: float) -> int:
        times = self._seen.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            del self._seen[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> int:
        if key not in self._seen and len(self._seen) >= MAX_KEYS:
            self._seen.clear()  # a flood of keys: forget, rather than grow
        times = self._seen.setdefault(key, collections.deque())
        times.append(now)
        if len(times) > self.limit:  # nothing past the limit is ever needed
            times.popleft()
        return self.count(key, now)

    def eases_in(self, key: str, now: float) -> float:
        """Seconds until `key` is under its limit again (0: it is)."""
        if self.count(key, now) < self.limit:
            return 0.0
        return max(0.0, self._seen[key][0] + WINDOW_S - now)


class BadDeliveries:
    """This server's counts of bad deliveries, per trigger and per source; thread-safe."""

    def __init__(
        self,
        per_trigger: int | None = None,
        per_source: int | None = None,
        record_each: int | None = None,
    ) -> None:
        # the module's figures read now, not at import: tests may lower them
        self.record_each = RECORD_EACH if record_each is None else record_each
        self._triggers = _Window(BAD_PER_TRIGGER if per_trigger is None else per_trigger)
        self._sources = _Window(BAD_PER_SOURCE if per_source is None else per_source)
        self._floods: dict[str, Flood] = {}
        self._lock = threading.Lock()

    def source_blocked(self, source: str, now: float) -> float:
        """Seconds until `source` may be heard again (0: now); checked before anything
        is read, so a source guessing trigger names costs no lookups."""
        with self._lock:
            return self._sources.eases_in(source, now)

    def trigger_blocked(self, name: str, source: str, now: float) -> float:
        """Seconds until deliveries to `name` are checked again (0: now). A refusal
        counts in the trigger's flood, if one runs."""
        with self._lock:
            wait = self._triggers.eases_in(name, now)
            flood = self._floods.get(name)
            if wait and flood is not None:
                flood.refused += 1
                flood.sources[source] += 1
                flood.last = now
                flood.dirty = True
            return wait

    def unknown(self, source: str, now: float) -> None:
        """`source` named a trigger that does not exist."""
        with self._lock:
            self._sources.add(source, now)

    def failed(self, name: str, source: str, reason: str, now: float) -> bool:
        """A delivery to `name` from `source` had a bad signature. True: record it as a
        row of its own; False: it went into the trigger's flood summary (see `due`)."""
        with self._lock:
            self._sources.add(source, now)
            recent = self._triggers.add(name, now)
            flood = self._floods.get(name)
            if flood is not None and now - flood.last > WINDOW_S:
                flood = None  # the last flood ended a while ago: a new one, a new row
                del self._floods[name]
            if flood is None and recent <= self.record_each:
                return True
            if flood is None:
                if len(self._floods) >= MAX_KEYS:
                    self._floods.clear()
                flood = self._floods[name] = Flood(started=now, last=now)
            flood.rejected += 1
            flood.sources[source] += 1
            if len(flood.sources) > FLOOD_SOURCES:
                flood.sources = collections.Counter(dict(flood.sources.most_common(100)))
            flood.reason = reason[:200]
            flood.last = now
            flood.dirty = True
            return False

    def due(self, name: str, now: float) -> Flood | None:
        """The flood of `name` if its summary row should be written now (first time, or
        FLUSH_S after the last write, with something new); the caller writes it and
        calls `written`. At most one caller at a time gets it."""
        with self._lock:
            flood = self._floods.get(name)
            if flood is None or flood.writing or not flood.dirty:
                return None
            if flood.row_id is not None and now - flood.flushed < FLUSH_S:
                return None
            flood.writing, flood.dirty, flood.flushed = True, False, now
            return flood

    def written(self, flood: Flood, row_id: int | None) -> None:
        """The summary row of `flood` was written (its id, the first time)."""
        with self._lock:
            if row_id is not None:
                flood.row_id = row_id
            flood.writing = False
