"""Call-centre objectives: service level, abandon rate and speed of answer per queue and interval.

A call is booked to the interval in which it was answered or abandoned.
Service level = answered within ``answer_within`` ÷ (answered + abandoned −
abandoned within ``short_abandon``); abandon rate leaves short abandons out
the same way; speed of answer is the average wait of the answered calls.

While an interval is open, a call still waiting past ``answer_within`` counts
as missed in its service level: that, or an abandon rate or average wait
already past its limit, raises one ``near_breach`` per queue, objective and
interval. When the clock passes the interval's end, ``breach`` if it closed
outside the objective, or ``recovered`` if it met it after one that did not.
Intervals with no calls are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sla_stream.engine import events as ev
from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.events import CallEvent, Rejected
from sla_stream.engine.model import (
    ABANDON_RATE,
    SERVICE_LEVEL,
    SPEED_OF_ANSWER,
    CallObjective,
    CallPolicy,
    Contract,
)
from sla_stream.engine.penalties import CALLS, Ledger
from sla_stream.engine.time import DAY_MS, from_ms, to_ms

#: How long closed intervals are kept (late calls within the allowed lateness still land in
#: theirs), and event ids when no allowed lateness is set.
KEEP_MS = DAY_MS
#: A call waiting longer than this is taken to have been lost by the producer and forgotten.
FORGET_WAITING_MS = DAY_MS


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
    queue: str
    since: int
    late: bool = False
    """Already past ``answer_within`` (and counted as missed)."""


IntervalKey = tuple[str, int, int]
"""``(queue, interval length, interval start)``."""


@dataclass(slots=True)
class CallCentre:
    """Everything the engine remembers of one contract's calls."""

    waiting: dict[str, Waiting] = field(default_factory=dict)
    intervals: dict[IntervalKey, Interval] = field(default_factory=dict)
    days: dict[tuple[str, int], Tally] = field(default_factory=dict)
    """Per queue and local day (start instant): the daily roll-up (the period ledger has the
    contract's months)."""
    breached: dict[str, int] = field(default_factory=dict)
    """``queue|objective`` -> start of the last interval that closed outside it, until one meets it."""
    seen: dict[str, int] = field(default_factory=dict)
    """Event ids applied, with their times, to recognise repeats."""

    def to_state(self) -> dict[str, Any]:
        return {
            "w": {call: [w.queue, w.since, w.late] for call, w in self.waiting.items()},
            "i": [
                [queue, length, start, i.tally.to_state(), sorted(i.warned), i.closed]
                for (queue, length, start), i in self.intervals.items()
            ],
            "d": [[queue, day, t.to_state()] for (queue, day), t in self.days.items()],
            "b": self.breached,
            "s": self.seen,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CallCentre:
        return cls(
            waiting={call: Waiting(q, since, late) for call, (q, since, late) in state["w"].items()},
            intervals={
                (q, length, start): Interval(Tally(*tally), set(warned), closed)
                for q, length, start, tally, warned, closed in state["i"]
            },
            days={(q, day): Tally(*t) for q, day, t in state["d"]},
            breached=dict(state["b"]),
            seen=dict(state["s"]),
        )


def policy_of(contract: Contract) -> CallPolicy:
    if contract.calls is None:
        raise Rejected("invalid", f"contract {contract.id!r} has no call objectives")
    return contract.calls


def interval_start(contract: Contract, at: int, length: int) -> int:
    """The start of the ``length`` interval holding ``at``, counted from local midnight."""
    midnight = day_start(contract, at)
    return midnight + (at - midnight) // length * length


def day_start(contract: Contract, at: int) -> int:
    day = from_ms(at, contract.zone).date()
    return to_ms(datetime.combine(day, time(), contract.zone))


def check(contract: Contract, centre: CallCentre | None, event: CallEvent) -> None:
    """Raises :class:`Rejected` for a call event the engine cannot book."""
    policy_of(contract.at(event.at))
    if event.type == ev.CALL_QUEUED:
        return
    waiting = centre.waiting.get(event.call_id) if centre is not None else None
    if waiting is None:
        if event.wait_ms is None:
            raise Rejected(
                "invalid",
                f"no call.queued was seen for call {event.call_id!r} and the event has no wait_seconds",
            )
        if event.queue is None:
            raise Rejected(
                "invalid", f"no call.queued was seen for call {event.call_id!r} and the event names no queue"
            )


def apply(contract: Contract, centre: CallCentre, event: CallEvent, now: int, ledger: Ledger) -> list[Alert]:
    """Book one call event (checked by :func:`check`) to its interval, day and period;
    near-breaches it raises. The call is counted by the version of ``contract`` in force at its
    time, each interval judged by the version in force at the interval's start."""
    policy = policy_of(contract.at(event.at))
    centre.seen[event.event_id] = event.at
    if event.type == ev.CALL_QUEUED:
        assert event.queue is not None  # the decoder requires it
        centre.waiting[event.call_id] = Waiting(event.queue, event.at)
        return []
    waiting = centre.waiting.pop(event.call_id, None)
    if waiting is not None:
        queue, wait = waiting.queue, max(0, event.at - waiting.since)
    else:
        assert event.queue is not None and event.wait_ms is not None  # see check()
        queue, wait = event.queue, event.wait_ms
    booked = Tally()
    if event.type == ev.CALL_ANSWERED:
        booked.answered, booked.wait_ms = 1, wait
        booked.within = int(policy.answer_within is not None and wait <= policy.answer_within)
    else:
        booked.abandoned = 1
        booked.short = int(policy.short_abandon is not None and wait <= policy.short_abandon)
    centre.days.setdefault((queue, day_start(contract, event.at)), Tally()).add(booked)
    ledger.add(ledger.period(contract.zone, event.at), CALLS, booked.to_state())
    alerts = []
    for length in sorted({objective.interval for objective in policy.objectives.values()}):
        start = interval_start(contract, event.at, length)
        interval = centre.intervals.setdefault((queue, length, start), Interval())
        interval.tally.add(booked)
        if interval.closed or start + length <= now:
            continue  # a late call for an interval already judged: counted, no alert
        for objective in _judging(contract, start, length):
            alerts += _warn(contract, centre, objective, queue, start, interval, event.at)
    return alerts


def _judging(contract: Contract, start: int, length: int) -> list[CallObjective]:
    """The objectives judging the ``length`` interval from ``start``: the version's in force then."""
    policy = contract.at(start).calls
    return [] if policy is None else [o for o in policy.objectives.values() if o.interval == length]


def _answer_within(contract: Contract, since: int) -> int | None:
    """``answer_within`` for a call queued at ``since`` (of the version in force then), if the
    service level is measured."""
    policy = contract.at(since).calls
    return policy.answer_within if policy is not None and SERVICE_LEVEL in policy.objectives else None


def due(contract: Contract, centre: CallCentre) -> int | None:
    """The next instant something about these calls falls due: a waiting call passing
    ``answer_within``, or an interval's end."""
    times = [
        start + length for (_, length, start), interval in centre.intervals.items() if not interval.closed
    ]
    for w in centre.waiting.values():
        answer_within = None if w.late else _answer_within(contract, w.since)
        if answer_within is not None:
            times.append(w.since + answer_within)
    return min(times, default=None)


def fire(contract: Contract, centre: CallCentre, at: int, keep_ms: int) -> list[Alert]:
    """Everything due at exactly ``at``: waiting calls passing ``answer_within``, then
    intervals ending."""
    policy = policy_of(contract.at(at))
    alerts: list[Alert] = []
    crossing = sorted(
        (w.queue, call)
        for call, w in centre.waiting.items()
        if not w.late and (within := _answer_within(contract, w.since)) is not None and w.since + within == at
    )
    for _, call in crossing:
        centre.waiting[call].late = True
    level = policy.objectives.get(SERVICE_LEVEL)
    for queue in sorted({queue for queue, _ in crossing}):
        if level is None:
            break  # the version in force now does not measure the service level
        start = interval_start(contract, at, level.interval)
        interval = centre.intervals.get((queue, level.interval, start))
        if interval is None:
            interval = centre.intervals[queue, level.interval, start] = Interval()
        if not interval.closed:
            for objective in _judging(contract, start, level.interval):
                if objective.name == SERVICE_LEVEL:
                    alerts += _warn(contract, centre, objective, queue, start, interval, at)
    ending = sorted(
        key for key, interval in centre.intervals.items() if not interval.closed and key[2] + key[1] == at
    )
    for queue, length, start in ending:
        interval = centre.intervals[queue, length, start]
        interval.closed = True
        for objective in _judging(contract, start, length):
            alerts += _close(contract, centre, objective, queue, start, interval)
    if ending:
        _forget(centre, at - KEEP_MS, at - (keep_ms or KEEP_MS))
    return alerts


def missed(centre: CallCentre, queue: str) -> int:
    """Calls waiting in ``queue`` already past ``answer_within``."""
    return sum(1 for w in centre.waiting.values() if w.late and w.queue == queue)


def _warn(
    contract: Contract,
    centre: CallCentre,
    objective: CallObjective,
    queue: str,
    start: int,
    interval: Interval,
    at: int,
) -> list[Alert]:
    if objective.name in interval.warned:
        return []
    waiting_missed = missed(centre, queue) if objective.name == SERVICE_LEVEL else 0
    value = interval.tally.value(objective.name, waiting_missed)
    if value is None or met(objective, value):
        return []
    interval.warned.add(objective.name)
    return [_alert(NEAR_BREACH, contract, objective, queue, start, interval.tally, value, at, waiting_missed)]


def _close(
    contract: Contract,
    centre: CallCentre,
    objective: CallObjective,
    queue: str,
    start: int,
    interval: Interval,
) -> list[Alert]:
    value = interval.tally.value(objective.name)
    if value is None:
        return []
    end = start + objective.interval
    key = f"{queue}|{objective.name}"
    if not met(objective, value):
        centre.breached[key] = start
        return [_alert(BREACH, contract, objective, queue, start, interval.tally, value, end)]
    if key in centre.breached:
        del centre.breached[key]
        return [_alert(RECOVERED, contract, objective, queue, start, interval.tally, value, end)]
    return []


def _forget(centre: CallCentre, before: int, seen_before: int) -> None:
    """Drop closed intervals and roll-ups older than ``before``, event ids older than
    ``seen_before`` (the allowed lateness: anything older is rejected as late anyway), and
    calls waiting too long."""
    for interval in [k for k, i in centre.intervals.items() if i.closed and k[2] + k[1] < before]:
        del centre.intervals[interval]
    for day in [k for k in centre.days if k[1] + 2 * DAY_MS < before]:
        del centre.days[day]
    centre.seen = {event_id: at for event_id, at in centre.seen.items() if at >= seen_before}
    for call in [c for c, w in centre.waiting.items() if w.since < before - FORGET_WAITING_MS]:
        del centre.waiting[call]


def _alert(
    kind: str,
    contract: Contract,
    objective: CallObjective,
    queue: str,
    start: int,
    tally: Tally,
    value: float,
    at: int,
    waiting_missed: int = 0,
) -> Alert:
    target = objective.target / 1000 if objective.name == SPEED_OF_ANSWER else objective.target
    details: dict[str, Any] = {
        "interval_seconds": objective.interval // 1000,
        "target": target,
        "value": round(value, 6),
        "answered": tally.answered,
        "abandoned": tally.abandoned,
    }
    if objective.name == SERVICE_LEVEL:
        details["answered_within"] = tally.within
    if objective.name != SPEED_OF_ANSWER:
        details["short_abandoned"] = tally.short
    if waiting_missed:
        details["waiting_missed"] = waiting_missed
    return Alert(
        kind=kind,
        contract_id=contract.id,
        objective=objective.name,
        subject_kind="queue",
        subject_id=queue,
        cycle=start,
        target_ms=objective.interval,
        elapsed_ms=at - start,
        deadline_ms=start + objective.interval,
        observed_at_ms=at,
        zone=contract.zone,
        details=details,
        interval_start_ms=start,
    )
