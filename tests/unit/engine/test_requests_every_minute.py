"""Request objectives kept as running sums say what summing every window afresh says.

The engine moves each window's counts on by the minute that enters and the minutes that leave
(see ``request_state.slide``). Here a brute-force oracle sums every window from the buckets at every
minute boundary, as the contract defines it, over bursts with idle gaps and a month turn in a
+5:30 zone, and the engine's alerts must be exactly the transitions the oracle finds: same
kinds, objectives, rules and instants.
"""

from __future__ import annotations

import random

import pytest
from helpers import contracts_from, ms

from sla_stream.engine.events import RequestEvent
from sla_stream.engine.processor import Engine
from sla_stream.engine.time import MINUTE_MS

CONTRACT = """
version: 1
id: api
timezone: Asia/Kolkata
requests:
  availability: {target: 0.99, window: calendar_month}
  latency: {threshold_ms: 300, target: 0.95, window: 1h}
  burn_rate_alerts:
    - {long: 1h, short: 5m, factor: 4, severity: page}
    - {long: 6h, short: 30m, factor: 2, severity: ticket}
"""

START = ms("2026-10-31T16:00:00Z")  # the month turns in Kolkata at 18:30 UTC
RULES = ((60, 5, 4.0), (360, 30, 2.0))
TARGETS = {"availability": (0.99, 1, 0), "latency": (0.95, 3, 2)}  # target, good at, total at


def traffic(seed: int) -> list[RequestEvent]:
    """Batches in bursts with idle stretches of up to hours between them, some of them bad."""
    rng = random.Random(seed)
    events, minute, n = [], 0, 0
    while minute < 2 * 24 * 60:
        for _ in range(rng.randint(1, 40)):
            total = rng.randint(1, 200)
            good = total - (rng.randint(0, total // 3) if rng.random() < 0.2 else 0)
            slow = rng.randint(0, total // 4) if rng.random() < 0.2 else 0
            at = START + minute * MINUTE_MS + rng.randint(0, MINUTE_MS - 1)
            events.append(
                RequestEvent(f"b{n}", "request.batch", "api", at, "checkout", total, good, None, total - slow)
            )
            n += 1
            minute += 1
        minute += rng.choice((1, 7, 45, 200, 600))
    return events


def oracle(events: list[RequestEvent], end: int) -> list[tuple[str, str, str, int]]:
    """Transitions found by summing every window afresh at every minute boundary."""
    buckets: dict[int, list[int]] = {}
    for event in events:
        counts = buckets.setdefault(event.at // MINUTE_MS, [0, 0, 0, 0])
        for index, value in enumerate((event.total, event.good, event.total, event.latency_good)):
            counts[index] += value
    first = min(buckets)

    def summed(start: int, stop: int, at: int) -> int:
        return sum(buckets[m][at] for m in range(start, stop) if m in buckets)

    firing: set[tuple[str, int]] = set()
    breached: set[str] = set()
    found = []
    for minute in range(first + 1, (end - 1) // MINUTE_MS + 1):
        month = month_start(minute - 1)
        for name, (target, good_at, total_at) in TARGETS.items():
            for long, short, factor in RULES:
                rates = []
                for window in (long, short):
                    total = summed(minute - window, minute, total_at)
                    good = summed(minute - window, minute, good_at)
                    rates.append(0.0 if total == 0 else round((total - good) / total / (1 - target), 9))
                hot = rates[0] > factor and rates[1] > factor
                if hot != ((name, long) in firing):
                    (firing.add if hot else firing.remove)((name, long))
                    found.append(("near_breach" if hot else "recovered", name, f"{long}/{short}", minute))
            start = month if name == "availability" else minute - 60
            total = summed(start, minute, total_at)
            if total == 0:
                continue
            below = round(summed(start, minute, good_at) / total, 9) < target
            if below != (name in breached):
                (breached.add if below else breached.remove)(name)
                found.append(("breach" if below else "recovered", name, "", minute))
    return found


def month_start(minute: int) -> int:
    """The month turns at 2026-10-31T18:30Z in Kolkata: minutes before it are October's."""
    turn = ms("2026-10-31T18:30:00Z") // MINUTE_MS
    return ms("2026-09-30T18:30:00Z") // MINUTE_MS if minute < turn else turn


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alerts_equal_a_brute_force_evaluation_of_every_minute_boundary(tmp_path, seed):
    events = traffic(seed)
    engine = Engine(contracts_from(tmp_path, api=CONTRACT))
    alerts = []
    for event in events:
        alerts += engine.apply(event).alerts
    end = events[-1].at + 8 * 60 * MINUTE_MS
    alerts += engine.advance(end)
    got = [
        (
            a.kind,
            a.objective,
            f"{a.target_ms // MINUTE_MS}/{_minutes(a.details['short_window'])}"
            if "factor" in a.details
            else "",
            a.observed_at_ms // MINUTE_MS,
        )
        for a in alerts
    ]
    expected = oracle(events, end)
    assert len(expected) > 20  # the traffic breaches, burns and recovers, often
    assert sorted(got, key=lambda t: (t[3], t[1], t[2])) == sorted(expected, key=lambda t: (t[3], t[1], t[2]))


def _minutes(text: str) -> int:
    return int(text[:-1]) * (60 if text.endswith("h") else 1)
