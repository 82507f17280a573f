"""The replay benchmark's mixes: contracts and JSON-lines events, one kind of traffic each, seeded.

``python bench/mixes.py NAME DIR [--events N] [--seed S]`` writes ``DIR/contracts/`` and
``DIR/events.jsonl`` for one mix, so it can be replayed by hand
(``sla-stream replay --contracts DIR/contracts DIR/events.jsonl``). The mixes, about 100,000
events each by default, the same bytes for the same count and seed:

- ``mix``: the bench's mixed traffic (``traffic.py``, as ``make bench`` preloads it): tickets,
  calls, single requests and per-minute batches of 40 contracts;
- ``tickets``: helpdesk tickets with several next-reply cycles each (customer replies, agent
  replies), pending and reopen status changes, priority changes, late replies and unanswered
  tickets, a few repeated deliveries; 40 contracts, three in four on business calendars with
  their country's public holidays, over eight zones;
- ``requests``: one ``request.batch`` per service and minute (100 services over 40 contracts)
  and a few single requests, with the default burn-rate rules, incidents of up to 90 minutes
  of errors, a calendar-month availability window on a third of the contracts, over a month's
  end;
- ``calls``: calls queued, answered and abandoned on two queues of 40 contracts;
- ``items``: parcels picked up, held in customs, delivered and claimed, on ten variants of
  ``examples/contracts/swiftparcel.yaml`` over their working-day calendars.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import traffic

from sla_stream.contracts import load_dir
from sla_stream.engine.model import Contract
from sla_stream.engine.time import format_ts, to_ms
from sla_stream.simulate import Traffic

REPO = Path(__file__).resolve().parent.parent
MIXES = ("mix", "tickets", "calls", "requests", "items")
"""Every mix, in report order: the bench's mix first, then one per source."""

START = to_ms(datetime(2026, 11, 2, tzinfo=UTC))
"""Where the generated traffic starts (a Monday), unless a mix says otherwise."""


@dataclass(frozen=True, slots=True)
class Mix:
    """One mix as written: where its contracts and events are, and what it is."""

    name: str
    contracts: Path
    events: Path
    count: int
    what: str


def write(name: str, directory: Path, count: int = 100_000, seed: int = 1) -> Mix:
    """Write mix ``name``'s contracts to ``directory/contracts`` and its first ``count`` events to
    ``directory/events.jsonl``; the same bytes for the same name, count and seed."""
    maker, what = _MAKERS[name]
    contracts_dir = directory / "contracts"
    events = directory / "events.jsonl"
    contracts_dir.mkdir(parents=True, exist_ok=True)
    written = maker(contracts_dir, events, count, seed)
    return Mix(name, contracts_dir, events, written, what)


# --- mix: the bench's traffic, as it was --------------------------------------------------------


def _mix(contracts_dir: Path, events: Path, count: int, seed: int) -> int:
    contracts = traffic.write_contracts(contracts_dir, 40)
    traffic.write_events(events, contracts, to_ms(datetime(2026, 11, 25, 12, tzinfo=UTC)), count, seed)
    return count


# --- tickets: next-reply cycles on business calendars -------------------------------------------

# Zones and the country whose public holidays the business calendar keeps.
TICKET_ZONES = (
    ("Europe/Berlin", "DE"),
    ("America/New_York", "US"),
    ("Asia/Jakarta", "ID"),
    ("Asia/Kolkata", "IN"),
    ("Australia/Sydney", "AU"),
    ("America/Sao_Paulo", "BR"),
    ("Europe/London", "GB"),
    ("Asia/Tokyo", "JP"),
)

# The bench's ticket objectives, on a business calendar that keeps the country's public holidays.
TICKET_CONTRACT = (
    traffic.HEAD
    + "    holidays: {{country: {country}}}\n"
    + traffic.TICKETS
    + """penalties:
  monthly_fee: {{amount: 10000, currency: USD}}
  tiers:
    - {{objective: first_response, below: 0.95, credit_percent: 5}}
    - {{objective: resolution, below: 0.90, credit_percent: 10}}
"""
)

