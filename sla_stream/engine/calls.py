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

Cost: what falls due is kept in heaps (see ``_Index``), so an event costs O(log n) in the waiting
calls, intervals and event ids a centre keeps, plus the objectives of the intervals it books to
and the contract's versions; nothing it keeps is rescanned. Firing costs the same per call and
interval falling due, and forgetting per thing forgotten.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, TypeVar

from sla_stream.engine import events as ev
from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.events import CallEvent, Rejected
from sla_stream.engine.ledger import CALLS, Ledger
from sla_stream.engine.model import (
    ABANDON_RATE,
    SERVICE_LEVEL,
    SPEED_OF_ANSWER,
    CallObjective,
    CallPolicy,
    Contract,
)
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
    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)
    """Derived from the fields above (never stored): see :class:`_Index`."""
    _missed: dict[str, int] = field(init=False, repr=False, compare=False)
    """Derived from ``waiting``: per queue, the calls already past ``answer_within`` (see :func:`missed`)."""

    def __post_init__(self) -> None:
        self._missed = {}
        for w in self.waiting.values():
            if w.late:
                _count_missed(self, w.queue, 1)

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


@dataclass(frozen=True, slots=True)
class _Terms:
    """What one version of a contract says about calls, worked out once."""

    policy: CallPolicy | None
    lengths: tuple[int, ...]
    """Its interval lengths, ascending."""
    judging: Mapping[int, tuple[CallObjective, ...]]
    """Its objectives by interval length."""
    answer_within: int | None
    """``answer_within`` if the service level is measured."""


def _terms(version: Contract) -> _Terms:
    policy = version.calls
    objectives = () if policy is None else tuple(policy.objectives.values())
    lengths = tuple(sorted({objective.interval for objective in objectives}))
    judging = {length: tuple(o for o in objectives if o.interval == length) for length in lengths}
    within = None
    if policy is not None and SERVICE_LEVEL in policy.objectives:
        within = policy.answer_within
    return _Terms(policy, lengths, judging, within)


Wait = tuple[int, str, int]
"""``(since + answer_within, call, since)``: when a waiting call passes ``answer_within``."""
Queued = tuple[int, str]
"""``(since, call)``."""
Bound = tuple[int, str, int, int]
"""``(end, queue, length, start)`` of an interval."""
Entry = TypeVar("Entry", bound=tuple[Any, ...])


