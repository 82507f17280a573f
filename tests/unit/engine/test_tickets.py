"""Ticket clock rules (docs/reference/events.md#tickets), each test named by its rule (24x7 calendar)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from helpers import Events, contracts_from, ms

from sla_stream.engine.alerts import Alert
from sla_stream.engine.events import Rejected
from sla_stream.engine.processor import Engine
from sla_stream.engine.tickets import Ticket
from sla_stream.wire.alerts import alert_record

ACME = """
version: 1
id: acme
timezone: Asia/Jakarta
tickets:
  priorities: [P1, P2, P3]
  near_breach: [0.5, 0.75]
  objectives:
    first_response: {targets: {P1: 30m, P2: 2h, P3: 8h}}
    next_reply:     {targets: {P1: 1h, P2: 4h, P3: 1d}}
    resolution:     {targets: {P1: 4h, P2: 1d, P3: 3d}, pause_on: [pending, on_hold]}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(contracts_from(tmp_path, acme=ACME), allowed_lateness=5 * 60_000)


def run(engine: Engine, *events, until: str | None = None) -> list[Alert]:
    alerts: list[Alert] = []
    for event in events:
        alerts += engine.apply(event).alerts
    if until:
        alerts += engine.advance(ms(until))
    return alerts


def summary(alerts: list[Alert]) -> list[tuple[str, str, str, float | None, str]]:
    return [(a.subject_id, a.objective, a.kind, a.fraction, alert_record(a)["observed_at"]) for a in alerts]


def test_an_unanswered_ticket_breaches_at_its_deadline_without_any_further_event(engine, events):
    alerts = run(
        engine, events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"), until="2026-11-24T09:30:01+07:00"
    )
    assert summary(alerts) == [
        ("T-1", "first_response", "near_breach", 0.5, "2026-11-24T09:15:00+07:00"),
        ("T-1", "first_response", "near_breach", 0.75, "2026-11-24T09:22:30+07:00"),
        ("T-1", "first_response", "breach", None, "2026-11-24T09:30:00+07:00"),
    ]
    breach = alert_record(alerts[-1])
    assert breach["target_seconds"] == 1800 and breach["elapsed_seconds"] == 1800
    assert breach["deadline"] == "2026-11-24T09:30:00+07:00"
    assert breach["severity"] == "critical" and breach["subject"] == {"kind": "ticket", "id": "T-1"}


