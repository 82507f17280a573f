"""The broker stops for a minute mid-stream and comes back: the worker waits, not ready meanwhile,
reconnects, and loses nothing: a ticket whose deadline passed during the outage breaches, as do
tickets created before and after it, with alert ids as replay gives them."""

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
id: outage
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {targets: {P1: 20s}}
"""


def test_the_worker_rides_out_a_broker_restart(worker, broker, tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "outage.yaml").write_text(CONTRACT)
    live = worker(contracts).start()

    def created(ticket: str, at: int) -> tuple[bytes, bytes]:
        body = {
            "event_id": ticket,
            "type": "ticket.created",
            "contract_id": "outage",
            "occurred_at": format_ts(at, UTC),
            "ticket_id": ticket,
            "priority": "P1",
        }
        return b"outage", orjson.dumps(body)

    before = created("BEFORE", int(time.time() * 1000))
    produce(live.bootstrap, live.topics["tickets"], [before])
    time.sleep(2)
    broker.stop()
    try:
        # Down for a minute: BEFORE's 20 s deadline passes meanwhile.
        outage_ends = time.monotonic() + 60
        readiness = []
        while time.monotonic() < outage_ends:
            readiness.append(live.get("/readyz")[0])
            assert live.process is not None and live.process.poll() is None, live.tail()
            time.sleep(1)
    finally:
        # The broker is the session's: whatever this test finds, the tests after it get it back.
        broker.start()
    assert readiness[0] == 200 and set(readiness[-40:]) == {503}, readiness
    after = created("AFTER", int(time.time() * 1000))
    produce(live.bootstrap, live.topics["tickets"], [after])

    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: {a["subject"]["id"] for a in found} == {"BEFORE", "AFTER"},
        timeout=120,
        settle=2,
    )
    assert live.process is not None and live.process.poll() is None, live.tail()
    ready_again = time.monotonic() + 60
    while live.get("/readyz")[0] != 200:
        assert time.monotonic() < ready_again, live.tail()
        time.sleep(0.5)
    lines = [("events", n, value) for n, (_, value) in enumerate([before, after], 1)]
    expected = replay(load_dir(contracts), lines, until=int(time.time() * 1000) + 60_000)
    assert {a["alert_id"] for a in alerts} == {
        orjson.loads(encode_replay_alert(a))["alert_id"] for a in expected
    }
