"""Fuzz run against a real worker: over 10,000 malformed messages, interleaved with valid events,
on every input topic and on the tick topic.

Every bad message lands in the dead-letter topic with a reason, once, carrying its bytes; the
worker never stops and stays ready; the valid events give exactly the alerts replay gives for
the same input. ``SLA_STREAM_FUZZ_SEED=N`` repeats a run (the seed is printed).
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest
from broker_io import produce_all, read_topic
from helpers import ms
from hostile import CONTRACT, CONTRACT_ID, malformed, ticket
from prometheus_client.parser import text_string_to_metric_families

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.wire.deadletter import COPY_BYTES

pytestmark = pytest.mark.integration

MALFORMED = 10_200
TICKETS = 300


def test_a_worker_under_hostile_input_dead_letters_every_bad_message_and_alerts_as_replay(
    worker, tmp_path: Path
) -> None:
    seed = int(os.environ.get("SLA_STREAM_FUZZ_SEED") or random.randrange(10**6))
    print(f"fuzz seed {seed} (SLA_STREAM_FUZZ_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "fuzz.yaml").write_text(CONTRACT)
    live = worker(contracts).start()
    topics = live.topics
    inputs = {"ticket": topics["tickets"], "call": topics["calls"], "request": topics["requests"]}

    # The valid events happen from 30 s from now on: all of them are in Kafka before the wall clock,
    # which moves partition clocks through ticks, reaches them, so the worker sees them in time
    # order, as replay does. (Events from the past would arrive behind clocks already moved on,
    # as late events: right, but with alerts and retractions that replay cannot know of.)
    start = int(time.time() * 1000) + 30_000
    valid = _valid_events(rng, start)
    records: list[tuple[str, bytes | None, bytes | None]] = []
    bad: Counter[tuple[str, bytes | None]] = Counter()
    kinds: Counter[str] = Counter()
    per_valid = MALFORMED / len(valid)
    for event in valid:
        for _ in range(int(per_valid) + (rng.random() < per_valid % 1)):
            kind, key, value = malformed(rng)
            topic = rng.choice([*inputs.values(), topics["ticks"]]) if rng.random() < 0.02 else None
            topic = topic or rng.choice(list(inputs.values()))
            records.append((topic, key, value))
            bad[topic, None if value is None else value[:COPY_BYTES]] += 1
            kinds[kind] += 1
        records.append((inputs[event["type"].split(".")[0]], CONTRACT_ID.encode(), orjson.dumps(event)))
    assert sum(bad.values()) >= 10_000 and len(kinds) == 16, kinds
    produce_all(live.bootstrap, records)

    dead = read_topic(
        live.bootstrap,
        topics["deadletter"],
        until=lambda found: len(found) >= sum(bad.values()),
        timeout=300,
        settle=3,
    )
    assert live.process is not None and live.process.poll() is None, live.tail()
    assert Counter((d["topic"], _original(d)) for d in dead) == bad
    assert all(d["reason"] in {"invalid", "unknown_contract", "late", "too_large"} for d in dead)
    assert all(d["detail"] for d in dead)

    lines = [(t, n, v) for n, (t, _, v) in enumerate(records) if t != topics["ticks"]]
    expected = {
        orjson.loads(encode_replay_alert(a))["alert_id"]
        for a in replay(load_dir(contracts), lines, until=start + 40_000)
    }
    assert len(expected) == TICKETS // 2  # the unanswered half breach; calls and requests meet
    alerts = read_topic(
        live.bootstrap,
        topics["alerts"],
        until=lambda found: {a["alert_id"] for a in found} >= expected,
        timeout=150,
        settle=2,
    )
    assert [a["alert_id"] for a in alerts if a["alert_id"] not in expected] == []
    assert sorted(a["alert_id"] for a in alerts) == sorted(expected)

    assert live.get("/readyz")[0] == 200
    events = _events_total(live.get("/metrics")[1].decode())
    assert sum(n for (_, outcome), n in events.items() if outcome != "ok") == sum(bad.values())
    for source, topic in inputs.items():
        assert events.get((topic, "ok"), 0) == sum(1 for e in valid if e["type"].startswith(source))
    assert "Traceback" not in live.this_run(), live.tail()


def _valid_events(rng: random.Random, start: int) -> list[dict[str, Any]]:
    """Tickets created in the 15 s from ``start``, half answered in time (the other half breach
    20 s after creation), and calls and requests that meet their targets; in time order."""
    events = []
    for n in range(TICKETS):
        at = start + rng.randrange(15_000)
        events.append(ticket("ticket.created", _at(at), event_id=f"c{n}", ticket_id=f"T{n}", priority="P1"))
        if n % 2:
            reply = at + rng.randrange(1_000, 19_000)
            events.append(ticket("ticket.agent_replied", _at(reply), event_id=f"r{n}", ticket_id=f"T{n}"))
    for n in range(100):
        at = start + rng.randrange(15_000)
        events.append(ticket("call.queued", _at(at), event_id=f"q{n}", call_id=f"C{n}", queue="support"))
        answered = ticket("call.answered", _at(at + 3_000), event_id=f"a{n}", call_id=f"C{n}")
        events.append(answered)
        events.append(
            ticket("request", _at(at), event_id=f"h{n}", service="api", latency_ms=20.0, status=200)
        )
    return sorted(events, key=lambda e: ms(e["occurred_at"]))


def _at(epoch_ms: int) -> str:
    return format_ts(epoch_ms, UTC)


def _original(record: dict[str, Any]) -> bytes | None:
    text = record["value"]
    if text is None:
        return None
    return base64.b64decode(text) if record.get("value_encoding") == "base64" else str(text).encode()


def _events_total(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "sla_events"
        for s in family.samples
        if s.name == "sla_events_total"
    }