def test_a_threshold_fires_only_once_the_clock_is_past_it(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    # The clock standing exactly on the deadline has not gone past it.
    assert [a.kind for a in engine.advance(ms("2026-11-24T09:30:00+07:00"))] == ["near_breach", "near_breach"]
    assert [a.kind for a in engine.advance(ms("2026-11-24T09:30:00.001+07:00"))] == ["breach"]


def test_a_reply_exactly_at_the_deadline_meets_it(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:30:00+07:00"),
        until="2026-11-24T12:00:00+07:00",
    )
    assert [(a.objective, a.kind) for a in alerts] == [
        ("first_response", "near_breach"),
        ("first_response", "near_breach"),
        ("resolution", "near_breach"),  # 2h of 4h, resolution still runs
    ]


def test_a_reply_after_the_deadline_comes_after_the_breach(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:45:00+07:00"),
    )
    assert [a.kind for a in alerts] == ["near_breach", "near_breach", "breach"]


def test_each_clock_cycle_alerts_at_most_once_per_kind_and_fraction(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    first = engine.advance(ms("2026-11-24T10:00:00+07:00"))
    again = engine.advance(ms("2026-11-24T10:00:00+07:00")) + engine.advance(ms("2026-11-24T10:10:00+07:00"))
    assert len(first) == 3 and again == []


def test_resolution_does_not_count_while_pending(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:10:00+07:00"),
        events.status("T-1", "pending", "2026-11-24T10:00:00+07:00"),
        events.status("T-1", "open", "2026-11-24T20:00:00+07:00"),
        until="2026-11-24T23:00:00+07:00",
    )
    # 1h ran before the pause; the 4h target is reached 3h after the resume.
    assert [a for a in alerts if a.kind == "breach"] == []
    breach = engine.advance(ms("2026-11-24T23:00:00.001+07:00"))
    assert [(a.kind, alert_record(a)["observed_at"]) for a in breach] == [
        ("breach", "2026-11-24T23:00:00+07:00")
    ]
    near = [alert_record(a)["observed_at"] for a in alerts if a.objective == "resolution"]
    assert near == ["2026-11-24T21:00:00+07:00", "2026-11-24T22:00:00+07:00"]


def test_solved_stops_every_clock(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.status("T-1", "solved", "2026-11-24T09:05:00+07:00"),
        until="2026-11-30T00:00:00+07:00",
    )
    assert alerts == []


def test_a_reopened_ticket_runs_on_from_where_resolution_stopped_and_does_not_alert_again(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:05:00+07:00"),
        events.status("T-1", "solved", "2026-11-24T11:30:00+07:00"),  # 2.5h: the 50% near-breach fired
        events.status("T-1", "open", "2026-11-25T09:00:00+07:00"),
        until="2026-11-25T12:00:00+07:00",
    )
    resolution = [
        (a.kind, a.fraction, alert_record(a)["observed_at"]) for a in alerts if a.objective == "resolution"
    ]
    assert resolution == [
        ("near_breach", 0.5, "2026-11-24T11:00:00+07:00"),
        ("near_breach", 0.75, "2026-11-25T09:30:00+07:00"),
        ("breach", None, "2026-11-25T10:30:00+07:00"),
    ]


def test_raising_priority_fires_a_breach_at_once_that_replaces_the_near_breaches_it_passed(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P3", "2026-11-24T09:00:00+07:00"),
        events.priority("T-1", "P1", "2026-11-24T09:40:00+07:00"),
    )
    assert [(a.objective, a.kind, a.fraction) for a in alerts] == [("first_response", "breach", None)]
    breach = alert_record(alerts[0])
    assert breach["observed_at"] == "2026-11-24T09:40:00+07:00"
    assert breach["deadline"] == "2026-11-24T09:30:00+07:00"  # when elapsed reached the new target
    assert breach["elapsed_seconds"] == 2400 and breach["target_seconds"] == 1800
    # Nothing of the first-response clock fires again later.
    assert [a.objective for a in engine.advance(ms("2026-11-24T12:00:00+07:00"))] == ["resolution"]


def test_raising_priority_past_only_a_near_breach_fires_that_near_breach_at_once(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P3", "2026-11-24T09:00:00+07:00"),
        events.priority("T-1", "P1", "2026-11-24T09:20:00+07:00"),
    )
    assert [(a.kind, a.fraction, alert_record(a)["observed_at"]) for a in alerts] == [
        ("near_breach", 0.5, "2026-11-24T09:20:00+07:00")
    ]
    later = engine.advance(ms("2026-11-24T09:30:00.001+07:00"))
    assert [(a.kind, a.fraction) for a in later] == [("near_breach", 0.75), (("breach", None))]


def test_lowering_priority_moves_the_deadline_out(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.priority("T-1", "P2", "2026-11-24T09:10:00+07:00"),
        until="2026-11-24T11:00:00.001+07:00",
    )
    first = [
        (a.kind, a.fraction, alert_record(a)["observed_at"])
        for a in alerts
        if a.objective == "first_response"
    ]
    assert first == [
        ("near_breach", 0.5, "2026-11-24T10:00:00+07:00"),
        ("near_breach", 0.75, "2026-11-24T10:30:00+07:00"),
        ("breach", None, "2026-11-24T11:00:00+07:00"),
    ]


def test_a_customer_reply_after_the_first_response_starts_a_next_reply_cycle(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.customer("T-1", "2026-11-24T09:01:00+07:00"),  # first response still running: no cycle
        events.agent("T-1", "2026-11-24T09:05:00+07:00"),
        events.customer("T-1", "2026-11-24T09:10:00+07:00"),
        events.agent("T-1", "2026-11-24T09:20:00+07:00"),
        events.customer("T-1", "2026-11-24T09:30:00+07:00"),
        until="2026-11-24T10:30:00.001+07:00",
    )
    cycles = [
        (a.kind, a.cycle, alert_record(a)["observed_at"]) for a in alerts if a.objective == "next_reply"
    ]
    assert cycles == [
        ("near_breach", 2, "2026-11-24T10:00:00+07:00"),
        ("near_breach", 2, "2026-11-24T10:15:00+07:00"),
        ("breach", 2, "2026-11-24T10:30:00+07:00"),
    ]
    assert alerts[-1].details == {"priority": "P1", "cycle": 2}


def test_alert_ids_are_the_same_for_the_same_history_and_differ_between_cycles(tmp_path, events):
    history = [
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:05:00+07:00"),
        events.customer("T-1", "2026-11-24T09:10:00+07:00"),
        events.agent("T-1", "2026-11-24T11:00:00+07:00"),
        events.customer("T-1", "2026-11-24T11:10:00+07:00"),
    ]
    contracts = contracts_from(tmp_path, acme=ACME)
    first = run(Engine(contracts), *history, until="2026-11-25T00:00:00+07:00")
    second = run(Engine(contracts), *history, until="2026-11-25T00:00:00+07:00")
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert len({a.alert_id for a in first}) == len(first)
    assert {a.cycle for a in first if a.objective == "next_reply"} == {1, 2}


def test_a_repeated_event_id_is_a_duplicate_and_changes_nothing(engine, events):
    created = events.created("T-1", "P1", "2026-11-24T09:00:00+07:00")
    reply = events.agent("T-1", "2026-11-24T09:10:00+07:00")
    engine.apply(created)
    engine.apply(reply)
    assert engine.apply(reply).outcome == "duplicate"
    assert engine.apply(created).outcome == "duplicate"


def test_a_ticket_read_back_from_its_stored_form_still_knows_its_events_and_the_latest_time(
    tmp_path, engine, events
):
    created = events.created("T-1", "P1", "2026-11-24T09:00:00+07:00")
    reply = events.agent("T-1", "2026-11-24T09:10:00+07:00")
    run(engine, created, reply, events.customer("T-1", "2026-11-24T09:08:00+07:00"))  # late
    stored = orjson.loads(orjson.dumps(engine.tickets["acme", "T-1"].to_state()))
    again = Ticket.from_state(stored)
    assert again == engine.tickets["acme", "T-1"]
    assert again.last_at == ms("2026-11-24T09:10:00+07:00")
    contracts = contracts_from(tmp_path, acme=ACME)
    restarted = Engine(contracts, store={("acme", "T-1"): again}, clock=engine.clock)
    assert restarted.apply(reply).outcome == "duplicate"
    # Before the latest event applied: put in its place by time, the ticket decided again.
    assert restarted.apply(events.agent("T-1", "2026-11-24T09:06:00+07:00")).outcome == "ok"
    assert [event.at for event in restarted.tickets["acme", "T-1"].history] == [
        ms("2026-11-24T09:00:00+07:00"),
        ms("2026-11-24T09:06:00+07:00"),
        ms("2026-11-24T09:08:00+07:00"),
        ms("2026-11-24T09:10:00+07:00"),
    ]


def test_an_open_ticket_keeps_its_fields_in_slots_with_no_dict_of_its_own(engine, events):
    """One ticket object is kept per open ticket: a ``__dict__`` on each would add to the
    memory per open ticket."""
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    ticket = engine.tickets["acme", "T-1"]
    assert not hasattr(ticket, "__dict__") and not hasattr(ticket, "__weakref__")


@pytest.mark.parametrize(
    ("make", "reason", "detail"),
    [
        (
            lambda ev: ev.created("T-9", "P7", "2026-11-24T09:00:00+07:00"),
            "invalid",
            "priority 'P7' is not one of P1, P2, P3",
        ),
        (lambda ev: ev.agent("T-404", "2026-11-24T09:00:00+07:00"), "invalid", "never created"),
        (lambda ev: ev.created("T-1", "P1", "2026-11-24T09:00:00+07:00"), "invalid", "already created"),
        (
            lambda ev: Events("nobody").created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
            "unknown_contract",
            "'nobody'",
        ),
        (lambda ev: ev.agent("T-1", "2026-11-24T08:54:59+07:00"), "late", "more than the allowed lateness"),
    ],
    ids=[
        "undefined priority",
        "ticket never created",
        "created twice",
        "unknown contract",
        "later than allowed lateness",
    ],
)
def test_events_the_engine_cannot_apply_are_rejected_with_a_reason(engine, events, make, reason, detail):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    engine.advance(ms("2026-11-24T09:00:00+07:00"))
    with pytest.raises(Rejected) as caught:
        engine.apply(make(events))
    assert caught.value.reason == reason and detail in caught.value.detail


def test_a_late_event_within_the_allowed_lateness_is_applied_at_its_own_time(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    engine.advance(ms("2026-11-24T09:29:00+07:00"))
    engine.apply(events.agent("T-1", "2026-11-24T09:26:00+07:00"))  # 3 minutes late
    assert engine.advance(ms("2026-11-24T10:00:00+07:00")) == []


def test_a_rejected_event_does_not_swallow_the_alerts_that_came_due_before_it(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    with pytest.raises(Rejected):
        engine.apply(events.agent("T-404", "2026-11-24T10:00:00+07:00"))
    assert [a.kind for a in engine.advance(ms("2026-11-24T10:00:00+07:00"))] == [
        "near_breach",
        "near_breach",
        "breach",
    ]


def test_alert_ids_are_uuid5_of_contract_objective_subject_cycle_kind_and_fraction():
    import uuid

    from sla_stream.engine.alerts import _NAMESPACE, alert_id

    name = "\x1f".join(("acme", "first_response", "ticket", "T-1", "0", "near_breach", "0.75"))
    assert alert_id("acme", "first_response", "ticket", "T-1", 0, "near_breach", 0.75) == str(
        uuid.uuid5(_NAMESPACE, name)
    )
    assert alert_id("acme", "first_response", "ticket", "T-1", 0, "breach", None) != alert_id(
        "acme", "first_response", "ticket", "T-1", 1, "breach", None
    )


def test_raising_the_priority_of_a_paused_clock_past_its_target_breaches_at_once(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P3", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:01:00+07:00"),
        events.status("T-1", "pending", "2026-11-24T14:00:00+07:00"),  # 5h of resolution, paused
        events.priority("T-1", "P1", "2026-11-24T15:00:00+07:00"),  # 4h target: already past
    )
    resolution = [a for a in alerts if a.objective == "resolution"]
    assert [(a.kind, alert_record(a)["observed_at"], alert_record(a)["deadline"]) for a in resolution] == [
        ("breach", "2026-11-24T15:00:00+07:00", "2026-11-24T13:00:00+07:00")
    ]
    assert engine.advance(ms("2026-12-31T00:00:00+07:00")) == []  # paused, and nothing left to fire


def test_a_clock_paused_exactly_at_its_deadline_breaches_the_instant_it_runs_again(engine, events):
    alerts = run(
        engine,
        events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"),
        events.agent("T-1", "2026-11-24T09:01:00+07:00"),
        events.status("T-1", "on_hold", "2026-11-24T13:00:00+07:00"),  # exactly 4h
        events.status("T-1", "open", "2026-11-25T10:00:00+07:00"),
        until="2026-11-25T10:00:00.001+07:00",
    )
    breach = [alert_record(a) for a in alerts if a.kind == "breach"]
    assert [(b["deadline"], b["observed_at"]) for b in breach] == [
        ("2026-11-24T13:00:00+07:00", "2026-11-25T10:00:00+07:00")
    ]


def test_a_late_reply_before_the_deadline_retracts_the_breach_that_was_emitted(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    fired = engine.advance(ms("2026-11-24T09:31:00+07:00"))  # live clock passed the deadline
    breach = next(a for a in fired if a.kind == "breach")
    alerts = engine.apply(events.agent("T-1", "2026-11-24T09:29:00+07:00")).alerts  # 2 minutes late
    assert [(a.kind, a.objective, a.details.get("retracts")) for a in alerts] == [
        ("retracted", "first_response", breach.alert_id)
    ]
    record = alert_record(alerts[0])
    assert record["observed_at"] == "2026-11-24T09:29:00+07:00" and record["severity"] == "info"
    # The near-breaches observed before 09:29 stand; nothing fires again.
    assert engine.advance(ms("2026-11-24T09:40:00+07:00")) == []


def test_a_late_event_that_changes_nothing_already_emitted_retracts_nothing(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    engine.advance(ms("2026-11-24T09:31:00+07:00"))
    # A late customer reply before the first response starts no cycle and changes no alert.
    assert engine.apply(events.customer("T-1", "2026-11-24T09:28:00+07:00")).alerts == []


def test_a_breach_that_comes_back_after_a_retraction_has_a_new_id(engine, events):
    engine.apply(events.created("T-1", "P1", "2026-11-24T09:00:00+07:00"))
    engine.apply(events.agent("T-1", "2026-11-24T09:05:00+07:00"))
    first = [a for a in engine.advance(ms("2026-11-24T13:01:00+07:00")) if a.kind == "breach"]
    # Late: the ticket was on hold from 12:58 to 13:00, so resolution's 4h end at 13:02 instead.
    retracted = engine.apply(events.status("T-1", "on_hold", "2026-11-24T12:58:00+07:00")).alerts
    assert [a.details["retracts"] for a in retracted] == [first[0].alert_id]
    engine.apply(events.status("T-1", "open", "2026-11-24T13:00:00+07:00"))
    again = [a for a in engine.advance(ms("2026-11-24T13:03:00+07:00")) if a.kind == "breach"]
    assert len(again) == 1 and again[0].alert_id not in (first[0].alert_id, retracted[0].alert_id)
    assert alert_record(again[0])["observed_at"] == "2026-11-24T13:02:00+07:00"
