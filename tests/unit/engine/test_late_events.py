"""Late events are applied at their own time: whatever order events arrive in (within the
allowed lateness), the alerts left standing are the ones the events in time order give."""

from __future__ import annotations

import random

import orjson
import pytest
from helpers import REPO, Events, ms

from sla_stream.contracts import load_dir
from sla_stream.engine.alerts import Alert
from sla_stream.engine.events import Rejected
from sla_stream.engine.processor import Engine
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.events import decode_event

CONTRACTS = load_dir(REPO / "examples" / "contracts")
END = ms("2026-11-30T00:00:00Z")


def standing(alerts: list[Alert]) -> set[tuple]:
    retracted = {a.details["retracts"] for a in alerts if a.kind == "retracted"}
    return {
        (a.contract_id, a.subject_id, a.objective, a.cycle, a.kind, a.fraction)
        for a in alerts
        if a.kind != "retracted" and a.alert_id not in retracted
    }


def run(events, lateness: int | None = None) -> list[Alert]:
    engine = Engine(CONTRACTS, allowed_lateness=lateness)
    out: list[Alert] = []
    for event in events:
        try:
            out += engine.apply(event).alerts
        except Rejected as exc:
            raise AssertionError(f"{exc} for {event}") from None
    return out + engine.advance(END)


@pytest.mark.parametrize("seed", range(12))
def test_out_of_order_arrival_within_the_lateness_leaves_the_alerts_of_time_order(seed: int) -> None:
    traffic = Traffic(rate=0.05, late_share=0.3, seed=seed)
    in_order = []
    for n, (_, event) in enumerate(generate(CONTRACTS, ms("2026-11-24T08:00:00Z"), traffic)):
        if n == 400:
            break
        assert isinstance(event, dict)
        in_order.append(decode_event(orjson.dumps(event)))
    rng = random.Random(seed)
    # Each event may arrive up to two minutes behind its time: sort by a jittered arrival time.
    jittered = sorted(in_order, key=lambda e: e.at + rng.randint(0, 120_000))
    # An event for a ticket not yet created is dead-lettered (docs/reference/events.md), so creations
    # keep their lead.
    arrival, created = [], set()
    creations = {e.ticket_id: e for e in in_order if e.type == "ticket.created"}
    for event in jittered:
        if event.ticket_id not in created:
            created.add(event.ticket_id)
            arrival.append(creations[event.ticket_id])
        if event.type != "ticket.created":
            arrival.append(event)
    expected = standing(run(in_order))
    assert expected, "the traffic should alert"
    assert standing(run(arrival, lateness=300_000)) == expected


def test_a_status_that_arrives_after_a_later_status_is_put_before_it():
    ev = Events("demo-fast")
    engine = Engine(CONTRACTS, allowed_lateness=300_000)
    engine.apply(ev.created("T-1", "P1", "2026-11-24T10:00:00Z"))
    engine.apply(ev.agent("T-1", "2026-11-24T10:00:05Z"))
    engine.apply(ev.status("T-1", "open", "2026-11-24T10:00:40Z"))
    engine.apply(ev.status("T-1", "pending", "2026-11-24T10:00:30Z"))  # late: it came first
    ticket = engine.tickets["demo-fast", "T-1"]
    assert ticket.status == "open" and ticket.clocks["resolution"].state == "running"
    breach = [a for a in engine.advance(ms("2026-11-24T10:05:00Z")) if a.kind == "breach"]
    # 2 minutes of resolution: 30 s before the pause, 90 s after 10:00:40
    assert [(a.objective, a.observed_at_ms) for a in breach] == [("resolution", ms("2026-11-24T10:02:10Z"))]


def test_an_event_before_the_ticket_was_created_is_rejected():
    ev = Events("demo-fast")
    engine = Engine(CONTRACTS, allowed_lateness=300_000)
    engine.apply(ev.created("T-1", "P1", "2026-11-24T10:00:00Z"))
    with pytest.raises(Rejected, match="before ticket 'T-1' was created"):
        engine.apply(ev.agent("T-1", "2026-11-24T09:59:00Z"))