TICKET_RATE = 0.005
"""New tickets per second of event time over all contracts (about 430 a day): 100,000 events
span about four weeks, longer than most tickets live, so every stage of a ticket is in the file."""


def _tickets(contracts_dir: Path, events: Path, count: int, seed: int) -> int:
    for n in range(40):
        zone, country = TICKET_ZONES[n % len(TICKET_ZONES)]
        text = TICKET_CONTRACT.format(
            id=f"t{n:02d}",
            customer=f"Helpdesk customer {n}",
            zone=zone,
            country=country,
            calendar="24x7" if n % 4 == 3 else "business",
        )
        (contracts_dir / f"t{n:02d}.yaml").write_text(text)
    contracts = load_dir(contracts_dir)
    rng = random.Random(f"tickets-{seed}")
    ordered = [contracts[k] for k in sorted(contracts)]

    def stories() -> Iterator[list[tuple[int, dict[str, Any]]]]:
        arrival = START
        for number in itertools.count(1):
            arrival += max(1, int(rng.expovariate(TICKET_RATE) * 1000))
            yield _ticket_story(rng.choice(ordered), arrival, f"T-{seed}-{number}", rng)

    return traffic.write_lines(events, itertools.islice(_in_time_order(stories()), count))


def _ticket_story(
    contract: Contract, at: int, ticket_id: str, rng: random.Random
) -> list[tuple[int, dict[str, Any]]]:
    """One ticket's life: created, a first reply, none to six customer/agent cycles (most of them
    pending on the customer, a few escalated), solved, now and then reopened. Agents reply after a share of
    the target in the objective's own calendar time (mostly within it, one reply in ten late);
    customers reply at any hour."""
    policy = contract.tickets
    assert policy is not None
    objectives = policy.objectives
    priority = rng.choices(policy.priorities, weights=(0.1, 0.3, 0.4, 0.2))[0]
    story: list[tuple[int, dict[str, Any]]] = []
    sequence = itertools.count(1)

    def emit(when: int, kind: str, **fields: Any) -> None:
        event = {
            "event_id": f"{contract.id}:{ticket_id}:{next(sequence)}",
            "type": kind,
            "contract_id": contract.id,
            "occurred_at": format_ts(when, contract.zone),
            "ticket_id": ticket_id,
            **fields,
        }
        story.append((when, event))
        if rng.random() < 0.005:  # a source delivering an event twice, a little later
            story.append((when + rng.randrange(1_000, 120_000), event))

    def agent_reply(since: int, objective: str) -> int:
        clock = objectives[objective]
        late = rng.random() < 0.1
        share = rng.uniform(1.05, 2.5) if late else min(0.97, rng.lognormvariate(math.log(0.35), 0.6))
        return clock.calendar.reach(since, max(60_000, int(clock.targets[priority] * share)))

    emit(at, "ticket.created", priority=priority, status="new")
    if rng.random() < 0.03:
        return story  # nobody ever answers
    now = agent_reply(at, "first_response")
    emit(now, "ticket.agent_replied")
    if rng.random() < 0.2:
        emit(now + 5_000, "ticket.status_changed", status="open")
    cycles = rng.choices((0, 1, 2, 3, 4, 5, 6), weights=(10, 20, 25, 20, 12, 8, 5))[0]
    for _ in range(cycles):
        waiting = rng.random() < 0.6  # the agent asked something: pending until the customer answers
        if waiting:
            emit(now + 30_000, "ticket.status_changed", status="pending")
        now += int(rng.lognormvariate(math.log(3 * 3_600_000), 1.0))
        emit(now, "ticket.customer_replied")
        if waiting:
            emit(now + 2_000, "ticket.status_changed", status="open")
        if rng.random() < 0.04:
            priority = rng.choice([p for p in policy.priorities if p != priority])
            emit(now + 60_000, "ticket.priority_changed", priority=priority)
        if rng.random() < 0.03:
            return story  # the customer's last word went unanswered
        now = agent_reply(now + 60_000, "next_reply")
        emit(now, "ticket.agent_replied")
    now += int(rng.uniform(0.1, 24) * 3_600_000)
    emit(now, "ticket.status_changed", status="solved")
    if rng.random() < 0.05:  # reopened by the customer
        now += int(rng.uniform(1, 72) * 3_600_000)
        emit(now, "ticket.status_changed", status="open")
        emit(now + 1_000, "ticket.customer_replied")
        now = agent_reply(now + 1_000, "next_reply")
        emit(now, "ticket.agent_replied")
        emit(now + 600_000, "ticket.status_changed", status="closed")
    return story


