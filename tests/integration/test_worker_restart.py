"""A restarted worker resumes from its changelog: a clock started before the restart still breaches."""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from broker_io import produce, read_topic

from sla_stream.engine.time import format_ts

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: restart
tickets:
  priorities: [P1]
  near_breach: [0.5]
  objectives:
    first_response: {targets: {P1: 12s}}
"""


def test_a_clock_started_before_a_restart_breaches_after_it(worker, tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "restart.yaml").write_text(CONTRACT)
    first = worker(contracts).start()
    created = int(time.time() * 1000)
    body = {
        "event_id": "e1",
        "type": "ticket.created",
        "contract_id": "restart",
        "occurred_at": format_ts(created, UTC),
        "ticket_id": "T-1",
        "priority": "P1",
    }
    produce(first.bootstrap, first.topics["tickets"], [(b"restart", orjson.dumps(body))])
    read_topic(first.bootstrap, first.topics["alerts"], until=lambda found: len(found) >= 1, timeout=60)
    assert first.stop() == 0  # SIGTERM: a clean stop

    second = type(first)(first.env, first.log, topics=first.topics).start()
    try:
        alerts = read_topic(
            second.bootstrap,
            second.topics["alerts"],
            until=lambda found: any(a["kind"] == "breach" for a in found),
            timeout=60,
            settle=2,
        )
    finally:
        second.stop()
    # At least once: a repeat is possible, and recognisable by its alert_id.
    distinct = {a["alert_id"]: a for a in alerts}
    assert sorted((a["kind"], a["elapsed_seconds"]) for a in distinct.values()) == [
        ("breach", 12),
        ("near_breach", 6),
    ]
    breach = next(a for a in distinct.values() if a["kind"] == "breach")
    assert breach["deadline"] == format_ts(created + 12_000, UTC)
