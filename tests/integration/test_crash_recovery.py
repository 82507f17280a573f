"""kill -9 (and now and then SIGTERM) the worker again and again while events stream in, some
of them out of order and some too late: the alerts and dead letters on the topics are exactly
what ``replay`` gives for the same events. Nothing missing; with exactly-once nothing twice,
with at-least-once any repeat is the same alert again (same id, same fields). Failures print
the seed; set SLA_STREAM_CRASH_SEED to run the same stops again."""

from __future__ import annotations

import io
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from broker_io import produce_paced, read_topic
from helpers import closing_events, ms

from sla_stream.contracts import load_dir
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.settings import Settings
from sla_stream.simulate import Traffic, generate
from sla_stream.simulate_io import topic_for

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: {id}
timezone: {zone}
tickets:
  priorities: [P1, P2, P3]
  near_breach: [0.5, 0.75]
  objectives:
    first_response: {{targets: {{P1: 30s, P2: 1m, P3: 2m}}}}
    next_reply:     {{targets: {{P1: 1m, P2: 2m, P3: 4m}}}}
    resolution:     {{targets: {{P1: 3m, P2: 6m, P3: 10m}}, pause_on: [pending]}}
calls:
  service_level: {{answer_within: 20s, target: 0.8, interval: 1m, short_abandon: 5s}}
  abandon_rate: {{max: 0.05, interval: 1m}}
requests:
  availability: {{target: 0.99, window: 10m}}
  latency: {{threshold_ms: 300, target: 0.95, window: 10m}}
  burn_rate_alerts: [{{long: 5m, short: 1m, factor: 2}}]