# --- requests: per-minute batches with the default burn-rate rules -------------------------------

REQUEST_ZONES = traffic.ZONES[:6]

REQUEST_CONTRACT = """
version: 1
id: {id}
customer: Service customer {n}
timezone: {zone}
requests:
  availability: {{target: {target}, window: {window}}}
  latency: {{threshold_ms: 300, target: 0.99, window: {latency_window}}}
penalties:
  monthly_fee: {{amount: 5000, currency: EUR}}
  tiers:
    - {{objective: availability, below: {target}, credit_percent: 10}}
"""

REQUEST_START = to_ms(datetime(2026, 11, 30, 10, tzinfo=UTC))
"""Requests start on the last day of a month: the calendar-month windows roll over mid-file."""


def _request_contracts(contracts_dir: Path) -> dict[str, Contract]:
    for n in range(40):
        text = REQUEST_CONTRACT.format(
            id=f"r{n:02d}",
            n=n,
            zone=REQUEST_ZONES[n % len(REQUEST_ZONES)],
            target="0.995" if n % 5 == 4 else "0.999",
            window="calendar_month" if n % 3 == 0 else "30d",
            latency_window="7d" if n % 4 == 1 else "30d",
        )
        (contracts_dir / f"r{n:02d}.yaml").write_text(text)
    return load_dir(contracts_dir)


