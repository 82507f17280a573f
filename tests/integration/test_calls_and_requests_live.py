"""Calls and requests through a real worker give the alerts ``replay --partitions`` gives.

Simulated call-centre and request traffic for the example contracts goes to
``sla.calls`` and ``sla.requests`` (with a trickle of tickets), ahead of the
wall clock so every clock moves by event time alone, as in replay."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from broker_io import input_records, produce_all, read_topic
from helpers import REPO, closing_events, ms

from sla_stream.contracts import load_dir
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.simulate import Traffic, generate

pytestmark = pytest.mark.integration

CONTRACTS = REPO / "examples" / "contracts"
START = ms("2031-03-03T08:00:00+00:00")
SPAN = 100 * 60_000
PARTITIONS = 4


def test_calls_and_requests_live_give_what_replay_gives(worker) -> None:
    contracts = load_dir(CONTRACTS)
    traffic = Traffic(rate=0.02, call_rate=1.5, request_rate=20, seed=11)
    events = []
    for at, event in generate(contracts, START, traffic):
        if at >= START + SPAN:
            break
        events.append(event)
    events += closing_events(contracts, START + SPAN + 600_000)
    expected = {
        record["alert_id"]: record
        for record in (
            orjson.loads(encode_replay_alert(a))
            for a in replay(
                contracts,
                [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)],
                allowed_lateness=300_000,
                partitions=PARTITIONS,
            )
        )
    }
    kinds = Counter((a["subject"]["kind"], a["kind"]) for a in expected.values())
    for subject in ("queue", "service"):
        for kind in ("near_breach", "breach", "recovered"):
            assert kinds[subject, kind] > 0, f"the traffic should give {subject} {kind} alerts: {kinds}"

    live = worker(CONTRACTS, partitions=PARTITIONS, max_future="3650d").start()
    produce_all(live.bootstrap, input_records(live.topics, events))
    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: len(found) >= len(expected),
        timeout=180,
        settle=5,
    )
    got = {
        a["alert_id"]: {k: v for k, v in a.items() if k != "emitted_at" and not k.startswith("_")}
        for a in alerts
    }
    assert len(alerts) == len(got), "an alert was emitted twice"
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra of {len(expected)}"
    differing = [i for i in expected if expected[i] != got[i]]
    assert not differing, (
        f"{len(differing)} alerts differ, e.g. {expected[differing[0]]} != {got[differing[0]]}"
    )
