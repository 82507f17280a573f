"""Parcels through a real worker: item events on the items topic, a delivery clock that breaches
at its deadline with no further event, a customs hold that pauses another, live gauges of both,
and the same alerts as replay gives for the same events."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from broker_io import produce, read_topic
from prometheus_client.parser import text_string_to_metric_families

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts, to_ms
from sla_stream.replay import encode_replay_alert, replay

pytestmark = pytest.mark.integration

PARCELS = """
version: 1
id: parcels
items:
  kind: shipment
  key: parcel_id
  near_breach: [0.5]
  objectives:
    delivery:
      target_by: service_class
      targets: {express: 20s, standard: 1h}
      start: {event: shipment.picked_up}
      pause: {event: shipment.status_changed, where: {status: customs_hold}}
      stop: {event: shipment.delivered}
penalties:
  monthly_fee: {amount: 100, currency: EUR}
  compensation:
    - {objective: delivery, reason: late_delivery, amount: 5}
"""


def test_a_parcel_nobody_delivers_breaches_at_its_deadline_and_a_held_one_does_not(worker, tmp_path: Path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "parcels.yaml").write_text(PARCELS)
    live = worker(contracts, partitions=2).start()
    now = int(time.time() * 1000)
    events = [
        _event("e1", "picked_up", "P-late", now - 5_000, service_class="express"),
        _event("e2", "picked_up", "P-held", now - 5_000, service_class="express"),
        _event("e3", "status_changed", "P-held", now - 4_000, status="customs_hold"),
        _event("e4", "picked_up", "P-soon", now - 5_000, service_class="express"),
        _event("e5", "delivered", "P-soon", now - 3_000),
    ]
    produce(live.bootstrap, live.topics["items"], [(b"parcels", orjson.dumps(e)) for e in events])

    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: any(a["kind"] == "breach" for a in found),
        timeout=90,
        settle=3,
    )
    # The held parcel had used 1 s of its 20 s when the hold began; the delivered one 2 s.
    assert [(a["kind"], a["subject"]["id"]) for a in alerts] == [
        ("near_breach", "P-late"),
        ("breach", "P-late"),
    ]
    breach = alerts[-1]
    assert breach["subject"] == {"kind": "shipment", "id": "P-late"}
    assert _ms(breach["observed_at"]) == now + 15_000
    assert breach["details"] == {"service_class": "express"}
    # Fired by the worker's clock within seconds of the deadline, with no event after it.
    assert _ms(breach["emitted_at"]) - (now + 15_000) < 10_000

    text = live.get("/metrics")[1].decode()
    clocks = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sla_open_clocks" and sample.labels.get("objective") == "delivery"
    }
    assert clocks == {"breached": 1, "paused": 1}

    # Replay of the same events, to the breach's time: the same alerts, byte for byte.
    lines = [("items", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    replayed = [
        orjson.loads(encode_replay_alert(a))
        for a in replay(load_dir(contracts), lines, until=now + 15_001, allowed_lateness=300_000)
    ]
    assert replayed == [
        {k: v for k, v in a.items() if not k.startswith("_") and k != "emitted_at"} for a in alerts
    ]
    assert read_topic(live.bootstrap, live.topics["deadletter"], until=lambda found: False, timeout=1) == []


def _event(event_id: str, verb: str, parcel: str, at: int, **fields: str) -> dict[str, str]:
    return {
        "event_id": event_id,
        "type": f"shipment.{verb}",
        "contract_id": "parcels",
        "occurred_at": format_ts(at, UTC),
        "parcel_id": parcel,
        **fields,
    }


def _ms(text: str) -> int:
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
