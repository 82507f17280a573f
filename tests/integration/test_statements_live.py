"""Penalty statements from a real worker that is killed at the close of a period: one statement
per contract and period on the statements topic, equal to replay's, none missing and (with
exactly-once) none twice. Failures print the seed; set SLA_STREAM_CRASH_SEED to repeat."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from broker_io import input_records, produce_paced, read_topic
from helpers import closing_events, ms

from sla_stream.contracts import load_dir
from sla_stream.replay import replay
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.statements import statement_record

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: {id}
timezone: {zone}
tickets:
  priorities: [P1, P2]
  objectives:
    first_response: {{targets: {{P1: 1m, P2: 2m}}}}
    resolution:     {{targets: {{P1: 5m, P2: 10m}}}}
  compliance_target: 0.9
calls:
  service_level: {{answer_within: 20s, target: 0.8, interval: 15m, short_abandon: 5s}}
  abandon_rate: {{max: 0.05, interval: 15m}}
requests:
  availability: {{target: 0.999, window: 30d}}
  burn_rate_alerts: none
penalties:
  monthly_fee: {{amount: 999.99, currency: EUR}}
  tiers:
    - {{objective: availability,   below: 0.999, credit_percent: 10}}
    - {{objective: availability,   below: 0.99,  credit_percent: 25}}
    - {{objective: first_response, below: 0.9,   credit_percent: 7.5}}
    - {{objective: service_level,  below: 0.8,   credit_percent: 2.5}}
"""
# January ends at 23:00Z in Berlin and at 00:00Z in London and UTC; with five minutes of
# allowed lateness the periods close at 23:05Z and 00:05Z.
ZONES = {"berlin": "Europe/Berlin", "london": "Europe/London", "utc": "UTC"}
START = ms("2031-01-31T22:50:00+00:00")
END = ms("2031-02-01T00:20:00+00:00")
CLOSES = [ms("2031-01-31T23:05:00+00:00"), ms("2031-02-01T00:05:00+00:00")]
PARTITIONS = 4
LATENESS = 5 * 60_000


def make_events(contracts: dict, seed: int) -> list[dict[str, Any]]:
    traffic = Traffic(rate=0.6, seed=seed, call_rate=0.6, request_rate=0.5, incident_rate=0.05)
    events: list[dict[str, Any]] = []
    for at, event in generate(contracts, START, traffic):
        if at >= END:
            break
        assert isinstance(event, dict)
        events.append(event)
    rng = random.Random(seed)
    for _ in range(len(events) // 30):  # some arrive a little late, some across a close
        n = rng.randrange(len(events) - 60)
        events.insert(n + 60, events.pop(n))
    return events + closing_events(contracts, END + 1000)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_worker_killed_at_period_close_sends_each_statement_once(worker, tmp_path: Path, guarantee: str):
    seed = int(os.environ.get("SLA_STREAM_CRASH_SEED", random.randrange(1_000_000)))
    print(f"statements seed: {seed} (set SLA_STREAM_CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    directory = tmp_path / "contracts"
    directory.mkdir()
    for name, zone in ZONES.items():
        (directory / f"{name}.yaml").write_text(CONTRACT.format(id=name, zone=zone))
    contracts = load_dir(directory)
    events = make_events(contracts, seed)

    collected: list[Any] = []
    lines = [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    for _ in replay(
        contracts,
        lines,
        allowed_lateness=LATENESS,
        rejected=io.BytesIO(),
        partitions=PARTITIONS,
        on_statement=lambda s: collected.append(statement_record(s)),
    ):
        pass
    expected = {s["statement_id"]: s for s in collected}
    assert sorted(expected) == ["berlin/2031-01", "london/2031-01", "utc/2031-01"]
    assert any(s["credit_percent"] for s in expected.values()), "the traffic should earn some credit"

    live = worker(directory, PARTITIONS, processing_guarantee=guarantee, max_future="3650d").start()
    records = input_records(live.topics, events)
    # Kill -9 just after each close has gone in, and once in between.
    first_after = [
        next(n for n, e in enumerate(events) if ms(e["occurred_at"]) >= c + 30_000) for c in CLOSES
    ]
    cuts = sorted({*first_after, rng.randrange(first_after[0], first_after[1])})
    produced = 0
    for cut in cuts:
        produce_paced(live.bootstrap, records[produced:cut], 800)
        produced = cut
        time.sleep(rng.uniform(0.0, 2.0))
        live.kill()
        live.start(wait=rng.random() < 0.5)
    produce_paced(live.bootstrap, records[produced:], 800)
    if live.process is None or live.process.poll() is not None:
        live.start()

    found = read_topic(
        live.bootstrap,
        live.topics["penalties"],
        until=lambda got: {s["statement_id"] for s in got} >= set(expected),
        timeout=180,
        settle=5,
    )
    plain = [{k: v for k, v in s.items() if not k.startswith("_")} for s in found]
    counts = Counter(s["statement_id"] for s in plain)
    assert set(counts) == set(expected), f"seed {seed}: {sorted(counts)}\n{live.tail(40)}"
    if guarantee == "exactly_once":
        assert set(counts.values()) == {1}, f"seed {seed}: repeated {counts}"
    for statement in plain:  # any repeat (at-least-once) is the same statement again
        assert statement == expected[statement["statement_id"]], f"seed {seed}"
    # Keyed by contract, on the contract's partition number.
    assert all(s["_key"] == s["contract_id"].encode() for s in found)

    # What billing would look at: the report reads the topic and shows each statement once.
    shown = subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "report", "--from-topic", "--json"],
        env=live.env,
        capture_output=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout) == [expected[i] for i in sorted(expected)]
