"""Finished work leaves the state (docs/reference/contracts.md#retention): a closed ticket once the
allowed lateness has passed, a solved one after the contract's retention, an item once its clocks
stopped; what is left of each, a marker of its id, goes the retention after that."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import orjson
import pytest
from helpers import Events, contracts_from, ms

from sla_stream.engine.events import Rejected
from sla_stream.engine.processor import Engine
from sla_stream.engine.time import format_ts
from sla_stream.replay import ReplayStats, replay
from sla_stream.wire.events import decode_event
from sla_stream.wire.statements import statement_record

ACME = """
version: 1
id: acme
timezone: UTC
tickets:
  priorities: [P1, P2]
  objectives:
    first_response: {targets: {P1: 1h, P2: 4h}}
    resolution:     {targets: {P1: 8h, P2: 1d}}
  retention: 3d
"""

PARCELS = """
version: 1
id: parcels
timezone: UTC
items:
  kind: shipment
  key: parcel_id
  objectives:
    delivery:
      targets: {standard: 2d}
      target_by: service_class
      start: {event: shipment.picked_up}
      stop: {event: shipment.delivered}
"""

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
LATENESS = 5 * MINUTE


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(contracts_from(tmp_path, acme=ACME, parcels=PARCELS), allowed_lateness=LATENESS)


def at(moment: int) -> str:
    return format_ts(moment, UTC)


def expired(engine: Engine, event) -> str:
    with pytest.raises(Rejected) as rejected:
        engine.apply(event)
    assert rejected.value.reason == "expired", rejected.value
    return str(rejected.value)


def test_a_closed_ticket_leaves_the_state_once_the_allowed_lateness_has_passed(engine, events):
    engine.apply(events.created("T1", "P1", "2026-11-02T09:00:00Z"))
    engine.apply(events.agent("T1", "2026-11-02T09:10:00Z"))
    engine.apply(events.status("T1", "solved", "2026-11-02T10:00:00Z"))
    engine.apply(events.status("T1", "closed", "2026-11-03T10:00:00Z"))
    # It leaves at 10:05 (an event after that is expired) but is kept whole one lateness more,
    # while an event the engine accepts may still land before 10:05 (decided again from it).
    engine.advance(ms("2026-11-03T10:10:00Z"))
    assert engine.tickets[("acme", "T1")].history
    engine.advance(ms("2026-11-03T10:10:00.001Z"))
    marker = engine.tickets[("acme", "T1")]
    ids = [["e1", ms("2026-11-02T09:00:00Z")], ["e2", ms("2026-11-02T09:10:00Z")]]
    ids += [["e3", ms("2026-11-02T10:00:00Z")], ["e4", ms("2026-11-03T10:00:00Z")]]
    assert (marker.gone, marker.history, marker.clocks, marker.to_state()) == (
        ms("2026-11-03T10:05:00Z"),
        [],
        {},
        {"id": "T1", "gone": ms("2026-11-03T10:05:00Z"), "ids": ids},
    )
    assert engine.removed == 1
    # Then the marker goes, the contract's retention (3 days) and a lateness later.
    engine.advance(ms("2026-11-06T10:10:00Z"))
    assert ("acme", "T1") in engine.tickets
    engine.advance(ms("2026-11-06T10:10:00.001Z"))
    assert ("acme", "T1") not in engine.tickets


def test_a_reopen_after_the_ticket_left_is_rejected_as_expired_and_changes_nothing(engine, events):
    engine.apply(events.created("T1", "P1", "2026-11-02T09:00:00Z"))
    engine.apply(events.created("T2", "P1", "2026-11-02T09:00:00Z"))
    engine.apply(events.status("T1", "closed", "2026-11-02T10:00:00Z"))
    engine.apply(events.status("T2", "closed", "2026-11-02T10:00:00Z"))
    # Still in the state within the lateness: a reopen there reopens it.
    engine.apply(events.status("T2", "open", "2026-11-02T10:04:00Z"))
    assert engine.tickets[("acme", "T2")].status == "open"
    # A reopen from after 10:05 is expired even while the clock has not removed the ticket yet.
    # After it, the event is rejected whether the clock has moved on yet or not.
    detail = expired(engine, events.status("T1", "open", "2026-11-02T11:00:00Z"))
    assert "ticket 'T1', which was finished and has left the state" in detail
    engine.advance(ms("2026-11-02T12:00:00Z"))
    expired(engine, events.customer("T1", "2026-11-02T12:00:00Z"))
    expired(engine, events.created("T1", "P1", "2026-11-02T12:00:00Z"))
    assert engine.tickets[("acme", "T1")].gone is not None
    # A reopened ticket does not leave: its leaving was called off.
    engine.advance(ms("2026-11-09T00:00:00Z"))
    assert engine.tickets[("acme", "T2")].gone is None and engine.tickets[("acme", "T2")].clocks


def test_an_event_from_after_the_marker_is_forgotten_is_one_for_a_ticket_never_created(engine, events):
    engine.apply(events.created("T1", "P1", "2026-11-02T09:00:00Z"))
    engine.apply(events.status("T1", "closed", "2026-11-02T10:00:00Z"))
    # The marker is forgotten at 10:05 three days later (and goes a lateness after that): an
    # event from after then is for a ticket never seen, whether the marker is still there or not.
    engine.advance(ms("2026-11-05T10:06:00Z"))
    assert engine.tickets[("acme", "T1")].gone is not None
    with pytest.raises(Rejected) as rejected:
        engine.apply(events.status("T1", "open", "2026-11-05T10:06:00Z"))
    assert rejected.value.reason == "invalid" and "never created" in str(rejected.value)
    engine.advance(ms("2026-11-06T00:00:00Z"))
    assert ("acme", "T1") not in engine.tickets
    # A ticket created with that id then is a new ticket.
    engine.apply(events.created("T1", "P1", "2026-11-06T00:00:00Z"))
    assert engine.tickets[("acme", "T1")].gone is None


def test_a_clock_moved_by_ticks_changes_nothing_an_event_on_time_decides(tmp_path, events):
    # Live, ticks move the clock past a ticket's leaving; a reopen from before it that arrives
    # within the lateness is put in its place, as in replay, where no tick moved the clock.
    contracts = contracts_from(tmp_path, acme=ACME)
    closed = [events.created("T1", "P1", "2026-11-02T09:00:00Z")]
    closed.append(events.status("T1", "closed", "2026-11-02T09:10:00Z"))
    reopen = events.status("T1", "open", "2026-11-02T09:14:00Z")
    outcomes = []
    for tick in (None, ms("2026-11-02T09:15:30Z")):
        engine = Engine(contracts, allowed_lateness=LATENESS)
        for event in closed:
            engine.apply(event)
        if tick is not None:
            engine.advance(tick)
        engine.apply(reopen)
        alerts = engine.advance(ms("2026-11-02T18:00:00Z"))
        outcomes.append(([(a.objective, a.kind) for a in alerts], engine.tickets[("acme", "T1")].status))
    assert outcomes[0] == outcomes[1] == ([("resolution", "near_breach"), ("resolution", "breach")], "open")


def test_a_solved_ticket_never_closed_leaves_after_the_retention_and_can_be_reopened_until_then(
    engine, events
):
    for ticket in ("T1", "T2"):
        engine.apply(events.created(ticket, "P1", "2026-11-02T09:00:00Z"))
    for ticket in ("T1", "T2"):
        engine.apply(events.agent(ticket, "2026-11-02T09:10:00Z"))
    for ticket in ("T1", "T2"):
        engine.apply(events.status(ticket, "solved", "2026-11-02T10:00:00Z"))
    # Reopened within the retention (3 days): resolution runs on, 1h used, and breaches at 8h.
    alerts = engine.apply(events.status("T1", "open", "2026-11-05T09:00:00Z")).alerts
    alerts += engine.advance(ms("2026-11-05T17:00:00.001Z"))
    assert [(a.subject_id, a.objective, a.kind) for a in alerts] == [
        ("T1", "resolution", "near_breach"),
        ("T1", "resolution", "breach"),
    ]
    # T2 left at solved + 3 days; its reopen after that is expired.
    assert engine.tickets[("acme", "T2")].gone == ms("2026-11-05T10:00:00Z")
    expired(engine, events.status("T2", "open", "2026-11-05T17:00:00Z"))


def test_what_leaves_has_its_outcomes_booked_and_its_statement_is_the_same(tmp_path):
    contracts = contracts_from(tmp_path, acme=ACME + PENALTIES)
    ev = Events("acme")
    tickets = [
        ev.created("T1", "P1", "2026-11-02T09:00:00Z"),
        ev.created("T2", "P1", "2026-11-02T09:00:00Z"),
        ev.agent("T1", "2026-11-02T09:30:00Z"),
        ev.status("T1", "closed", "2026-11-02T11:00:00Z"),
        ev.agent("T2", "2026-11-02T11:00:00Z"),  # first response breached
        ev.status("T2", "closed", "2026-11-02T20:00:00Z"),  # resolution breached
    ]
    lines = [("events", n, orjson.dumps(_record(e))) for n, e in enumerate(tickets, 1)]
    found = []
    stats = ReplayStats()
    list(
        replay(contracts, lines, ms("2026-12-02T00:00:00Z"), LATENESS, stats=stats, on_statement=found.append)
    )
    [engine] = stats.engines
    assert all(ticket.gone is not None for ticket in engine.tickets.values() if ticket.ticket_id != "END")
    [november] = [statement_record(s) for s in found if s.period == "2026-11"]
    assert {o["objective"]: (o["met"], o["total"]) for o in november["objectives"]} == {
        "first_response": (1, 2),
        "resolution": (1, 2),
    }


def test_a_state_read_back_still_has_its_finished_tickets_leave(tmp_path, events):
    contracts = contracts_from(tmp_path, acme=ACME)
    store: dict = {}
    first = Engine(contracts, store, allowed_lateness=LATENESS)
    first_events = [events.created("T1", "P1", "2026-11-02T09:00:00Z")]
    first_events.append(events.status("T1", "closed", "2026-11-02T10:00:00Z"))
    for event in first_events:
        first.apply(event)
    # A restart: the tickets as stored (as JSON), a new engine, the clock as it was.
    restored = {key: type(t).from_state(orjson.loads(orjson.dumps(t.to_state()))) for key, t in store.items()}
    second = Engine(contracts, restored, clock=first.clock, allowed_lateness=LATENESS)
    second.advance(ms("2026-11-02T11:00:00Z"))
    assert second.tickets[("acme", "T1")].gone == ms("2026-11-02T10:05:00Z")
    # The marker recognises the ticket's own events processed again (a stop, at-least-once).
    assert second.apply(first_events[1]).outcome == "duplicate"
    marker = {k: type(t).from_state(orjson.loads(orjson.dumps(t.to_state()))) for k, t in restored.items()}
    third = Engine(contracts, marker, clock=second.clock, allowed_lateness=LATENESS)
    expired(third, events.status("T1", "open", "2026-11-02T12:00:00Z"))
    third.advance(ms("2026-11-06T00:00:00Z"))
    assert marker == {}


def test_without_an_allowed_lateness_nothing_leaves(tmp_path, events):
    engine = Engine(contracts_from(tmp_path, acme=ACME))
    engine.apply(events.created("T1", "P1", "2026-11-02T09:00:00Z"))
    engine.apply(events.status("T1", "closed", "2026-11-02T10:00:00Z"))
    engine.advance(ms("2026-12-02T00:00:00Z"))
    assert engine.tickets[("acme", "T1")].history and engine.removed == 0


def parcel(n: int, type_: str, moment: int, **fields: str):
    record = {
        "event_id": f"p{n}-{type_}",
        "type": f"shipment.{type_}",
        "contract_id": "parcels",
        "occurred_at": at(moment),
        "parcel_id": f"P{n}",
        **fields,
    }
    return decode_event(orjson.dumps(record), items=True)


def test_an_item_leaves_once_its_clocks_stopped_and_one_with_a_clock_running_stays(engine):
    start = ms("2026-11-02T09:00:00Z")
    engine.apply(parcel(1, "picked_up", start, service_class="standard"))
    engine.apply(parcel(2, "picked_up", start, service_class="standard"))
    engine.apply(parcel(1, "delivered", start + DAY))
    engine.advance(start + DAY + 2 * LATENESS + 1)
    assert engine.items[("parcels", "P1")].gone == start + DAY + LATENESS
    assert engine.items[("parcels", "P2")].clocks["delivery"].state == "running"
    with pytest.raises(Rejected) as rejected:
        engine.apply(parcel(1, "status_changed", start + 2 * DAY, status="returned"))
    assert rejected.value.reason == "expired" and "item 'P1'" in str(rejected.value)
    # Parcel 2 breaches and stays (open work) however long it goes without an event.
    engine.advance(start + 30 * DAY)
    assert engine.items[("parcels", "P2")].gone is None


def test_an_item_a_compensation_reason_could_still_flag_stays_for_the_retention(tmp_path):
    flagged = (
        PARCELS
        + """
