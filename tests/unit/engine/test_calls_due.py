"""What falls due for calls, checked against its definition over a long seeded stream of calls:
late ones, repeated ones, lost ones, queued again, across a contract change."""

from __future__ import annotations

import json
import random
from collections import Counter

from helpers import contracts_from, ms

from sla_stream.engine import calls
from sla_stream.engine.calls import CallCentre
from sla_stream.engine.events import CallEvent, Rejected
from sla_stream.engine.model import SERVICE_LEVEL, Contract
from sla_stream.engine.processor import Engine
from sla_stream.engine.time import HOUR_MS

CONTRACT = """
version: 1
id: c
timezone: Europe/Berlin
calls:
  service_level: {answer_within: 20s, target: 0.8, interval: 30m, short_abandon: 5s}
  abandon_rate: {max: 0.1, interval: 15m}
  speed_of_answer: {max: 30s, interval: 1h}
versions:
  - name: longer
    effective_from: 2026-10-25T12:00:00+01:00
    calls:
      service_level: {answer_within: 1m, interval: 15m}
  - name: unmeasured
    effective_from: 2026-10-28T06:00:00+01:00
    calls:
      service_level: null
"""


def expected_due(contract: Contract, centre: CallCentre) -> int | None:
    """The definition: the first end of an open interval, or of a wait within ``answer_within``."""
    times = [start + length for (_, length, start), i in centre.intervals.items() if not i.closed]
    for w in centre.waiting.values():
        policy = contract.at(w.since).calls
        if not w.late and policy is not None and SERVICE_LEVEL in policy.objectives:
            assert policy.answer_within is not None
            times.append(w.since + policy.answer_within)
    return min(times, default=None)


def expected_missed(centre: CallCentre, queue: str) -> int:
    return sum(1 for w in centre.waiting.values() if w.late and w.queue == queue)


def test_what_falls_due_and_the_calls_missed_follow_their_definitions(tmp_path):
    contract = contracts_from(tmp_path, c=CONTRACT)["c"]
    engine = Engine({"c": contract}, allowed_lateness=3 * 24 * HOUR_MS)
    rng = random.Random(21)
    at, queued, outcomes, most_missed = ms("2026-10-24T22:00:00Z"), [], Counter[str](), 0
    for step in range(3000):
        at += int(rng.expovariate(1 / 40_000)) + rng.choice([0] * 60 + [3 * HOUR_MS])
        kind, call, queue, wait = "queued", f"k{step}", rng.choice(["a", "b"]), None
        roll = rng.random()
        if roll < 0.45 and queued:
            kind = rng.choice(["answered", "answered", "abandoned"])
            call, queue = queued.pop(rng.randrange(len(queued))), None
        elif roll < 0.5:
            kind, wait = "answered", rng.randrange(60_000)
        elif roll < 0.53 and queued:
            call = rng.choice(queued)  # queued again
        if kind == "queued":
            queued.append(call)
        when = at - rng.choice([0] * 20 + [30_000, HOUR_MS, 26 * HOUR_MS])  # some arrive late
        event = CallEvent(f"e{step}", f"call.{kind}", "c", when, call, queue, wait)
        try:
            outcomes[engine.apply(event).outcome] += 1
            if rng.random() < 0.02:
                outcomes[engine.apply(event).outcome] += 1  # a repeat changes nothing
        except Rejected as rejected:
            outcomes[rejected.reason] += 1  # an end of a call forgotten after two days' wait
        centre = engine.centres["c"]
        assert calls.due(contract, centre) == expected_due(contract, centre)
        for q in ("a", "b"):
            assert calls.missed(centre, q) == expected_missed(centre, q)
            most_missed = max(most_missed, calls.missed(centre, q))
        if step % 100 == 0:
            loaded = CallCentre.from_state(json.loads(json.dumps(centre.to_state())))
            assert calls.due(contract, loaded) == calls.due(contract, centre)
            assert [calls.missed(loaded, q) for q in "ab"] == [calls.missed(centre, q) for q in "ab"]
    # The stream went through what is checked: repeats, calls forgotten, several calls missed at once.
    assert outcomes["duplicate"] > 0 and outcomes["invalid"] > 0 and most_missed > 1