"""
# The worker keeps one event-time clock per partition; replay does the same with ``partitions``.
PARTITIONS = 4
SETTINGS = Settings()
# The worker's default allowed lateness; 200 events are about 5 s of event time here.
LATENESS = 5 * 60_000
ZONES = ["UTC", "Asia/Jakarta", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
EVENTS = int(os.environ.get("SLA_STREAM_CRASH_EVENTS", "24000"))
KILLS = int(os.environ.get("SLA_STREAM_CRASH_KILLS", "10"))
# Event time far ahead of the wall clock: partition clocks move by event time only, exactly
# as in replay, so the comparison does not depend on how fast this machine is.
START = ms("2031-03-01T08:00:00+00:00")


def make_events(contracts: dict, seed: int) -> list[tuple[str, bytes, bytes]]:
    """``(topic, key, value)``: tickets, calls and requests, as the simulator makes them."""
    records = []
    last = START
    traffic = Traffic(rate=14, late_share=0.3, seed=seed, call_rate=6, request_rate=10, incident_rate=0.15)
    for at, event in generate(contracts, START, traffic):
        assert isinstance(event, dict)
        records.append((topic_for(SETTINGS, event), event["contract_id"].encode(), orjson.dumps(event)))
        last = at
        if len(records) == EVENTS:
            break
    # Arrival out of order: a few events a few seconds late (retractions follow), a few
    # later than the allowed lateness of five minutes (dead letters, reason "late").
    rng = random.Random(seed)
    for share, delay in ((0.03, 200), (0.003, 16_000)):
        for _ in range(int(len(records) * share)):
            n = rng.randrange(len(records) - delay)
            records.insert(n + delay, records.pop(n))
    # One last event per contract and topic moves every clock to the same end time.
    for closing in closing_events(contracts, last + 1000):
        records.append((topic_for(SETTINGS, closing), closing["contract_id"].encode(), orjson.dumps(closing)))
    return records


@pytest.mark.parametrize(
    ("guarantee", "store"),
    [
        ("exactly_once", "memory://"),
        ("exactly_once", "rocksdb://"),
        ("at_least_once", "memory://"),
    ],
)
def test_kill_9_again_and_again_loses_and_repeats_nothing(
    worker, tmp_path: Path, guarantee: str, store: str
) -> None:
    seed = int(os.environ.get("SLA_STREAM_CRASH_SEED", random.randrange(1_000_000)))
    print(f"crash-recovery seed: {seed} (set SLA_STREAM_CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    contracts_dir = tmp_path / "contracts"
    contracts_dir.mkdir()
    for n, zone in enumerate(ZONES):
        (contracts_dir / f"c{n}.yaml").write_text(CONTRACT.format(id=f"c{n}", zone=zone))
    contracts = load_dir(contracts_dir)
    records = make_events(contracts, seed)

    live = worker(
        contracts_dir, PARTITIONS, processing_guarantee=guarantee, store=store, max_future="3650d"
    ).start()
    topics = {getattr(SETTINGS.topics, name): live.topics[name] for name in ("tickets", "calls", "requests")}
    records = [(topics[topic], key, value) for topic, key, value in records]
    producer = threading.Thread(target=produce_paced, args=(live.bootstrap, records, 600), daemon=True)
    producer.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.5, 4.0))
        if rng.random() < 0.2:
            _stop_gracefully(live)
        else:
            live.kill()
        live.start(wait=rng.random() < 0.5)
    producer.join(timeout=300)
    assert not producer.is_alive(), "the producer did not finish"
    live.start() if live.process is None or live.process.poll() is not None else None

    lines = [("events", n, value) for n, (_, _, value) in enumerate(records, 1)]
    rejected = io.BytesIO()
    expected = [
        orjson.loads(encode_replay_alert(a))
        for a in replay(
            load_dir(contracts_dir),
            lines,
            allowed_lateness=LATENESS,
            rejected=rejected,
            partitions=PARTITIONS,
        )
    ]
    assert any(a["kind"] == "retracted" for a in expected), "the traffic should retract something"
    kinds = {(a["subject"]["kind"], a["kind"]) for a in expected}
    assert {("queue", "breach"), ("service", "near_breach"), ("service", "breach")} <= kinds, kinds
    expected_ids = {a["alert_id"] for a in expected}
    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: {a["alert_id"] for a in found} >= expected_ids,
        timeout=240,
        settle=5,
    )
    (tmp_path / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(a, default=str) + b"\n" for a in alerts))
    got = {
        a["alert_id"]: {k: v for k, v in a.items() if not k.startswith("_") and k != "emitted_at"}
        for a in alerts
    }
    repeated = [alert_id for alert_id, n in Counter(a["alert_id"] for a in alerts).items() if n > 1]
    if guarantee == "at_least_once":
        # Repeats are allowed, and recognisable: the same alert, field for field.
        for alert in alerts:
            assert {k: v for k, v in alert.items() if not k.startswith("_") and k != "emitted_at"} == got[
                alert["alert_id"]
            ]
        repeated = []
    missing = expected_ids - set(got)
    extra = set(got) - expected_ids
    assert (len(missing), len(extra), len(repeated)) == (0, 0, 0), (
        f"seed {seed}: {len(missing)} missing, {len(extra)} extra, {len(repeated)} repeated of "
        f"{len(expected)} expected alerts\n"
        f"missing e.g. {_sample(missing, {a['alert_id']: a for a in expected})}\n"
        f"extra e.g. {_sample(extra, got)}\nrepeated e.g. {_sample(set(repeated), got)}\n"
        f"{_events_seen(live)}\n{live.tail(40)}"
    )
    assert [got[a["alert_id"]] for a in expected] == expected

    # Dead letters: the same events for the same reasons (replay names lines, the worker offsets).
    expected_dead = Counter(
        (d["reason"], d["value"]) for d in map(orjson.loads, rejected.getvalue().splitlines())
    )
    assert any(reason == "late" for reason, _ in expected_dead), "some events should come too late"
    dead = read_topic(
        live.bootstrap,
        live.topics["deadletter"],
        until=lambda found: len(found) >= sum(expected_dead.values()),
        timeout=60,
        settle=2,
    )
    got_dead = Counter((d["reason"], d["value"]) for d in dead)
    if guarantee == "at_least_once":
        got_dead = Counter(set(got_dead))
    assert got_dead == expected_dead


def _stop_gracefully(live) -> None:
    """SIGTERM: the worker finishes and commits its work and exits with status 0, also while
    it is still starting. Exceptions, both with nothing left to lose: -15 when the signal came
    before the interpreter reached sla-stream's code (nothing written yet), or once the
    shutdown has completed and the event loop has restored the default handler."""
    code = live.stop()
    run = live.this_run()
    assert code == 0 or (code == -15 and (not run.strip() or "Closing event loop" in run)), run[-3000:]


def _events_seen(live) -> str:
    return "\n".join(
        line for line in live.get("/metrics")[1].decode().splitlines() if line.startswith("sla_events")
    )


def _sample(ids: set[str], by_id: dict) -> list[tuple[str, str, str, str]]:
    return [
        (by_id[i]["kind"], by_id[i]["objective"], by_id[i]["subject"]["id"], by_id[i]["observed_at"])
        for i in sorted(ids)[:5]
    ]
