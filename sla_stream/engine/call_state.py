"""What a call centre keeps per queue: tallies of the calls booked to an interval, a day or a
month and how they measure against an objective, intervals, and calls still waiting."""

from __future__ import annotations

from dataclasses import dataclass, field

from sla_stream.engine.model import ABANDON_RATE, SERVICE_LEVEL, CallObjective


@dataclass(slots=True)
class Tally:
    """Calls booked to one queue and interval (or day, or month)."""

    answered: int = 0
    within: int = 0
    """Answered within ``answer_within``."""
    abandoned: int = 0
    short: int = 0
    """Abandoned within ``short_abandon`` (also counted in ``abandoned``)."""
    wait_ms: int = 0
    """Total wait of the answered calls."""

    def add(self, other: Tally) -> None:
        self.answered += other.answered
        self.within += other.within
        self.abandoned += other.abandoned
        self.short += other.short
        self.wait_ms += other.wait_ms

    def handled(self) -> int:
        """Calls that count: answered plus abandoned, short abandons left out."""
        return self.answered + self.abandoned - self.short

    def value(self, objective: str, missed: int = 0) -> float | None:
        """The objective's measure (``None`` with nothing to measure); ``missed`` adds
        waiting calls already past ``answer_within`` to the service level."""
        if objective == SERVICE_LEVEL:
            handled = self.handled() + missed
            return None if handled == 0 else self.within / handled
        if objective == ABANDON_RATE:
            handled = self.handled()
            return None if handled == 0 else (self.abandoned - self.short) / handled
        return None if self.answered == 0 else self.wait_ms / self.answered / 1000

    def to_state(self) -> list[int]:
        return [self.answered, self.within, self.abandoned, self.short, self.wait_ms]


def met(objective: CallObjective, value: float) -> bool:
    """Whether a measured value meets the objective (speed of answer in seconds)."""
    if objective.name == SERVICE_LEVEL:
        return value >= objective.target
    if objective.name == ABANDON_RATE:
        return value <= objective.target
    return value * 1000 <= objective.target


@dataclass(slots=True)
class Interval:
    """One queue's calls in one interval of one length."""

    tally: Tally = field(default_factory=Tally)
    warned: set[str] = field(default_factory=set)
    """Objectives that raised their near-breach in this interval."""
    closed: bool = False


@dataclass(slots=True)
class Waiting:
    """A call queued and not yet answered or abandoned."""

    queue: str
    since: int
    """When it was queued."""
    late: bool = False
    """Already past ``answer_within`` (and counted as missed)."""


IntervalKey = tuple[str, int, int]
"""``(queue, interval length, interval start)``."""