class _Index:
    """What a centre derives from its stored fields so that no event rescans them, for one
    contract object: rebuilt when the centre is loaded (or meets another contract object), then
    kept up to date by every change.

    Each heap holds, ordered by time, an entry for every call or interval it is about, and maybe
    stale ones (the call answered, the interval forgotten): a stale entry is dropped when it comes
    to the top. The two heaps of waiting calls, whose stale entries could pile up (most calls are
    answered before their entries come up), are rebuilt once stale entries outnumber live ones.
    """

    def __init__(self, contract: Contract, centre: CallCentre) -> None:
        self.contract = contract
        #: By ``id`` of each version (``contract`` holds them, so the ids stay theirs).
        self.terms = {id(version): _terms(version) for version in (contract, *contract.versions)}
        #: The local day last asked for, ``[start, end)``, while its offset does not change.
        self.day = (0, 0)
        bounds = [((s + n, q, n, s), i.closed) for (q, n, s), i in centre.intervals.items()]
        self.ends = [bound for bound, closed in bounds if not closed]
        """Open intervals, to close at their end."""
        self.closed = [bound for bound, closed in bounds if closed]
        """Closed intervals, to forget."""
        self.days = [(day, queue) for queue, day in centre.days]
        self.seen = [(at, event_id) for event_id, at in centre.seen.items()]
        heapq.heapify(self.ends)
        heapq.heapify(self.closed)
        heapq.heapify(self.days)
        heapq.heapify(self.seen)
        self.waits: list[Wait] = []
        """Waiting calls not yet past ``answer_within`` (of a version measuring the service level)."""
        self.queued: list[Queued] = []
        """Waiting calls, to forget."""
        self.index_waiting(centre)

    def index_waiting(self, centre: CallCentre) -> None:
        """(Re)build the heaps of waiting calls, with no stale entries."""
        self.queued = [(w.since, call) for call, w in centre.waiting.items()]
        self.waits = []
        for call, w in centre.waiting.items():
            within = None if w.late else self.at(w.since).answer_within
            if within is not None:
                self.waits.append((w.since + within, call, w.since))
        heapq.heapify(self.queued)
        heapq.heapify(self.waits)

    def at(self, instant: int) -> _Terms:
        """The terms of the version in force at ``instant``."""
        return self.of(self.contract.at(instant))

    def of(self, version: Contract) -> _Terms:
        """The terms of ``version`` (of this contract)."""
        return self.terms[id(version)]

    def day_start(self, at: int) -> int:
        """:func:`day_start`, cheap for instants in the day last asked for."""
        start, end = self.day
        if start <= at < end:
            return start
        zone = self.contract.zone
        day = from_ms(at, zone).date()
        start = to_ms(datetime.combine(day, time(), zone))
        end = to_ms(datetime.combine(day + timedelta(days=1), time(), zone))
        # A day with one offset throughout holds exactly the instants of its local date: kept.
        same = from_ms(start, zone).utcoffset() == from_ms(end - 1, zone).utcoffset()
        self.day = (start, end) if same and end - start == DAY_MS else (0, 0)
        return start

    def queue(self, centre: CallCentre, call: str, w: Waiting) -> None:
        """Index a call just put in ``centre.waiting``."""
        heapq.heappush(self.queued, (w.since, call))
        within = self.at(w.since).answer_within
        if within is not None:
            heapq.heappush(self.waits, (w.since + within, call, w.since))
        if max(len(self.queued), len(self.waits)) > 2 * len(centre.waiting) + 64:
            self.index_waiting(centre)

    def open(self, centre: CallCentre, key: IntervalKey) -> Interval:
        """A new open interval in ``centre.intervals``."""
        interval = centre.intervals[key] = Interval()
        queue, length, start = key
        heapq.heappush(self.ends, (start + length, queue, length, start))
        return interval

    def next_wait(self, centre: CallCentre) -> int | None:
        """When the first waiting call passes ``answer_within`` (stale entries before it dropped)."""
        waits = self.waits
        while waits and not _still_waiting(centre, waits[0]):
            heapq.heappop(waits)
        return waits[0][0] if waits else None

    def next_end(self, centre: CallCentre) -> int | None:
        """When the first open interval ends (stale entries before it dropped)."""
        ends = self.ends
        while ends and not _still_open(centre, ends[0]):
            heapq.heappop(ends)
        return ends[0][0] if ends else None

    def crossing(self, centre: CallCentre, at: int) -> set[str]:
        """Waiting calls passing ``answer_within`` at exactly ``at``."""
        return {call for _, call, _ in _take(self.waits, at, lambda entry: _still_waiting(centre, entry))}

    def ending(self, centre: CallCentre, at: int) -> set[IntervalKey]:
        """Open intervals ending at exactly ``at``."""
        return {(q, n, s) for _, q, n, s in _take(self.ends, at, lambda entry: _still_open(centre, entry))}


def _still_waiting(centre: CallCentre, entry: Wait) -> bool:
    w = centre.waiting.get(entry[1])
    return w is not None and not w.late and w.since == entry[2]


def _still_open(centre: CallCentre, entry: Bound) -> bool:
    interval = centre.intervals.get(entry[1:])
    return interval is not None and not interval.closed


def _take(heap: list[Entry], at: int, live: Callable[[Entry], bool]) -> list[Entry]:
    """Take the live entries of ``heap`` due at exactly ``at`` out of it (stale ones up to ``at``
    dropped; live earlier ones stay)."""
    taken: list[Entry] = []
    earlier: list[Entry] = []
    while heap and heap[0][0] <= at:
        entry = heapq.heappop(heap)
        if live(entry):
            (taken if entry[0] == at else earlier).append(entry)
    for entry in earlier:
        heapq.heappush(heap, entry)
    return taken


def _index(centre: CallCentre, contract: Contract) -> _Index:
    index = centre._index
    if index is None or index.contract is not contract:
        index = centre._index = _Index(contract, centre)
    return index