def _requests(contracts_dir: Path, events: Path, count: int, seed: int) -> int:
    contracts = _request_contracts(contracts_dir)
    rng = random.Random(f"requests-{seed}")
    # One to four services per contract (100 in all), each with its own volume.
    services = [
        (contracts[k], f"svc-{s}", rng.randint(500, 20_000))
        for n, k in enumerate(sorted(contracts))
        for s in range(1 + n % 4)
    ]
    incident: dict[tuple[str, str], tuple[int, float]] = {}

    def minutes() -> Iterator[list[tuple[int, dict[str, Any]]]]:
        for number in itertools.count():
            minute = REQUEST_START + number * 60_000
            # Daytime peaks: volume follows a day's curve in UTC.
            load = 0.6 + 0.4 * math.sin(2 * math.pi * (minute % 86_400_000) / 86_400_000)
            made: list[tuple[int, dict[str, Any]]] = []
            for contract, service, volume in services:
                key = (contract.id, service)
                left, errors = incident.get(key, (0, 0.0))
                if left <= 0 and rng.random() < 0.003:
                    left, errors = rng.randint(5, 90), rng.choice((0.005, 0.01, 0.02, 0.05, 0.1))
                incident[key] = (left - 1, errors)
                hot = left > 0
                error_rate = errors if hot else 0.0002
                total = max(1, int(volume * load * rng.uniform(0.9, 1.1)))
                bad = _binomial(rng, total, error_rate)
                slow = _binomial(rng, total, 0.05 if hot else 0.002)
                stamp = f"{contract.id}-{service}-{minute // 60_000}"
                end = minute + 59_999
                made.append(
                    (
                        end,
                        {
                            "event_id": f"B-{seed}-{stamp}",
                            "type": "request.batch",
                            "contract_id": contract.id,
                            "occurred_at": format_ts(end, contract.zone),
                            "service": service,
                            "total": total,
                            "good": total - bad,
                            "latency_good": total - slow,
                        },
                    )
                )
                if rng.random() < 0.1:  # a synthetic probe's single request now and then
                    at = minute + rng.randrange(60_000)
                    failed = rng.random() < error_rate
                    made.append(
                        (
                            at,
                            {
                                "event_id": f"R-{seed}-{stamp}",
                                "type": "request",
                                "contract_id": contract.id,
                                "occurred_at": format_ts(at, contract.zone),
                                "service": service,
                                "status": 503 if failed else 200,
                                "latency_ms": round(rng.lognormvariate(4.5, 0.6), 1),
                            },
                        )
                    )
            yield made

    return traffic.write_lines(events, itertools.islice(_in_time_order(minutes()), count))


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: exact for small ``n``, normal above."""
    if n < 50:
        return sum(1 for _ in range(n) if rng.random() < p)
    return max(0, min(n, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))


# --- calls and items: sla-stream simulate's traffic ----------------------------------------------


def _calls(contracts_dir: Path, events: Path, count: int, seed: int) -> int:
    contracts = traffic.write_contracts(contracts_dir, 40)
    (contracts_dir / "probe.yaml").unlink()
    made = traffic.simulated(contracts, START, Traffic(rate=0.0, seed=seed, call_rate=3.0), count)
    return traffic.write_lines(events, made)


ITEM_ZONES = (
    ("Europe/Berlin", "DE"),
    ("Europe/Paris", "FR"),
    ("Europe/Madrid", "ES"),
    ("Europe/Warsaw", "PL"),
    ("Europe/Rome", "IT"),
)


def _items(contracts_dir: Path, events: Path, count: int, seed: int) -> int:
    text = (REPO / "examples" / "contracts" / "swiftparcel.yaml").read_text()
    for n in range(10):
        zone, country = ITEM_ZONES[n % len(ITEM_ZONES)]
        variant = (
            text.replace("id: swiftparcel-eu", f"id: parcels-{n:02d}")
            .replace("timezone: Europe/Berlin", f"timezone: {zone}")
            .replace("country: DE", f"country: {country}")
        )
        (contracts_dir / f"parcels-{n:02d}.yaml").write_text(variant)
    contracts = load_dir(contracts_dir)
    made = traffic.simulated(
        contracts, START, Traffic(rate=0.0, seed=seed, item_rate=0.025, late_share=0.08), count
    )
    return traffic.write_lines(events, made)


# --- writing -------------------------------------------------------------------------------------


def _in_time_order(groups: Iterator[list[tuple[int, dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
    """The events of ``groups`` (each a list of ``(time, event)`` from its first time on, the
    groups in order of their first time, endlessly) in time order."""
    pending: list[tuple[int, int, dict[str, Any]]] = []
    order = itertools.count()
    for group in groups:
        first = min(at for at, _ in group)
        while pending and pending[0][0] <= first:
            yield heapq.heappop(pending)[2]
        for at, event in group:
            heapq.heappush(pending, (at, next(order), event))


_MAKERS: dict[str, tuple[Callable[[Path, Path, int, int], int], str]] = {
    "mix": (_mix, "the bench's mix: tickets, calls, single requests and per-minute batches, 40 contracts"),
    "tickets": (
        _tickets,
        "tickets with next-reply cycles, pending, reopens and priority changes, late replies;"
        " 40 contracts, 30 on business calendars with public holidays, 8 zones",
    ),
    "calls": (_calls, "calls queued, answered and abandoned, 2 queues of 40 contracts"),
    "requests": (
        _requests,
        "a request.batch per service and minute (100 services, 40 contracts) and a few single"
        " requests; default burn-rate rules, incidents, calendar-month windows on 14 contracts",
    ),
    "items": (_items, "parcels (pickup, customs holds, delivery, claims), 10 swiftparcel variants, 5 zones"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=MIXES)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    mix = write(args.name, args.directory, args.events, args.seed)
    print(f"{mix.name}: {mix.count:,} events in {mix.events}, contracts in {mix.contracts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
