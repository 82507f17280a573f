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

Cost: what falls due is kept in heaps (see :class:`~sla_stream.engine.call_centre.CallIndex`),
so an event costs O(log n) in the waiting calls, intervals and event ids a centre keeps, plus
the objectives of the intervals it books to and the contract's versions; nothing it keeps is
rescanned. Firing costs the same per call and interval falling due, and forgetting per thing
forgotten.

What a centre keeps is :mod:`~sla_stream.engine.call_state`'s and
:mod:`~sla_stream.engine.call_centre`'s; this module books calls, judges intervals and words
the alerts.
"""

from __future__ import annotations

import heapq
from datetime import datetime, time
from typing import Any

from sla_stream.engine import events as ev
from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.call_centre import CallCentre, CallIndex, count_missed, index_of, missed
from sla_stream.engine.call_state import Interval, IntervalKey, Tally, Waiting, met
from sla_stream.engine.events import CallEvent, Rejected
from sla_stream.engine.ledger import CALLS, Ledger
from sla_stream.engine.model import SERVICE_LEVEL, SPEED_OF_ANSWER, CallObjective, CallPolicy, Contract
from sla_stream.engine.time import DAY_MS, from_ms, to_ms

__all__ = [
    "CallCentre",
    "Tally",
    "apply",
    "check",
    "day_start",
    "due",
    "fire",
    "interval_start",
    "missed",
    "policy_of",
]

#: How long closed intervals are kept (late calls within the allowed lateness still land in
#: theirs), and event ids when no allowed lateness is set.
KEEP_MS = DAY_MS
#: A call waiting longer than this is taken to have been lost by the producer and forgotten.
FORGET_WAITING_MS = DAY_MS


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
    index = index_of(centre, contract)
    terms = index.of(version)
    centre.seen[event.event_id] = event.at
    index.saw(centre.seen, event.event_id, event.at)
    if event.type == ev.CALL_QUEUED:
        assert event.queue is not None  # the decoder requires it
        replaced = centre.waiting.get(event.call_id)
        if replaced is not None and replaced.late:
            count_missed(centre, replaced.queue, -1)
        queued = centre.waiting[event.call_id] = Waiting(event.queue, event.at)
        index.queue(centre, event.call_id, queued)
        return []
    waiting = centre.waiting.pop(event.call_id, None)
    if waiting is not None:
        queue, wait = waiting.queue, max(0, event.at - waiting.since)
        if waiting.late:
            count_missed(centre, queue, -1)
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
        key = (queue, length, start)
        interval = centre.intervals.get(key) or index.open(centre, key)
        interval.tally.add(booked)
        if interval.closed or start + length <= now:
            continue  # a late call for an interval already judged: counted, no alert
        alerts += _warn(contract, centre, index, key, interval, event.at)
    return alerts


def due(contract: Contract, centre: CallCentre) -> int | None:
    """The next instant something about these calls falls due: a waiting call passing
    ``answer_within``, or an interval's end."""
    index = index_of(centre, contract)
    wait, end = index.next_wait(centre), index.next_end(centre)
    if wait is None or end is None:
        return end if wait is None else wait
    return min(wait, end)


def fire(contract: Contract, centre: CallCentre, at: int, keep_ms: int) -> list[Alert]:
    """Everything due at exactly ``at``: waiting calls passing ``answer_within``, then
    intervals ending."""
    policy = policy_of(contract.at(at))
    index = index_of(centre, contract)
    alerts: list[Alert] = []
    crossing = sorted((centre.waiting[call].queue, call) for call in index.crossing(centre, at))
    for queue, call in crossing:
        centre.waiting[call].late = True
        count_missed(centre, queue, 1)
    level = policy.objectives.get(SERVICE_LEVEL)
    for queue in sorted({queue for queue, _ in crossing}):
        if level is None:
            break  # the version in force now does not measure the service level
        midnight = index.day_start(at)
        start = midnight + (at - midnight) // level.interval * level.interval
        key = (queue, level.interval, start)
        interval = centre.intervals.get(key) or index.open(centre, key)
        if not interval.closed:
            alerts += _warn(contract, centre, index, key, interval, at, SERVICE_LEVEL)
    ending = sorted(index.ending(centre, at))
    for key in ending:
        queue, length, start = key
        interval = centre.intervals[key]
        interval.closed = True
        heapq.heappush(index.closed, (start + length, queue, length, start))
        alerts += _close(contract, centre, index, key, interval)
    if ending:
        _forget(centre, index, at - KEEP_MS, at - (keep_ms or KEEP_MS))
    return alerts


def _warn(
    contract: Contract,
    centre: CallCentre,
    index: CallIndex,
    key: IntervalKey,
    interval: Interval,
    at: int,
    only: str | None = None,
) -> list[Alert]:
    """The near-breaches at ``at`` of the objectives judging the open interval ``key`` (``only``:
    of that objective alone), each once per interval."""
    queue, length, start = key
    alerts = []
    for objective in index.at(start).judging.get(length, ()):
        if objective.name in interval.warned or (only is not None and objective.name != only):
            continue
        waiting_missed = missed(centre, queue) if objective.name == SERVICE_LEVEL else 0
        value = interval.tally.value(objective.name, waiting_missed)
        if value is None or met(objective, value):
            continue
        interval.warned.add(objective.name)
        alerts.append(
            _alert(NEAR_BREACH, contract, objective, queue, start, interval.tally, value, at, waiting_missed)
        )
    return alerts


def _close(
    contract: Contract, centre: CallCentre, index: CallIndex, key: IntervalKey, interval: Interval
) -> list[Alert]:
    """The verdicts on the interval ``key`` as it closes, by the objectives judging it: ``breach``
    outside one, ``recovered`` meeting one after an interval of the queue that did not."""
    queue, length, start = key
    alerts = []
    for objective in index.at(start).judging.get(length, ()):
        value = interval.tally.value(objective.name)
        if value is None:
            continue
        end = start + objective.interval
        breached = f"{queue}|{objective.name}"
        if not met(objective, value):
            centre.breached[breached] = start
            alerts.append(_alert(BREACH, contract, objective, queue, start, interval.tally, value, end))
        elif breached in centre.breached:
            del centre.breached[breached]
            alerts.append(_alert(RECOVERED, contract, objective, queue, start, interval.tally, value, end))
    return alerts


def _forget(centre: CallCentre, index: CallIndex, before: int, seen_before: int) -> None:
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
    index.forget_seen(centre.seen, seen_before)
    while index.queued and index.queued[0][0] < before - FORGET_WAITING_MS:
        since, call = heapq.heappop(index.queued)
        w = centre.waiting.get(call)
        if w is not None and w.since == since:
            del centre.waiting[call]
            if w.late:
                count_missed(centre, w.queue, -1)


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
