"""Realistic ticket traffic for the contracts in a directory: live to Kafka, or to a file.

Tickets arrive as a Poisson stream; agents answer after a delay drawn
around half the target, so most replies are in time and some are late;
customers reply, tickets wait on the customer (a paused state) and get
solved, a few reopen. With ``bad_share``, each new ticket comes with a malformed
message by that chance, so the dead-letter path shows up too.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sla_stream.engine.model import Contract, Match
from sla_stream.engine.time import format_ts

_PRIORITY_WEIGHTS = (0.1, 0.3, 0.4, 0.2)


@dataclass(frozen=True, slots=True)
class Traffic:
    """How much and what kind of traffic to make."""

    rate: float = 2.0
    """New tickets per second of event time, over all contracts."""
    late_share: float = 0.2
    """Share of tickets whose first reply comes after the target."""
    unanswered_share: float = 0.05
    """Share of tickets nobody ever answers."""
    bad_share: float = 0.0
    """Chance, per new ticket, of one deliberately malformed message beside it (not a share of
    all messages: calls, requests and items add none)."""
    seed: int = 1
    """Random seed; also part of every ticket id, so runs with different seeds never collide."""
    call_rate: float = 0.0
    """Calls offered per second of event time, over all contracts with call objectives."""
    request_rate: float = 0.0
    """Requests per second of event time per service of each contract with request objectives;
    most come as one ``request.batch`` a minute, a few as single ``request`` events."""
    incident_rate: float = 0.004
    """Chance per service and minute that an incident (5 to 60 minutes of 1-6% errors) starts."""
    item_rate: float = 0.0
    """New items (parcels) per second of event time, over all contracts with an ``items`` section."""
    hold_share: float = 0.15
    """Share of items whose first clock is paused for a while (a customs hold)."""
    flag_share: float = 0.02
    """Share of items an event flags for each compensation reason (a damaged parcel)."""


def generate(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any] | bytes]]:
    """``(occurred_at ms, event)`` pairs in time order, endlessly; bad messages are raw bytes.

    Tickets, calls, requests and items each draw from their own random stream, so turning
    one on leaves the traffic of the others for a seed as it was.
    """
    streams = []
    if traffic.rate > 0 and any(c.tickets is not None for c in contracts.values()):
        streams.append(_tickets(contracts, start, traffic))
    if traffic.item_rate > 0:
        streams.append(_items(contracts, start, traffic))
    if traffic.call_rate > 0:
        streams.append(_calls(contracts, start, traffic))
    if traffic.request_rate > 0:
        streams.append(_requests(contracts, start, traffic))
    if not streams:
        raise ValueError("no traffic to simulate: no contract has objectives for the rates asked for")
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda pair: pair[0])


def _tickets(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any] | bytes]]:
    rng = random.Random(traffic.seed)
    ticketed = [contracts[k] for k in sorted(contracts) if contracts[k].tickets is not None]
    if not ticketed:
        raise ValueError("no contract with ticket objectives to simulate traffic for")
    queue: list[tuple[int, int, str, dict[str, Any]]] = []
    order = itertools.count()
    ids = itertools.count(1)
    arrival = start
    while True:
        arrival += max(1, int(rng.expovariate(traffic.rate) * 1000))
        while queue and queue[0][0] <= arrival:
            at, _, _, event = heapq.heappop(queue)
            yield at, event
        contract = rng.choice(ticketed)
        for at, event in _ticket_story(contract, arrival, next(ids), rng, traffic):
            heapq.heappush(queue, (at, next(order), event["type"], event))
        if traffic.bad_share and rng.random() < traffic.bad_share:
            yield arrival, _malformed(rng, contract, arrival)


def _ticket_story(
    contract: Contract, at: int, number: int, rng: random.Random, traffic: Traffic
) -> list[tuple[int, dict[str, Any]]]:
    policy = contract.tickets
    assert policy is not None
    weights = _PRIORITY_WEIGHTS[: len(policy.priorities)] or (1.0,)
    priority = rng.choices(policy.priorities, weights=weights[: len(policy.priorities)])[0]
    ticket_id = f"T-{traffic.seed}-{number}"
    zone = contract.zone
    events: list[tuple[int, dict[str, Any]]] = []
    sequence = itertools.count(1)

    def emit(when: int, kind: str, **fields: Any) -> None:
        events.append(
            (
                when,
                {
                    "event_id": f"{contract.id}:{ticket_id}:{next(sequence)}",
                    "type": kind,
                    "contract_id": contract.id,
                    "occurred_at": format_ts(when, zone),
                    "ticket_id": ticket_id,
                    **fields,
                },
            )
        )

    emit(at, "ticket.created", priority=priority, status="new")
    if rng.random() < traffic.unanswered_share:
        return events
    first = policy.objectives.get("first_response")
    target = first.targets[priority] if first else 3_600_000
    late = rng.random() < traffic.late_share
    factor = rng.uniform(1.05, 2.0) if late else min(0.95, rng.lognormvariate(math.log(0.4), 0.5))
    now = at + int(target * factor)
    emit(now, "ticket.agent_replied")
    resolution = policy.objectives.get("resolution")
    budget = resolution.targets[priority] if resolution else 4 * target
    if rng.random() < 0.3:
        now += int(budget * rng.uniform(0.05, 0.2))
        emit(now, "ticket.status_changed", status="pending")
        now += int(budget * rng.uniform(0.05, 0.3))
        emit(now, "ticket.customer_replied")
        emit(now, "ticket.status_changed", status="open")
        now += int(target * rng.uniform(0.2, 1.2))
        emit(now, "ticket.agent_replied")
    if rng.random() < 0.05 and len(policy.priorities) > 1:
        emit(now + 1000, "ticket.priority_changed", priority=policy.priorities[0])
    now += int(budget * rng.uniform(0.2, 1.1))
    emit(now, "ticket.status_changed", status="solved")
    return events


def _items(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any] | bytes]]:
    """Items arriving as a Poisson stream, each living through its contract's clocks in turn, from
    the rules the contract names: the first clock starts on arrival, each later one (a claim) for
    some items after the one before it stopped; a few first clocks are paused for a while (a
    customs hold), some stop after the target; a few items are flagged (damaged)."""
    rng = random.Random(f"items-{traffic.seed}")
    tracked = [contracts[k] for k in sorted(contracts) if contracts[k].items is not None]
    if not tracked:
        return
    pending: list[tuple[int, int, dict[str, Any]]] = []
    order = itertools.count()
    arrival = start
    for number in itertools.count(1):
        arrival += max(1, int(rng.expovariate(traffic.item_rate) * 1000))
        while pending and pending[0][0] <= arrival:
            at, _, event = heapq.heappop(pending)
            yield at, event
        contract = rng.choice(tracked)
        for at, event in _item_story(contract, arrival, number, rng, traffic):
            heapq.heappush(pending, (at, next(order), event))


def _item_story(
    contract: Contract, at: int, number: int, rng: random.Random, traffic: Traffic
) -> list[tuple[int, dict[str, Any]]]:
    policy = contract.items
    assert policy is not None
    item_id = f"{policy.kind[:1].upper()}-{traffic.seed}-{number}"
    values = {
        o.target_by: rng.choice(sorted(o.targets))
        for o in policy.objectives.values()
        if o.target_by is not None
    }
    events: list[tuple[int, dict[str, Any]]] = []
    sequence = itertools.count(1)

    def emit(when: int, rule: Match, **fields: Any) -> None:
        chosen = {name: sorted(accepted)[0] for name, accepted in rule.where.items()}
        event = {
            "event_id": f"{contract.id}:{item_id}:{next(sequence)}",
            "type": rule.type,
            "contract_id": contract.id,
            "occurred_at": format_ts(when, contract.zone),
            policy.key: item_id,
            **chosen,
            **fields,
        }
        events.append((when, event))

    now = at
    for index, objective in enumerate(policy.objectives.values()):
        if index and rng.random() > 0.1:
            break  # most items need only the first clock (a delivery, not a claim)
        emit(now, objective.start[0], **values)
        target = objective.targets.get(values.get(objective.target_by or "", ""), 0)
        deadline = objective.calendar.reach(now, target)
        if rng.random() < traffic.unanswered_share:
            break
        late = rng.random() < traffic.late_share
        share = rng.uniform(1.05, 1.6) if late else rng.uniform(0.3, 0.95)
        end = now + int((deadline - now) * share)
        if index == 0 and objective.pause and rng.random() < traffic.hold_share:
            held = now + int((end - now) * rng.uniform(0.1, 0.6))
            emit(held, objective.pause[0])
            length = int(rng.uniform(0.1, 0.5) * (end - now))
            resume = objective.resume[0] if objective.resume else None
            if resume is not None:
                emit(held + length, resume)
            end += length
        stop = objective.stop[0]
        flags = {
            name: sorted(accepted)[0]
            for reason, rule in policy.flags.items()
            if rule.type == stop.type and rng.random() < traffic.flag_share
            for name, accepted in rule.where.items()
        }
        emit(end, stop, **flags)
        now = end + int(rng.uniform(0.5, 48) * 3_600_000)
    return events


QUEUES = ("sales", "support")
SERVICES = ("checkout", "search")


def _calls(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Calls offered as a Poisson stream: most answered after a wait around 60% of
    ``answer_within`` (some past it), some abandoned, a few reported with ``wait_seconds`` only."""
    rng = random.Random(f"calls-{traffic.seed}")
    centres = [contracts[k] for k in sorted(contracts) if contracts[k].calls is not None]
    if not centres:
        return
    pending: list[tuple[int, int, dict[str, Any]]] = []
    order = itertools.count()
    arrival = start
    for number in itertools.count(1):
        arrival += max(1, int(rng.expovariate(traffic.call_rate) * 1000))
        while pending and pending[0][0] <= arrival:
            at, _, event = heapq.heappop(pending)
            yield at, event
        contract = rng.choice(centres)
        policy = contract.calls
        assert policy is not None
        within = policy.answer_within or 20_000
        call_id, queue = f"C-{traffic.seed}-{number}", rng.choice(QUEUES)
        abandoned = rng.random() < 0.04
        wait = (
            int(rng.uniform(1_000, 2 * within)) if abandoned else int(within * rng.lognormvariate(-0.5, 0.5))
        )
        kind = "call.abandoned" if abandoned else "call.answered"
        base = {"contract_id": contract.id, "call_id": call_id}
        if rng.random() < 0.1:
            # An edge system that reports only the outcome, with the wait it measured.
            event = {
                **base,
                "event_id": f"{call_id}:2",
                "type": kind,
                "queue": queue,
                "wait_seconds": wait / 1000,
            }
        else:
            queued = {**base, "event_id": f"{call_id}:1", "type": "call.queued", "queue": queue}
            heapq.heappush(pending, (arrival, next(order), _at(queued, arrival, contract)))
            event = {**base, "event_id": f"{call_id}:2", "type": kind}
        heapq.heappush(pending, (arrival + wait, next(order), _at(event, arrival + wait, contract)))