def _count_missed(centre: CallCentre, queue: str, change: int) -> None:
    """Keep ``centre._missed`` up to date with a call of ``queue`` made late (1) or gone while
    late (-1)."""
    counts = centre._missed
    counts[queue] = counts.get(queue, 0) + change


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
    version = contract.at(event.at)
    policy = policy_of(version)
    index = _index(centre, contract)
    terms = index.of(version)
    centre.seen[event.event_id] = event.at
    heapq.heappush(index.seen, (event.at, event.event_id))
    if event.type == ev.CALL_QUEUED:
        assert event.queue is not None  # the decoder requires it
        replaced = centre.waiting.get(event.call_id)
        if replaced is not None and replaced.late:
            _count_missed(centre, replaced.queue, -1)
        queued = centre.waiting[event.call_id] = Waiting(event.queue, event.at)
        index.queue(centre, event.call_id, queued)
        return []
    waiting = centre.waiting.pop(event.call_id, None)
    if waiting is not None:
        queue, wait = waiting.queue, max(0, event.at - waiting.since)
        if waiting.late:
            _count_missed(centre, queue, -1)
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
    midnight = index.day_start(event.at)
    day = centre.days.get((queue, midnight))
    if day is None:
        day = centre.days[queue, midnight] = Tally()
        heapq.heappush(index.days, (midnight, queue))
    day.add(booked)
    ledger.add(ledger.period(contract.zone, event.at), CALLS, booked.to_state())
    alerts = []
    for length in terms.lengths:
        start = midnight + (event.at - midnight) // length * length
        interval = centre.intervals.get((queue, length, start)) or index.open(centre, (queue, length, start))
        interval.tally.add(booked)
        if interval.closed or start + length <= now:
            continue  # a late call for an interval already judged: counted, no alert
        for objective in index.at(start).judging.get(length, ()):
            alerts += _warn(contract, centre, objective, queue, start, interval, event.at)
    return alerts


def due(contract: Contract, centre: CallCentre) -> int | None:
    """The next instant something about these calls falls due: a waiting call passing
    ``answer_within``, or an interval's end."""
    index = _index(centre, contract)
    wait, end = index.next_wait(centre), index.next_end(centre)
    if wait is None or end is None:
        return end if wait is None else wait
    return min(wait, end)


def fire(contract: Contract, centre: CallCentre, at: int, keep_ms: int) -> list[Alert]:
    """Everything due at exactly ``at``: waiting calls passing ``answer_within``, then
    intervals ending."""
    policy = policy_of(contract.at(at))
    index = _index(centre, contract)
    alerts: list[Alert] = []
    crossing = sorted((centre.waiting[call].queue, call) for call in index.crossing(centre, at))
    for queue, call in crossing:
        centre.waiting[call].late = True
        _count_missed(centre, queue, 1)
    level = policy.objectives.get(SERVICE_LEVEL)
    for queue in sorted({queue for queue, _ in crossing}):
        if level is None:
            break  # the version in force now does not measure the service level
        midnight = index.day_start(at)
        start = midnight + (at - midnight) // level.interval * level.interval
        key = (queue, level.interval, start)
        interval = centre.intervals.get(key) or index.open(centre, key)
        if not interval.closed:
            for objective in index.at(start).judging.get(level.interval, ()):
                if objective.name == SERVICE_LEVEL:
                    alerts += _warn(contract, centre, objective, queue, start, interval, at)
    ending = sorted(index.ending(centre, at))
    for queue, length, start in ending:
        interval = centre.intervals[queue, length, start]
        interval.closed = True
        heapq.heappush(index.closed, (start + length, queue, length, start))
        for objective in index.at(start).judging.get(length, ()):
            alerts += _close(contract, centre, objective, queue, start, interval)
    if ending:
        _forget(centre, index, at - KEEP_MS, at - (keep_ms or KEEP_MS))
    return alerts


def missed(centre: CallCentre, queue: str) -> int:
    """Calls waiting in ``queue`` already past ``answer_within``."""
    return centre._missed.get(queue, 0)


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


def _forget(centre: CallCentre, index: _Index, before: int, seen_before: int) -> None:
    """Drop closed intervals and roll-ups older than ``before``, event ids older than
    ``seen_before`` (the allowed lateness: anything older is rejected as late anyway), and
    calls waiting too long. Each heap is read only as far as what goes."""
    while index.closed and index.closed[0][0] < before:
        _, queue, length, start = heapq.heappop(index.closed)
        interval = centre.intervals.get((queue, length, start))
        if interval is not None and interval.closed:
            del centre.intervals[queue, length, start]
    while index.days and index.days[0][0] + 2 * DAY_MS < before:
        day, queue = heapq.heappop(index.days)
        centre.days.pop((queue, day), None)
    while index.seen and index.seen[0][0] < seen_before:
        at, event_id = heapq.heappop(index.seen)
        if centre.seen.get(event_id) == at:
            del centre.seen[event_id]
    while index.queued and index.queued[0][0] < before - FORGET_WAITING_MS:
        since, call = heapq.heappop(index.queued)
        w = centre.waiting.get(call)
        if w is not None and w.since == since:
            del centre.waiting[call]
            if w.late:
                _count_missed(centre, w.queue, -1)


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
