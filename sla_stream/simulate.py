"""Realistic ticket traffic for the contracts in a directory: live to Kafka, or to a file.

Tickets arrive as a Poisson stream; agents answer after a delay drawn
around half the target, so most replies are in time and some are late;
customers reply, tickets wait on the customer (a paused state) and get
solved, a few reopen. A small share of messages is malformed on purpose
(``bad_share``) so the dead-letter path shows up too.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sla_stream.engine.model import Contract
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
    """Share of messages that are deliberately malformed."""
    seed: int = 1
    """Random seed; also part of every ticket id, so runs with different seeds never collide."""


def generate(
    contracts: Mapping[str, Contract], start: int, traffic: Traffic
) -> Iterator[tuple[int, dict[str, Any] | bytes]]:
    """``(occurred_at ms, event)`` pairs in time order, endlessly; bad messages are raw bytes."""
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
