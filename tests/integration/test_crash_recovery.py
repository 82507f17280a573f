"""kill -9 the worker again and again while events stream in: the alerts on the topic are
exactly what ``replay`` gives for the same events, nothing missing and, with exactly-once,
nothing twice. Failures print the seed; set SLA_STREAM_CRASH_SEED to run the same kills again."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from broker_io import produce_paced, read_topic
from helpers import ms

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.simulate import Traffic, generate

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
"""
ZONES = ["UTC", "Asia/Jakarta", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
EVENTS = int(os.environ.get("SLA_STREAM_CRASH_EVENTS", "24000"))
KILLS = int(os.environ.get("SLA_STREAM_CRASH_KILLS", "10"))
# Event time far ahead of the wall clock: partition clocks move by event time only, exactly
# as in replay, so the comparison does not depend on how fast this machine is.
START = ms("2031-03-01T08:00:00+00:00")


def make_events(contracts: dict, seed: int) -> list[tuple[bytes, bytes]]:
    records = []
    last = START
    for at, event in generate(contracts, START, Traffic(rate=20, late_share=0.3, seed=seed)):
        assert isinstance(event, dict)
        records.append((event["contract_id"].encode(), orjson.dumps(event)))
        last = at
        if len(records) == EVENTS:
            break
    # One last event per contract moves every partition's clock to the same end time.
    end = last + 1000
    for n, contract_id in enumerate(sorted(contracts)):
        closing = {
            "event_id": f"end-{n}",
            "type": "ticket.created",
            "contract_id": contract_id,
            "occurred_at": format_ts(end, contracts[contract_id].zone),
            "ticket_id": "END",
            "priority": "P3",
        }
        records.append((contract_id.encode(), orjson.dumps(closing)))
    return records


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill_9_again_and_again_loses_and_repeats_nothing(worker, tmp_path: Path, store: str) -> None:
    seed = int(os.environ.get("SLA_STREAM_CRASH_SEED", random.randrange(1_000_000)))
    print(f"crash-recovery seed: {seed} (set SLA_STREAM_CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    contracts_dir = tmp_path / "contracts"
    contracts_dir.mkdir()
    for n, zone in enumerate(ZONES):
        (contracts_dir / f"c{n}.yaml").write_text(CONTRACT.format(id=f"c{n}", zone=zone))
    contracts = load_dir(contracts_dir)
    records = make_events(contracts, seed)

    live = worker(contracts_dir, processing_guarantee="exactly_once", store=store, max_future="3650d").start()
    producer = threading.Thread(
        target=produce_paced, args=(live.bootstrap, live.topics["tickets"], records, 600), daemon=True
    )
    producer.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.5, 4.0))
        live.kill()
        live.start(wait=rng.random() < 0.5)
    producer.join(timeout=300)
    assert not producer.is_alive(), "the producer did not finish"
    live.start() if live.process is None or live.process.poll() is not None else None

    lines = [("events", n, value) for n, (_, value) in enumerate(records, 1)]
    expected = [orjson.loads(encode_replay_alert(a)) for a in replay(load_dir(contracts_dir), lines)]
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


def _events_seen(live) -> str:
    return "\n".join(
        line for line in live.get("/metrics")[1].decode().splitlines() if line.startswith("sla_events")
    )


def _sample(ids: set[str], by_id: dict) -> list[tuple[str, str, str, str]]:
    return [
        (by_id[i]["kind"], by_id[i]["objective"], by_id[i]["subject"]["id"], by_id[i]["observed_at"])
        for i in sorted(ids)[:5]
    ]
