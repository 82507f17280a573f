"""What the engine keeps of one contract's service: its minute buckets, what is firing, and the
running sums of its windows, moved on minute by minute.

Every window's counts are running sums, moved on at each boundary by the minute that enters and
the minutes that leave (one running total of everything counted, and per window the total of
what has left it), so reading a window costs the same whatever its length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sla_stream.engine.model import MONTH_WINDOW, Contract, RequestPolicy
from sla_stream.engine.request_plans import Plan, Terms, terms_of
from sla_stream.engine.time import MINUTE_MS, from_ms, to_ms


@dataclass(slots=True)
class Service:
    """Everything the engine remembers of one contract's service."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    """Minute (epoch minutes) -> counts: see TOTAL, GOOD, LATENCY_TOTAL, LATENCY_GOOD."""
    firing: dict[str, int] = field(default_factory=dict)
    """``objective|long|short`` of burn-rate rules firing, with the boundary they fired at."""
    breached: dict[str, int] = field(default_factory=dict)
    """Objectives below target, with the boundary they fell at."""
    seen: dict[str, int] = field(default_factory=dict)
    """Ids of ``request.batch`` events applied, with their times (single requests are not
    kept: that would make memory grow with the request rate)."""
    evaluated: int = 0
    """The last minute boundary (ms) evaluated: each service keeps its own, so what it
    evaluates depends on its own events only, never on when the engine's clock moved."""
    latest: int | None = None
    """The latest minute with a bucket (derived)."""
    through: dict[int, int] = field(default_factory=dict)
    """Minute -> the input offset after the last message counted in its bucket, where the engine
    is told offsets (the worker): a message processed again after a stop that wrote the bucket
    but not the input position is recognised, and not counted twice (stored with the bucket)."""
    dirty: set[int] = field(default_factory=set)
    """Minutes changed or dropped since the store last wrote them (not part of the state)."""
    counted: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Counts of every minute before ``as_of`` (derived, with ``left``)."""
    left: dict[int | str, list[int]] = field(default_factory=dict)
    """Window (minutes, or ``month``) -> counts of the minutes before it, as of minute ``as_of``
    (derived): a window's counts are ``counted`` minus these (see :func:`window_sums`)."""
    as_of: int | None = None
    month_start: int = 0
    """First minute of the month the ``month`` window covers."""
    next_month: int = 0
    """First minute of the month after it."""
    summed: tuple[int | str, ...] = ()
    """The windows ``left`` holds (derived): another version's windows are summed again."""
    minutes: list[int] | None = None
    """The minutes with a bucket, in order (derived, built when first needed)."""
    due: int | None = -1
    """:func:`~sla_stream.engine.requests.next_boundary` as last worked out, ``-1`` when it must
    be worked out again (derived: a new minute, an evaluation or a late event changes it)."""
    scheduled: int | None = None
    """The boundary the engine's schedule holds for the service (derived)."""
    terms: Terms | None = field(default=None, repr=False, compare=False)
    """The terms of the contract object last measured against (derived; see :func:`terms`)."""

    def header(self) -> dict[str, Any]:
        """The state besides the buckets, which are stored one by one."""
        return {"f": self.firing, "b": self.breached, "s": self.seen, "e": self.evaluated}

    @classmethod
    def from_header(cls, header: dict[str, Any], buckets: dict[int, list[int]]) -> Service:
        return cls(
            buckets=buckets,
            firing=dict(header["f"]),
            breached=dict(header["b"]),
            seen=dict(header["s"]),
            evaluated=int(header["e"]),
        )


def terms(contract: Contract, service: Service) -> Terms:
    """The terms of ``contract``, kept by the service while it is measured against that contract
    object: a reloaded contract brings its own, and the old ones go with the last service
    holding them."""
    held = service.terms
    if held is None or held.contract is not contract:
        held = service.terms = terms_of(contract)
    return held


def window_sums(service: Service) -> dict[int | str, list[int]]:
    """Window (minutes, or ``month``) -> its counts as of the last boundary evaluated."""
    counted = service.counted
    return {window: minus(counted, left) for window, left in service.left.items()}


def minus(counted: list[int], left: list[int]) -> list[int]:
    return [counted[0] - left[0], counted[1] - left[1], counted[2] - left[2], counted[3] - left[3]]


def count_late(service: Service, minute: int, delta: list[int]) -> None:
    """Keep the sums right after ``delta`` was counted in ``minute``: a window it is before has it
    among what left the window; one it is inside changes."""
    if service.as_of is None or minute >= service.as_of:
        return  # not summed yet: the minute enters when the sums reach it
    for index, count in enumerate(delta):
        service.counted[index] += count
    for window, left in service.left.items():
        first = service.month_start if window == MONTH_WINDOW else service.as_of - int(window)
        if minute < first:
            for index, count in enumerate(delta):
                left[index] += count


def month_start_minute(contract: Contract, minute: int) -> int:
    """The first minute of the contract-local month holding ``minute`` (epoch minutes)."""
    local = from_ms(minute * MINUTE_MS, contract.zone)
    first = datetime.combine(local.date().replace(day=1), time(), contract.zone)
    return to_ms(first) // MINUTE_MS


def slide(contract: Contract, policy: RequestPolicy, plan: Plan, service: Service, minute: int) -> None:
    """Bring every window's sums to cover the minutes before ``minute``: count the minutes that
    entered since they were last brought, and for each window those that left it."""
    as_of = service.as_of
    if not plan.month:
        month, service.next_month = minute, 0
    elif service.month_start <= minute - 1 < service.next_month:
        month = service.month_start
    else:
        month = month_start_minute(contract, minute - 1)
        service.next_month = month_start_minute(contract, month + 32 * 24 * 60)
    buckets = service.buckets
    if (
        as_of is None
        or minute - as_of > 24 * 60
        or minute < as_of
        or service.summed != policy.windows  # summed for another version's windows
    ):
        counted = service.counted = _total(buckets, min(buckets, default=minute), minute)
        service.left = {}
        for window in policy.windows:
            first = month if window == MONTH_WINDOW else minute - int(window)
            service.left[window] = minus(counted, _total(buckets, first, minute))
        service.summed = policy.windows
    else:
        counted, left = service.counted, service.left
        for step in range(as_of, minute):
            entering = buckets.get(step)
            if entering is not None:
                counted[0] += entering[0]
                counted[1] += entering[1]
                counted[2] += entering[2]
                counted[3] += entering[3]
            for window in plan.minutes:
                leaving = buckets.get(step - window)
                if leaving is not None:
                    before = left[window]
                    before[0] += leaving[0]
                    before[1] += leaving[1]
                    before[2] += leaving[2]
                    before[3] += leaving[3]
        if plan.month and month != service.month_start:
            left[MONTH_WINDOW] = minus(counted, _total(buckets, month, minute))
    service.as_of, service.month_start = minute, month


def _total(buckets: dict[int, list[int]], first: int, end: int) -> list[int]:
    sums = [0, 0, 0, 0]
    if end - first < len(buckets):
        items = ((m, buckets.get(m)) for m in range(first, end))
    else:
        items = ((m, b) for m, b in buckets.items() if first <= m < end)
    for _, bucket in items:
        if bucket is not None:
            for index in range(4):
                sums[index] += bucket[index]
    return sums
