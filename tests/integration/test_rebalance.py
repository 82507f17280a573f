"""Two workers in one group: when the second joins, partitions move, and every ticket still
breaches on time from the clock alone, each breach once by id, as replay says."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from broker_io import produce, produce_all, read_topic

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.runtime.topics import ensure_topics
from sla_stream.settings import load_settings

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: {id}
tickets:
  priorities: [P1]
  near_breach: [0.5]
  objectives:
    first_response: {{targets: {{P1: 15s}}}}
"""


def test_breaches_keep_firing_when_partitions_move_to_a_second_worker(worker, tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    ids = [f"r{n}" for n in range(8)]  # spread over the 4 partitions
    for contract_id in ids:
        (contracts / f"{contract_id}.yaml").write_text(CONTRACT.format(id=contract_id))
    first = worker(contracts).start()
    second = worker(contracts)
    second.env.update(
        {k: v for k, v in first.env.items() if k.startswith("SLA_STREAM_TOPIC_") or k == "SLA_STREAM_APP_ID"}
    )
    second.env["SLA_STREAM_GROUP_INSTANCE_ID"] = first.env["SLA_STREAM_GROUP_INSTANCE_ID"] + "-2"
    second.topics = first.topics

    now = int(time.time() * 1000)
    events = [
        (
            c.encode(),
            orjson.dumps(
                {
                    "event_id": f"{c}-1",
                    "type": "ticket.created",
                    "contract_id": c,
                    "occurred_at": format_ts(now, UTC),
                    "ticket_id": "T-1",
                    "priority": "P1",
                }
            ),
        )
        for c in ids
    ]
    produce(first.bootstrap, first.topics["tickets"], events)
    second.start()  # the group rebalances while every clock runs

    alerts = read_topic(
        first.bootstrap,
        first.topics["alerts"],
        until=lambda found: {a["contract_id"] for a in found if a["kind"] == "breach"} == set(ids),
        timeout=90,
        settle=3,
    )
    owned = (first.get("/readyz")[1], second.get("/readyz")[1])
    assert all(b'"ready":true' in body for body in owned), owned
    lines = [("events", n, value) for n, (_, value) in enumerate(events, 1)]
    expected = {
        orjson.loads(encode_replay_alert(a))["alert_id"]
        for a in replay(load_dir(contracts), lines, until=now + 60_000)
    }
    assert {a["alert_id"] for a in alerts} == expected
    assert len(expected) == 2 * len(ids)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_second_worker_joining_and_leaving_in_the_middle_of_a_large_drain_changes_no_alert(
    worker, tmp_path: Path, guarantee: str
) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    ids = [f"d{n}" for n in range(8)]
    for contract_id in ids:
        (contracts / f"{contract_id}.yaml").write_text(CONTRACT.format(id=contract_id))
    first = worker(contracts, processing_guarantee=guarantee)
    second = worker(contracts, processing_guarantee=guarantee)
    second.env.update(
        {k: v for k, v in first.env.items() if k.startswith("SLA_STREAM_TOPIC_") or k == "SLA_STREAM_APP_ID"}
    )
    second.env["SLA_STREAM_GROUP_INSTANCE_ID"] = first.env["SLA_STREAM_GROUP_INSTANCE_ID"] + "-2"
    second.topics = first.topics

    # A backlog of 100,000 events over the three hours before now, in time order: each ticket answered
    # 5 s after it opened (no alert) or, every third, 20 s after (near-breach at 7.5 s, breach at 15 s).
    tickets = 50_000
    now = int(time.time() * 1000)
    start = now - 3 * 3_600_000
    values = []
    for n in range(tickets):
        at, contract_id = start + n * 200, ids[n % len(ids)]
        ticket = {"contract_id": contract_id, "ticket_id": f"T-{n}"}
        opened = {"event_id": f"{n}-c", "type": "ticket.created", "priority": "P1", **ticket}
        replied = {"event_id": f"{n}-r", "type": "ticket.agent_replied", **ticket}
        values.append((at, opened))
        values.append((at + (20_000 if n % 3 == 0 else 5_000), replied))
    values.sort(key=lambda timed: timed[0])
    events = [
        (event["contract_id"].encode(), orjson.dumps({**event, "occurred_at": format_ts(at, UTC)}))
        for at, event in values
    ]
    lines = [("events", n, value) for n, (_, value) in enumerate(events, 1)]
    expected = {
        orjson.loads(encode_replay_alert(a))["alert_id"]
        for a in replay(load_dir(contracts), lines, until=int(time.time() * 1000))
    }
    assert len(expected) == 2 * len(range(0, tickets, 3))

    # The backlog is in Kafka before the first worker starts (else its clock, moved on by the wall
    # time, would find every event late). A second worker joins once the first has every partition
    # and is draining, and leaves once half the alerts are out: two rebalances in the middle of
    # the drain, the first worker giving partitions up and then taking them back (under
    # exactly-once, with the transactional producers the second worker's fenced).
    asyncio.run(ensure_topics(load_settings(environ=first.env)))
    produce_all(first.bootstrap, [(first.topics["tickets"], key, value) for key, value in events])
    first.start(wait=False)
    deadline = time.monotonic() + 120
    while b"Executing _on_partitions_assigned" not in first.log.read_bytes():
        assert time.monotonic() < deadline and first.process.poll() is None, first.tail()
        time.sleep(0.1)
    second.start(wait=False)
    half = len(expected) // 2
    read_topic(first.bootstrap, first.topics["alerts"], until=lambda found: len(found) >= half, timeout=300)
    assert b"Worker ready" in second.log.read_bytes(), second.tail()
    assert second.stop() == 0, second.tail()

    alerts = read_topic(
        first.bootstrap,
        first.topics["alerts"],
        until=lambda found: {a["alert_id"] for a in found} >= expected,
        timeout=300,
        settle=3,
    )
    assert {a["alert_id"] for a in alerts} == expected
    dead = read_topic(first.bootstrap, first.topics["deadletter"], until=lambda found: False, timeout=2)
    assert dead == []
    assert b"failed part-way" not in first.log.read_bytes()
