"""The benchmark's contracts and traffic: many contracts, tickets, calls and requests, seeded.

The contracts are variations of one realistic contract (ticket, call and request objectives,
penalties) over several time zones and calendars; the traffic is what ``sla-stream simulate``
makes for them, so it is the same mix a user sees in the demo, at a higher rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sla_stream.contracts import load_dir
from sla_stream.engine.model import Contract
from sla_stream.engine.time import format_ts, to_ms
from sla_stream.simulate import Traffic, generate

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Jakarta",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Lagos",
)

HEAD = """
version: 1
id: {id}
customer: {customer}
timezone: {zone}
calendars:
  business:
    weekly: {{mon-fri: ["08:00-12:00", "13:00-18:00"]}}
"""
"""A contract's first lines (a template): its id, customer and zone, and a business calendar of
weekday hours (a line after them may give that calendar holidays)."""

TICKETS = """tickets:
  priorities: [P1, P2, P3, P4]
  near_breach: [0.5, 0.75]
  objectives:
    first_response: {{calendar: {calendar}, targets: {{P1: 15m, P2: 1h, P3: 4h, P4: 1d}}}}
    next_reply:     {{calendar: {calendar}, targets: {{P1: 1h, P2: 4h, P3: 1d, P4: 2d}}}}
    resolution:     {{calendar: {calendar}, targets: {{P1: 4h, P2: 1d, P3: 3d, P4: 5d}}, pause_on: [pending]}}
  compliance_target: 0.95
"""
"""A contract's ticket objectives (a template): first response, next reply and resolution by
priority, on ``{calendar}``."""

CONTRACT = (
    HEAD
    + TICKETS
    + """calls:
  service_level: {{answer_within: 20s, target: 0.8, interval: 30m, short_abandon: 5s}}
  abandon_rate: {{max: 0.05, interval: 30m}}
  speed_of_answer: {{max: 30s, interval: 30m}}
requests:
  availability: {{target: 0.999, window: 30d}}
  latency: {{threshold_ms: 300, target: 0.99, window: 30d}}
penalties:
  monthly_fee: {{amount: 10000, currency: USD}}
  tiers:
    - {{objective: availability, below: 0.999, credit_percent: 10}}
    - {{objective: resolution, below: 0.95, credit_percent: 5}}
"""
)

# Short targets for the latency probes: a P1 reply is due a second after creation.
PROBE = """
version: 1
id: probe
timezone: UTC
tickets:
  priorities: [P1, P4]
  objectives:
    first_response: {targets: {P1: 1s, P4: 1h}}
"""


def write_contracts(directory: Path, count: int) -> dict[str, Contract]:
    """``count`` contracts (``c00``, ``c01``, …) plus the probe contract, loaded."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        text = CONTRACT.format(
            id=f"c{n:02d}",
            customer=f"Customer {n}",
            zone=ZONES[n % len(ZONES)],
            calendar="business" if n % 3 == 0 else "24x7",
        )
        (directory / f"c{n:02d}.yaml").write_text(text)
    (directory / "probe.yaml").write_text(PROBE)
    return load_dir(directory)


def traffic(seed: int, scale: float = 1.0) -> Traffic:
    """About 40 events per second of event time across 40 contracts at scale 1: tickets
    (about a third), calls and requests (singles and per-minute batches)."""
    return Traffic(
        rate=4.0 * scale,
        late_share=0.2,
        seed=seed,
        call_rate=4.0 * scale,
        request_rate=50.0,
        incident_rate=0.002,
    )


def simulated(
    contracts: dict[str, Contract], start: int, made: Traffic, count: int
) -> Iterator[dict[str, Any]]:
    """The first ``count`` events ``sla-stream simulate`` makes of ``made`` from ``start`` on (the
    probe contract and malformed messages left out)."""
    measured = {k: c for k, c in contracts.items() if k != "probe"}
    events = (event for _, event in generate(measured, start, made) if isinstance(event, dict))
    return itertools.islice(events, count)


def events(contracts: dict[str, Contract], start: int, count: int, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` events of the mixed traffic from ``start`` on (the probe contract left out)."""
    return simulated(contracts, start, traffic(seed), count)


def write_events(path: Path, contracts: dict[str, Contract], end: int, count: int, seed: int) -> None:
    """The events as JSON lines, the last of them at ``end``: a backlog that reaches the present,
    as a worker catching up on a day's traffic sees it (none of it late, none in the future)."""
    made = list(events(contracts, 0, count, seed))
    shift = end - epoch_ms(made[-1]["occurred_at"])
    for event in made:
        event["occurred_at"] = format_ts(epoch_ms(event["occurred_at"]) + shift, UTC)
    write_lines(path, made)


def write_lines(path: Path, events: Iterable[dict[str, Any]]) -> int:
    """``events`` written to ``path`` as JSON lines; how many."""
    written = 0
    with path.open("wb") as out:
        for event in events:
            out.write(orjson.dumps(event) + b"\n")
            written += 1
    return written


def epoch_ms(text: str) -> int:
    """An event's or alert's ISO 8601 time as epoch milliseconds."""
    return to_ms(datetime.fromisoformat(text))
