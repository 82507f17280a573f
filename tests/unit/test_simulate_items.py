"""Simulated parcel traffic follows the rules of the contract it is made for."""

from __future__ import annotations

import itertools

import orjson
from helpers import REPO, ms

from sla_stream.contracts import load_dir
from sla_stream.engine.processor import Engine
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.events import decode_event


def test_simulated_parcels_are_picked_up_held_and_delivered_and_all_are_accepted():
    contracts = load_dir(REPO / "examples" / "contracts")
    traffic = Traffic(rate=0, item_rate=0.05, hold_share=0.3, flag_share=0.1, seed=7)
    events = [e for _, e in itertools.islice(generate(contracts, ms("2026-11-02T00:00:00Z"), traffic), 3000)]
    assert all(isinstance(e, dict) for e in events)
    kinds = {(e["type"], e.get("status"), e.get("condition")) for e in events if isinstance(e, dict)}
    assert {
        ("shipment.picked_up", None, None),
        ("shipment.status_changed", "customs_hold", None),
        ("shipment.status_changed", "in_transit", None),
        ("shipment.delivered", None, None),
        ("shipment.delivered", None, "damaged"),
        ("shipment.claim_filed", None, None),
        ("shipment.claim_answered", None, None),
    } <= kinds
    engine = Engine(contracts, allowed_lateness=0)
    applied = [engine.apply(decode_event(orjson.dumps(e), items=True)) for e in events]
    assert {a.outcome for a in applied} == {"ok"}  # in time order, valid for the contract, no duplicates
    alerts = [alert for a in applied for alert in a.alerts] + engine.advance(ms("2026-12-31T00:00:00Z"))
    assert {a.objective for a in alerts} == {"delivery", "claim_response"}
