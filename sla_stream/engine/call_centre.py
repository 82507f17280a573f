"""What the engine keeps of one contract's calls, and the heaps it derives from that so that
no event rescans it: waiting calls passing ``answer_within``, intervals ending, and what is
old enough to forget fall due from the tops of heaps (see :class:`CallIndex`)."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, TypeVar

from sla_stream.engine.call_state import Interval, IntervalKey, Tally, Waiting
from sla_stream.engine.model import SERVICE_LEVEL, CallObjective, CallPolicy, Contract
from sla_stream.engine.time import DAY_MS, from_ms, to_ms


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
    below: int = field(default=-1, compare=False)
    """The worker's: the input offset below which every message was processed when the centre
    was last stored (see ``Ticket.below``)."""
    _index: CallIndex | None = field(default=None, init=False, repr=False, compare=False)
    """Derived from the fields above (never stored): see :class:`CallIndex`."""
    _missed: dict[str, int] = field(init=False, repr=False, compare=False)
    """Derived from ``waiting``: per queue, the calls already past ``answer_within`` (see :func:`missed`)."""

    def __post_init__(self) -> None:
        self._missed = {}
        for w in self.waiting.values():
            if w.late:
                count_missed(self, w.queue, 1)

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


class CallIndex:
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
        self.seen = deque(sorted(centre.seen, key=centre.seen.__getitem__))
        """Ids of the events seen, by time, to forget; events come mostly in time order, so a
        queue holds them (an id a piece) and a heap only those that came out of order."""
        self.seen_late: list[tuple[int, str]] = []
        heapq.heapify(self.ends)
        heapq.heapify(self.closed)
        heapq.heapify(self.days)
        self.waits: list[Wait] = []
        """Waiting calls not yet past ``answer_within`` (of a version measuring the service level)."""
        self.queued: list[Queued] = []
        """Waiting calls, to forget."""
        self.index_waiting(centre)

    def saw(self, seen: Mapping[str, int], event_id: str, at: int) -> None:
        """Index an event id just added to ``seen`` (the centre's ids with their times)."""
        order = self.seen
        if not order or seen[order[-1]] <= at:
            order.append(event_id)
        else:
            heapq.heappush(self.seen_late, (at, event_id))

    def forget_seen(self, seen: dict[str, int], before: int) -> None:
        """Drop from ``seen`` the ids of events older than ``before``."""
        order = self.seen
        while order and seen[order[0]] < before:
            del seen[order.popleft()]
        late = self.seen_late
        while late and late[0][0] < before:
            _, event_id = heapq.heappop(late)
            del seen[event_id]

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
        """:func:`~sla_stream.engine.calls.day_start`, cheap for instants in the day last asked for."""
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


def index_of(centre: CallCentre, contract: Contract) -> CallIndex:
    """The centre's index, for ``contract`` (built again for another contract object)."""
    index = centre._index
    if index is None or index.contract is not contract:
        index = centre._index = CallIndex(contract, centre)
    return index


def count_missed(centre: CallCentre, queue: str, change: int) -> None:
    """Keep ``centre._missed`` up to date with a call of ``queue`` made late (1) or gone while
    late (-1)."""
    counts = centre._missed
    counts[queue] = counts.get(queue, 0) + change


def missed(centre: CallCentre, queue: str) -> int:
    """Calls waiting in ``queue`` already past ``answer_within``."""
    return centre._missed.get(queue, 0)