penalties:
  monthly_fee: {amount: 1000, currency: EUR}
  compensation:
    - {reason: damaged, event: shipment.damage_reported, amount: 25}
"""
    )
    engine = Engine(contracts_from(tmp_path, parcels=flagged), allowed_lateness=LATENESS)
    start = ms("2026-11-02T09:00:00Z")
    engine.apply(parcel(1, "picked_up", start, service_class="standard"))
    engine.apply(parcel(1, "delivered", start + DAY))
    engine.apply(parcel(1, "damage_reported", start + 3 * DAY))  # reported two days after
    assert engine.items[("parcels", "P1")].outcomes["flag:damaged|0"]
    # Flagged, the item is done: it leaves once the lateness has passed after that.
    engine.advance(start + 3 * DAY + 2 * LATENESS + 1)
    assert engine.items[("parcels", "P1")].gone == start + 3 * DAY + LATENESS


def constant_rate(days: int, per_day: int) -> list[tuple[str, int, bytes]]:
    """A helpdesk at a constant rate: each ticket answered in 20 minutes, solved within hours,
    closed a day after it was solved; one in ten solved and never closed."""
    ev = Events("acme")
    timed = []
    start = ms("2026-09-01T00:00:00Z")
    for day in range(days):
        for n in range(per_day):
            opened = start + day * DAY + n * (DAY // per_day)
            ticket = f"T{day}-{n}"
            timed.append((opened, ev.created(ticket, "P2", at(opened))))
            timed.append((opened + 20 * MINUTE, ev.agent(ticket, at(opened + 20 * MINUTE))))
            solved = opened + (2 + n % 5) * HOUR
            timed.append((solved, ev.status(ticket, "solved", at(solved))))
            if n % 10:
                timed.append((solved + DAY, ev.status(ticket, "closed", at(solved + DAY))))
    timed.sort(key=lambda pair: pair[0])
    return [("events", n, orjson.dumps(_record(e))) for n, (_, e) in enumerate(timed, 1)]


def test_state_entries_track_the_open_work_not_the_age_of_the_deployment(tmp_path):
    """The same helpdesk replayed over 10 and over 60 days ends with the same state to within
    1.3 times: what is left is the open tickets and the markers of the last retention's."""
    contracts = contracts_from(tmp_path, acme=ACME)
    entries = {}
    for days in (10, 60):
        stats = ReplayStats()
        for _ in replay(contracts, constant_rate(days, 100), None, LATENESS, stats=stats):
            pass
        [engine] = stats.engines
        entries[days] = len(engine.tickets)
        live = [t for t in engine.tickets.values() if t.gone is None]
        # Nothing left is older than the retention plus a day (closed a day after solving).
        assert all(t.last_at >= engine.clock - 3 * DAY - DAY - 8 * HOUR for t in live)
    assert entries[60] <= 1.3 * entries[10], entries
    assert entries[60] < 60 * 100 / 4  # would be all 6,000 tickets if closed ones stayed


PENALTIES = """
penalties:
  monthly_fee: {amount: 1000, currency: USD}
  tiers:
    - {objective: resolution, below: 0.9, credit_percent: 5}
"""


def _record(event) -> dict:
    record = {
        "event_id": event.event_id,
        "type": event.type,
        "contract_id": event.contract_id,
        "occurred_at": at(event.at),
        "ticket_id": event.ticket_id,
    }
    if event.priority is not None:
        record["priority"] = event.priority
    if event.status is not None:
        record["status"] = event.status
    return record
