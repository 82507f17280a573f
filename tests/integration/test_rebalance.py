"""Two workers in one group: when the second joins, partitions move, and every ticket still
breaches on time from the clock alone, each breach once by id, as replay says."""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from broker_io import produce, read_topic

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.replay import encode_replay_alert, replay

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
