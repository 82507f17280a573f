"""One objective's clock: elapsed open time, pauses, and the thresholds it passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sla_stream.engine.calendar import Calendar

BREACH_FRACTION = 1.0

_THRESHOLDS: dict[tuple[int, tuple[float, ...]], tuple[tuple[float, int], ...]] = {}


def _thresholds(target: int, fractions: tuple[float, ...]) -> tuple[tuple[float, int], ...]:
    key = (target, fractions)
    found = _THRESHOLDS.get(key)
    if found is None:
        found = tuple((f, round(target * f)) for f in fractions if f < BREACH_FRACTION)
        found += ((BREACH_FRACTION, target),)
        if len(_THRESHOLDS) > 10_000:
            _THRESHOLDS.clear()
        _THRESHOLDS[key] = found
    return found


@dataclass(slots=True)
class Clock:
    """Elapsed open time of one clock cycle.

    While running, ``elapsed`` is the open time counted before ``since``;
    otherwise it is the whole elapsed time. ``segments`` keeps the finished
    running spans so the instant a target was reached can be found again
    after a pause or a re-target.
    """

    target: int
    cycle: int = 0
    elapsed: int = 0
    since: int | None = None
    stopped: bool = False
    fired: dict[float, int] = field(default_factory=dict)
    """Fractions alerted in this cycle (1.0 is the breach), with the instant each was observed."""
    segments: tuple[tuple[int, int, int], ...] = ()
    """Finished running spans as ``(start, end, elapsed before it)``, oldest first (a tuple: a
    clock that never pauses holds no list of its own)."""
    scheduled: tuple[int, float] | None = field(default=None, compare=False)
    """The due threshold last handed to the scheduler (in memory only, never stored)."""

    @property
    def state(self) -> str:
        if self.stopped:
            return "stopped"
        return "running" if self.since is not None else "paused"

    def elapsed_at(self, cal: Calendar, now: int) -> int:
        """Open milliseconds elapsed at ``now``."""
        if self.since is None:
            return self.elapsed
        return self.elapsed + cal.between(self.since, now)

    def pause(self, cal: Calendar, now: int) -> None:
        if self.since is None:
            return
        now = max(now, self.since)
        self.segments += ((self.since, now, self.elapsed),)
        self.elapsed += cal.between(self.since, now)
        self.since = None

    def resume(self, now: int) -> None:
        if self.since is None and not self.stopped:
            self.since = now

    def stop(self, cal: Calendar, now: int) -> bool:
        """Stop for good (until a reopen); true when the target was met."""
        self.pause(cal, now)
        self.stopped = True
        return self.elapsed <= self.target

    def reached(self, cal: Calendar, amount: int) -> int | None:
        """The instant elapsed time reached ``amount``: past, or projected while running."""
        for index, (start, _, before) in enumerate(self.segments):
            # What a segment counted is where the next one starts: a segment before a contract
            # version changed the calendar counted on the calendar of its time.
            after = self.segments[index + 1][2] if index + 1 < len(self.segments) else self.elapsed
            if after >= amount:
                return cal.reach(start, amount - before)
        if self.since is None:
            return None
        return cal.reach(self.since, amount - self.elapsed)

    def thresholds(self, fractions: tuple[float, ...]) -> tuple[tuple[float, int], ...]:
        """``(fraction, open ms)`` of every near-breach fraction and the breach, ascending."""
        return _thresholds(self.target, fractions)

    def next_due(self, cal: Calendar, fractions: tuple[float, ...]) -> tuple[int, float, int] | None:
        """``(observed_at, fraction, amount)`` of the next threshold to pass, if running."""
        if self.since is None:
            return None
        for fraction, amount in self.thresholds(fractions):
            if fraction in self.fired:
                continue
            return cal.passes(self.since, max(0, amount - self.elapsed)), fraction, amount
        return None

    def to_state(self) -> list[Any]:
        return [
            self.target,
            self.cycle,
            self.elapsed,
            self.since,
            self.stopped,
            list(self.fired.items()),
            list(self.segments),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> Clock:
        target, cycle, elapsed, since, stopped, fired, segments = state
        return cls(
            target=target,
            cycle=cycle,
            elapsed=elapsed,
            since=since,
            stopped=stopped,
            fired={float(f): at for f, at in fired},
            segments=tuple(tuple(s) for s in segments),
        )