def _requests(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each minute, per service: a few single requests and one ``request.batch`` of the rest,
    at a low error rate broken by incidents (minutes to an hour at a few percent errors)."""
    rng = random.Random(f"requests-{traffic.seed}")
    served = [contracts[k] for k in sorted(contracts) if contracts[k].requests is not None]
    if not served:
        return
    per_minute = max(1, round(traffic.request_rate * 60))
    incident: dict[tuple[str, str], int] = {}
    minute = start // 60_000 * 60_000
    while True:
        events: list[tuple[int, dict[str, Any]]] = []
        for contract in served:
            for service in SERVICES:
                key = (contract.id, service)
                if incident.get(key, 0) <= 0 and rng.random() < traffic.incident_rate:
                    incident[key] = rng.randint(5, 60)
                hot = incident.get(key, 0) > 0
                incident[key] = incident.get(key, 0) - 1
                error_rate = rng.uniform(0.01, 0.06) if hot else 0.0003
                singles = min(per_minute, 5)
                for n in range(singles):
                    at = minute + rng.randrange(60_000)
                    bad = rng.random() < error_rate
                    event = {
                        "event_id": f"R-{traffic.seed}-{contract.id}-{service}-{minute // 60_000}-{n}",
                        "type": "request",
                        "contract_id": contract.id,
                        "service": service,
                        "status": 503 if bad else 200,
                        "latency_ms": round(rng.lognormvariate(4.5, 0.6), 1),
                    }
                    events.append((at, _at(event, at, contract)))
                total = per_minute - singles
                if total:
                    good = total - _binomial(rng, total, error_rate)
                    slow = _binomial(rng, total, 0.004 if not hot else 0.03)
                    event = {
                        "event_id": f"B-{traffic.seed}-{contract.id}-{service}-{minute // 60_000}",
                        "type": "request.batch",
                        "contract_id": contract.id,
                        "service": service,
                        "total": total,
                        "good": good,
                        "latency_good": total - slow,
                    }
                    events.append((minute + 59_999, _at(event, minute + 59_999, contract)))
        events.sort(key=lambda pair: pair[0])
        yield from events
        minute += 60_000


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: exact for small ``n``, normal above."""
    if n < 50:
        return sum(1 for _ in range(n) if rng.random() < p)
    return max(0, min(n, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))


def _at(event: dict[str, Any], at: int, contract: Contract) -> dict[str, Any]:
    event["occurred_at"] = format_ts(at, contract.zone)
    return event


def _malformed(rng: random.Random, contract: Contract, at: int) -> bytes:
    choices = [
        b'{"type": "ticket.created", "event_id": "broken"',
        b'{"type": "ticket.created", "event_id": "x", "contract_id": "%s",'
        b' "occurred_at": "2026-01-01T00:00:00", "ticket_id": "T", "priority": "P1"}' % contract.id.encode(),
        b'{"type": "ticket.teleported", "event_id": "y", "contract_id": "%s", "occurred_at": "%s",'
        b' "ticket_id": "T"}' % (contract.id.encode(), format_ts(at, contract.zone).encode()),
        b"\xff\xfe not even text",
    ]
    return rng.choice(choices)
