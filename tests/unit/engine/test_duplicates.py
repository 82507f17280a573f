"""A repeated ``event_id`` (docs/reference/events.md#duplicates): for tickets and items, per
contract within the allowed lateness, whichever ticket or item the repeat names."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from helpers import Events, contracts_from, ms

from sla_stream.engine.events import TicketEvent
from sla_stream.engine.processor import DUPLICATE, OK, Engine
from sla_stream.wire.events import decode_event

ACME = """
version: 1
id: acme
timezone: UTC
tickets:
  priorities: [P1]
  objectives:
    first_response: {targets: {P1: 1h}}
"""
OTHER = ACME.replace("id: acme", "id: other")
PARCELS = """
version: 1
id: parcels
timezone: UTC
items:
  kind: shipment
  key: parcel_id
  objectives:
    delivery: {target: 2d, start: {event: shipment.picked_up}, stop: {event: shipment.delivered}}
"""
LATENESS = 5 * 60_000


@pytest.fixture
def contracts(tmp_path: Path):
    return contracts_from(tmp_path, acme=ACME, other=OTHER, parcels=PARCELS)


def created(event_id: str, ticket: str, at: str, contract: str = "acme") -> TicketEvent:
    return TicketEvent(event_id, "ticket.created", contract, ms(at), ticket, priority="P1")


def test_an_event_id_repeated_for_another_ticket_of_the_contract_is_a_duplicate(contracts):
    engine = Engine(contracts, allowed_lateness=LATENESS)
    assert engine.apply(created("e1", "T1", "2026-11-02T09:00:00Z")).outcome == OK
    # The producer sent the same event again, naming another ticket: ignored, counted.
    repeat = engine.apply(created("e1", "T2", "2026-11-02T09:01:00Z"))
    assert (repeat.outcome, repeat.alerts) == (DUPLICATE, [])
    assert ("acme", "T2") not in engine.tickets
    # The same id in another contract is another event.
    assert engine.apply(created("e1", "T2", "2026-11-02T09:01:00Z", contract="other")).outcome == OK
    # Once the first is behind the allowed lateness, its id is forgotten (anything as old is
    # rejected as late anyway): a new event that reuses it is applied.
    engine.advance(ms("2026-11-02T09:05:00.001Z"))
    assert engine.apply(created("e1", "T3", "2026-11-02T09:05:00.001Z")).outcome == OK


def test_a_state_read_back_recognises_the_repeats_an_uninterrupted_engine_does(contracts):
    store: dict = {}
    first = Engine(contracts, store, allowed_lateness=LATENESS)
    first.apply(created("e1", "T1", "2026-11-02T09:00:00Z"))
    first.apply(created("e2", "T2", "2026-11-02T09:04:00Z"))
    restored = {key: type(t).from_state(orjson.loads(orjson.dumps(t.to_state()))) for key, t in store.items()}
    second = Engine(contracts, restored, clock=first.clock, allowed_lateness=LATENESS)
    for engine in (first, second):
        assert engine.apply(created("e1", "T9", "2026-11-02T09:04:30Z")).outcome == DUPLICATE
        assert engine.apply(created("e2", "T9", "2026-11-02T09:04:30Z")).outcome == DUPLICATE
        assert ("acme", "T9") not in engine.tickets


def test_an_event_id_repeated_for_another_item_of_the_contract_is_a_duplicate(contracts):
    def event(event_id: str, type_: str, parcel: str, at: str):
        record = {
            "event_id": event_id,
            "type": type_,
            "contract_id": "parcels",
            "occurred_at": at,
            "parcel_id": parcel,
        }
        return decode_event(orjson.dumps(record), items=True)

    engine = Engine(contracts, allowed_lateness=LATENESS)
    assert engine.apply(event("s1", "shipment.picked_up", "P1", "2026-11-02T09:00:00Z")).outcome == OK
    assert engine.apply(event("s1", "shipment.delivered", "P2", "2026-11-02T09:02:00Z")).outcome == DUPLICATE
    assert ("parcels", "P2") not in engine.items


def test_without_an_allowed_lateness_repeats_are_recognised_per_ticket_only(contracts):
    engine = Engine(contracts)
    events = Events("acme")
    first = events.created("T1", "P1", "2026-11-02T09:00:00Z")
    engine.apply(first)
    assert engine.apply(first).outcome == DUPLICATE
    assert engine.apply(created(first.event_id, "T2", "2026-11-02T09:01:00Z")).outcome == OK
