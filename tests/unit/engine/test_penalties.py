"""Penalty statements: what each period counted, tiers, credits to the cent, and settling
every period exactly once (docs/reference/statements.md)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import contracts_from, ms

from sla_stream.contracts import ContractError
from sla_stream.engine.closer import Closer
from sla_stream.engine.model import Contract
from sla_stream.engine.periods import period_of
from sla_stream.engine.processor import Engine
from sla_stream.replay import replay
from sla_stream.wire.statements import statement_record

CONTRACT = """
version: 1
id: acme
timezone: {zone}
exclusions:
  - {{start: 2026-11-30T22:00:00Z, end: 2026-12-01T02:00:00Z, reason: upgrade}}
tickets:
  priorities: [P1]
  objectives:
    first_response: {{targets: {{P1: 1h}}}}
    resolution:     {{targets: {{P1: 4h}}}}
  compliance_target: 0.9
  retention: 30d  # a solved ticket may be reopened for 30 days
calls:
  service_level: {{answer_within: 20s, target: 0.8, interval: 30m}}
  abandon_rate:  {{max: 0.05, interval: 30m}}
  speed_of_answer: {{max: 30s, interval: 30m}}
requests:
  availability: {{target: 0.999, window: 30d}}
  burn_rate_alerts: none
penalties:
  monthly_fee: {{amount: {fee}, currency: USD}}
  tiers:
    - {{objective: availability,    below: 0.999, credit_percent: 10}}
    - {{objective: availability,    below: 0.99,  credit_percent: 30}}
    - {{objective: availability,    below: 0.95,  credit_percent: 100}}
    - {{objective: resolution,      below: 0.9,   credit_percent: 5}}
    - {{objective: service_level,   below: 0.8,   credit_percent: 7.5}}
    - {{objective: abandon_rate,    above: 0.05,  credit_percent: 2.5}}
    - {{objective: speed_of_answer, above: 30s,   credit_percent: 1}}
"""

_ids = itertools.count()


def contract(tmp_path: Path, zone: str = "UTC", fee: str = "12000") -> dict[str, Contract]:
    return contracts_from(tmp_path, acme=CONTRACT.format(zone=zone, fee=fee))


def event(type_: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{next(_ids)}", "type": type_, "contract_id": "acme", "occurred_at": at, **fields}


def batch(at: str, total: int, good: int) -> dict[str, Any]:
    return event("request.batch", at, service="api", total=total, good=good)


def answered(call_id: str, at: str, wait: float) -> dict[str, Any]:
    return event("call.answered", at, call_id=call_id, queue="sales", wait_seconds=wait)


def abandoned(call_id: str, at: str, wait: float) -> dict[str, Any]:
    return event("call.abandoned", at, call_id=call_id, queue="sales", wait_seconds=wait)


def statements(
    contracts: dict[str, Contract],
    events: list[dict[str, Any]],
    until: str | None = None,
    partitions: int | None = None,
) -> list[dict[str, Any]]:
    """The statements ``replay`` settles for ``events``, as records."""
    lines = [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    found: list[dict[str, Any]] = []
    end = ms(until) if until else None
    on_statement = lambda s: found.append(statement_record(s))  # noqa: E731
    for _ in replay(contracts, lines, end, 5 * 60_000, partitions=partitions, on_statement=on_statement):
        pass
    return found


def only(found: list[dict[str, Any]], period: str) -> dict[str, Any]:
    [statement] = [s for s in found if s["statement_id"] == f"acme/{period}"]
    return statement


def objective(statement: dict[str, Any], name: str) -> dict[str, Any]:
    [entry] = [o for o in statement["objectives"] if o["objective"] == name]
    return entry


AFTER = "2026-12-02T00:00:00Z"  # November closed (end plus five minutes of lateness)


@pytest.mark.parametrize(
    ("good", "credit", "below"),
    [(999, 0, None), (998, 10, 0.999), (990, 10, 0.999), (989, 30, 0.99), (950, 30, 0.99), (949, 100, 0.95)],
)
def test_a_tier_applies_only_below_its_limit(tmp_path, good, credit, below):
    found = statements(contract(tmp_path), [batch("2026-11-10T10:00:00Z", 1000, good)], until=AFTER)
    statement = only(found, "2026-11")
    availability = objective(statement, "availability")
    assert (availability["good"], availability["total"]) == (good, 1000)
    assert availability["attained"] == good / 1000
    assert availability["credit_percent"] == credit == statement["credit_percent"]
    assert availability.get("tier", {}).get("below") == below
    assert statement["credit"] == {"amount": 12000 * credit / 100, "currency": "USD"}


def test_attained_never_shows_a_shortfall_as_met(tmp_path):
    # 999,999 of 1,000,001 is 0.99999800..., just under 0.999998: shown as 0.999997, not rounded up.
    found = statements(contract(tmp_path), [batch("2026-11-10T10:00:00Z", 1_000_001, 999_999)], until=AFTER)
    assert objective(only(found, "2026-11"), "availability")["attained"] == 0.999998
    found = statements(
        contract(tmp_path), [batch("2026-11-10T10:00:00Z", 10_000_000, 9_989_999)], until=AFTER
    )
    availability = objective(only(found, "2026-11"), "availability")
    assert availability["attained"] == 0.998999 and availability["credit_percent"] == 10


def test_credits_of_several_objectives_add_up_to_the_cent(tmp_path):
    events = [
        batch("2026-11-10T10:00:00Z", 1000, 995),  # availability 0.995: 10%
        # calls: 3 of 4 answered in time (0.75 < 0.8: 7.5%); 1 of 5 abandoned (0.2 > 0.05: 2.5%)
        answered("k1", "2026-11-10T10:00:00Z", 5),
        answered("k2", "2026-11-10T10:01:00Z", 10),
        answered("k3", "2026-11-10T10:02:00Z", 20),
        answered("k4", "2026-11-10T10:03:00Z", 45),
        abandoned("k5", "2026-11-10T10:04:00Z", 40),
    ]
    statement = only(statements(contract(tmp_path, fee="1234.56"), events, until=AFTER), "2026-11")
    assert [o["objective"] for o in statement["objectives"]] == [
        "service_level",
        "abandon_rate",
        "speed_of_answer",
        "availability",
    ]
    level, abandon, speed = (
        objective(statement, n) for n in ("service_level", "abandon_rate", "speed_of_answer")
    )
    assert (level["met"], level["total"], level["attained"], level["credit_percent"]) == (3, 5, 0.6, 7.5)
    assert (abandon["abandoned"], abandon["total"], abandon["attained"], abandon["credit_percent"]) == (
        1,
        5,
        0.2,
        2.5,
    )
    # (5 + 10 + 20 + 45) / 4 = 20 s: within 30 s, no credit
    assert (speed["total"], speed["wait_seconds"], speed["attained"], speed["credit_percent"]) == (
        4,
        80,
        20,
        0,
    )
    assert abandon["tier"] == {"above": 0.05, "credit_percent": 2.5}
    assert statement["credit_percent"] == 20
    # 20% of 1234.56 is 246.912: 246.91
    assert statement["credit"] == {"amount": 246.91, "currency": "USD"}


def test_the_amount_rounds_half_up_to_the_cent(tmp_path):
    # 7.5% of 1000.2 is 75.015: 75.02 (half up, not to even)
    events = [answered("k1", "2026-11-10T10:00:00Z", 25), answered("k2", "2026-11-10T10:00:00Z", 5)]
    statement = only(statements(contract(tmp_path, fee="1000.2"), events, until=AFTER), "2026-11")
    assert statement["credit_percent"] == 7.5
    assert statement["credit"]["amount"] == 75.02


def test_credits_are_capped_at_100_percent(tmp_path):
    events = [batch("2026-11-10T10:00:00Z", 100, 90), answered("k1", "2026-11-10T10:00:00Z", 25)]
    statement = only(statements(contract(tmp_path), events, until=AFTER), "2026-11")
    assert [o["credit_percent"] for o in statement["objectives"]] == [7.5, 0, 0, 100]
    assert statement["credit_percent"] == 100
    assert statement["credit"]["amount"] == 12000


def test_speed_of_answer_exactly_at_its_maximum_earns_nothing(tmp_path):
    events = [answered("k1", "2026-11-10T10:00:00Z", 30), answered("k2", "2026-11-10T10:05:00Z", 30.001)]
    statement = only(statements(contract(tmp_path), events[:1], until=AFTER), "2026-11")
    assert objective(statement, "speed_of_answer")["credit_percent"] == 0
    statement = only(statements(contract(tmp_path), events, until=AFTER), "2026-11")
    speed = objective(statement, "speed_of_answer")
    assert speed["attained"] == 30.0005 and speed["credit_percent"] == 1


def test_requests_inside_exclusions_do_not_count_and_excluded_time_is_reported(tmp_path):
    events = [
        batch("2026-11-30T21:59:00Z", 100, 100),
        batch("2026-11-30T22:00:00Z", 100, 0),  # inside the upgrade window: not counted
        batch("2026-12-01T01:59:00Z", 100, 0),  # inside it too, in December
        batch("2026-12-01T02:00:00Z", 10, 10),
    ]
    found = statements(contract(tmp_path), events, until="2027-01-02T00:00:00Z")
    november, december = only(found, "2026-11"), only(found, "2026-12")
    assert (objective(november, "availability")["good"], objective(november, "availability")["total"]) == (
        100,
        100,
    )
    assert (objective(december, "availability")["good"], objective(december, "availability")["total"]) == (
        10,
        10,
    )
    # The window runs 22:00 to 02:00: two hours in each month.
    assert november["excluded_seconds"] == december["excluded_seconds"] == 7200


def test_periods_follow_the_contracts_time_zone(tmp_path):
    # Jakarta is UTC+7: November there ends at 2026-11-30T17:00:00Z.
    events = [
        batch("2026-11-30T16:59:59Z", 10, 10),
        batch("2026-11-30T17:00:00Z", 10, 0),
        event("ticket.created", "2026-11-30T15:30:00Z", ticket_id="T1", priority="P1"),
        event("ticket.created", "2026-11-30T16:00:00Z", ticket_id="T2", priority="P1"),
    ]
    events.sort(key=lambda e: e["occurred_at"])
    found = statements(contract(tmp_path, zone="Asia/Jakarta"), events, until="2026-12-01T00:00:00Z")
    november = only(found, "2026-11")
    assert november["period"] == {"start": "2026-11-01T00:00:00+07:00", "end": "2026-12-01T00:00:00+07:00"}
    assert objective(november, "availability")["total"] == 10
    assert objective(november, "availability")["attained"] == 1.0
    # T1's first response breached at 16:30Z (23:30 local, November), T2's at 17:00Z (December).
    assert (objective(november, "first_response")["met"], objective(november, "first_response")["total"]) == (
        0,
        1,
    )
    assert "2026-12" not in {s["statement_id"][-7:] for s in found}  # December is still open


def test_a_period_closes_only_after_the_allowed_lateness(tmp_path):
    events = [batch("2026-10-31T23:00:00Z", 10, 10), batch("2026-11-01T00:04:59Z", 1, 1)]
    assert statements(contract(tmp_path), events) == []
    events.append(batch("2026-11-01T00:05:00Z", 1, 1))
    [statement] = statements(contract(tmp_path), events)
    assert objective(statement, "availability")["total"] == 10


def test_ticket_outcomes_are_booked_to_the_period_they_were_decided_in(tmp_path):
    events = [
        # Created in November, answered in time in December: met, in December.
        event("ticket.created", "2026-11-30T23:30:00Z", ticket_id="T1", priority="P1"),
        event("ticket.agent_replied", "2026-12-01T00:10:00Z", ticket_id="T1"),
        # Never answered: breached at its deadline, 09:00, in November, whatever happens later.
        event("ticket.created", "2026-11-20T08:00:00Z", ticket_id="T2", priority="P1"),
        event("ticket.agent_replied", "2026-12-01T09:00:00Z", ticket_id="T2"),
    ]
    found = statements(
        contract(tmp_path), sorted(events, key=lambda e: e["occurred_at"]), until="2027-01-02T00:00:00Z"
    )
    november, december = only(found, "2026-11"), only(found, "2026-12")
    first = objective(november, "first_response")
    assert (first["met"], first["total"], first["target"]) == (0, 1, 0.9)
    assert (objective(december, "first_response")["met"], objective(december, "first_response")["total"]) == (
        1,
        1,
    )
    # T2's resolution breached in November too; T1's in December (never resolved).
    assert objective(november, "resolution")["total"] == 1
    assert objective(december, "resolution")["met"] == 0


def test_a_reopened_ticket_that_then_breaches_counts_once_per_period(tmp_path):
    created = event("ticket.created", "2026-11-10T08:00:00Z", ticket_id="T1", priority="P1")
    solved = event("ticket.status_changed", "2026-11-10T09:00:00Z", ticket_id="T1", status="solved")
    # Reopened the same month and left open: met, then breached, in November: one breach.
    reopened = event("ticket.status_changed", "2026-11-10T10:00:00Z", ticket_id="T1", status="open")
    found = statements(contract(tmp_path), [created, solved, reopened], until=AFTER)
    resolution = objective(only(found, "2026-11"), "resolution")
    assert (resolution["met"], resolution["total"], resolution["credit_percent"]) == (0, 1, 5)
    # Reopened in December instead: November keeps its met, December books the breach.
    late_reopen = event("ticket.status_changed", "2026-12-03T10:00:00Z", ticket_id="T1", status="open")
    found = statements(contract(tmp_path), [created, solved, late_reopen], until="2027-01-02T00:00:00Z")
    november, december = only(found, "2026-11"), only(found, "2026-12")
    assert (objective(november, "resolution")["met"], objective(november, "resolution")["total"]) == (1, 1)
    assert (objective(december, "resolution")["met"], objective(december, "resolution")["total"]) == (0, 1)


def test_a_late_event_that_retracts_a_breach_corrects_the_period(tmp_path):
    created = event("ticket.created", "2026-11-10T08:00:00Z", ticket_id="T1", priority="P1")
    reply = event("ticket.agent_replied", "2026-11-10T08:59:00Z", ticket_id="T1")
    later = batch("2026-11-10T09:02:00Z", 1, 1)  # moves the clock past the deadline first
    found = statements(contract(tmp_path), [created, later, reply], until=AFTER)
    first = objective(only(found, "2026-11"), "first_response")
    assert (first["met"], first["total"]) == (1, 1)


def test_objectives_with_nothing_to_count_are_left_out_and_quiet_periods_still_settle(tmp_path):
    events = [batch("2026-10-31T10:00:00Z", 10, 10), batch("2026-12-15T10:00:00Z", 10, 10)]
    found = statements(contract(tmp_path), events, until="2027-01-02T00:00:00Z")
    assert [s["statement_id"] for s in found] == ["acme/2026-10", "acme/2026-11", "acme/2026-12"]
    assert [o["objective"] for o in found[0]["objectives"]] == ["availability"]
    assert found[1]["objectives"] == [] and found[1]["credit"]["amount"] == 0


def test_statements_are_the_same_with_one_clock_per_partition(tmp_path):
    events = [
        event("ticket.created", "2026-11-30T20:00:00Z", ticket_id="T1", priority="P1"),
        answered("k1", "2026-11-30T21:00:00Z", 25),
        batch("2026-11-30T21:30:00Z", 1000, 980),
        event("ticket.agent_replied", "2026-12-01T01:00:00Z", ticket_id="T1"),
        batch("2026-12-01T01:30:00Z", 5, 5),
    ]
    one = statements(contract(tmp_path), events, until="2027-01-02T00:00:00Z")
    assert len(one) == 2
    assert statements(contract(tmp_path), events, until="2027-01-02T00:00:00Z", partitions=3) == one


def test_a_contract_settles_only_when_every_clock_it_depends_on_has_passed(tmp_path):
    contracts = contract(tmp_path)
    closer = Closer(contracts.get, 0, {})
    tickets, calls = Engine(contracts), Engine(contracts)
    tickets.apply(_ticket_created("2026-11-30T10:00:00Z"))
    calls.apply(_call("2026-11-30T10:00:00Z"))
    engines = {"ticket": tickets, "call": calls, "request": Engine(contracts)}
    tickets.advance(ms("2026-12-01T00:00:00Z"))
    calls.advance(ms("2026-12-01T00:00:00Z"))
    assert closer.close(engines) == []  # the request clock has not moved at all
    engines["request"].advance(ms("2026-12-01T00:00:00Z"))
    [statement] = closer.close(engines)
    assert statement.statement_id == "acme/2026-11"
    assert closer.close(engines) == []


def test_a_restarted_closer_neither_repeats_nor_skips_a_period(tmp_path):
    contracts = contract(tmp_path)
    marks: dict[str, str] = {}
    engine = Engine(contracts)
    engines = dict.fromkeys(("ticket", "call", "request"), engine)
    engine.apply(_call("2026-11-30T10:00:00Z"))
    engine.advance(ms("2026-12-01T00:00:00Z"))
    assert [s.period for s in Closer(contracts.get, 0, marks).close(engines)] == ["2026-11"]
    assert marks == {"acme": "2026-12"}
    # A new closer (a restarted worker) over the same state: November is not settled again...
    restarted = Closer(contracts.get, 0, marks)
    assert restarted.close(engines) == []
    # ...and December, with nothing counted in it, still is when it closes.
    engine.advance(ms("2027-01-01T00:00:00Z"))
    assert [s.period for s in restarted.close(engines)] == ["2026-12"]
    assert "acme" not in engine.ledgers and marks == {"acme": "2027-01"}


def test_period_of_uses_local_months():
    from zoneinfo import ZoneInfo

    assert period_of(ZoneInfo("America/New_York"), ms("2026-12-01T04:59:59Z")) == "2026-11"
    assert period_of(ZoneInfo("America/New_York"), ms("2026-12-01T05:00:00Z")) == "2026-12"


@pytest.mark.parametrize(
    ("tier", "problem"),
    [
        (
            "{objective: uptime, below: 0.99, credit_percent: 5}",
            "penalties.tiers[0].objective: the contract has no objective 'uptime'",
        ),
        (
            "{objective: abandon_rate, below: 0.05, credit_percent: 5}",
            "penalties.tiers[0]: abandon_rate must stay under a maximum",
        ),
        (
            "{objective: availability, above: 0.5, credit_percent: 5}",
            "penalties.tiers[0]: availability credits a shortfall",
        ),
        (
            "{objective: speed_of_answer, above: 0.5, credit_percent: 5}",
            "penalties.tiers[0].above: expected a duration like 45s",
        ),
        (
            "{objective: abandon_rate, above: 2, credit_percent: 5}",
            "penalties.tiers[0].above: expected a ratio between 0 and 1",
        ),
        ("{objective: availability, credit_percent: 5}", "expected exactly one of below or above"),
        ("{objective: availability, below: 0.9, credit_percent: 120}", "credit_percent"),
        (
            "{objective: availability, below: 0.9, credit_percent: 5}\n"
            "  monthly_fee: {amount: 1, currency: usd}",
            "currency",
        ),
    ],
)
def test_bad_tiers_are_reported_with_their_path(tmp_path, tier, problem):
    text = CONTRACT.format(zone="UTC", fee="100").split("  tiers:")[0] + f"  tiers:\n    - {tier}\n"
    with pytest.raises(ContractError) as raised:
        contracts_from(tmp_path, acme=text)
    assert any(problem in line for line in raised.value.errors), raised.value.errors


def _ticket_created(at: str):
    from sla_stream.wire.events import decode_event

    return decode_event(orjson.dumps(event("ticket.created", at, ticket_id="T", priority="P1")))


def _call(at: str):
    from sla_stream.wire.events import decode_event

    return decode_event(orjson.dumps(answered(f"k{next(_ids)}", at, 5)))


def test_without_an_allowed_lateness_nothing_settles_before_the_end(tmp_path):
    # Any late event is accepted then, so a month is final only when the replay ends.
    events = [batch("2026-11-10T10:00:00Z", 10, 10), batch("2026-12-10T10:00:00Z", 10, 10)]
    events.append(batch("2026-11-20T10:00:00Z", 10, 0))  # three weeks late
    lines = [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    found: list = []
    for _ in replay(contract(tmp_path), lines, None, None, on_statement=found.append):
        pass
    [november] = found
    assert [(a.objective, a.counts) for a in november.objectives] == [
        ("availability", {"good": 10, "total": 20})
    ]


def test_a_breach_already_sent_stands_when_a_lower_priority_is_then_met(tmp_path):
    text = CONTRACT.format(zone="UTC", fee="100").replace("priorities: [P1]", "priorities: [P1, P2]")
    text = text.replace("{P1: 1h}", "{P1: 1h, P2: 8h}").replace("{P1: 4h}", "{P1: 4h, P2: 1d}")
    events = [
        event("ticket.created", "2026-11-10T08:00:00Z", ticket_id="T1", priority="P1"),
        batch("2026-11-10T09:30:00Z", 1, 1),  # the clock passes the P1 deadline: breach sent
        event("ticket.priority_changed", "2026-11-10T09:40:00Z", ticket_id="T1", priority="P2"),
        event("ticket.agent_replied", "2026-11-10T09:50:00Z", ticket_id="T1"),  # within P2's 8h
    ]
    first = objective(
        only(statements(contracts_from(tmp_path, acme=text), events, until=AFTER), "2026-11"),
        "first_response",
    )
    assert (first["met"], first["total"]) == (0, 1)


def test_a_queued_call_counts_nothing_until_it_is_answered_or_abandoned(tmp_path):
    engine = Engine(contract(tmp_path))
    queued = event("call.queued", "2026-11-10T10:00:00Z", call_id="k1", queue="sales")
    from sla_stream.wire.events import decode_event

    engine.apply(decode_event(orjson.dumps(queued)))
    assert "acme" not in engine.ledgers


RETARGETED = """
version: 1
id: acme
timezone: UTC
tickets:
  priorities: [P1, P2]
  objectives:
    resolution: {targets: {P1: 10m, P2: 1h}}
  compliance_target: 0.9
penalties:
  monthly_fee: {amount: 100, currency: USD}
  tiers:
    - {objective: resolution, below: 0.9, credit_percent: 5}
"""


@pytest.mark.parametrize("writes", ["never", "after every event"])
def test_a_breach_a_late_event_makes_due_before_one_already_counted_is_counted(tmp_path, writes):
    """T1 breaches at 10:10 and is counted. A late priority change then makes T2 due at 10:05,
    before it. The worker (counting each breach once across crashes) counts both, as replay does.
    Counted at first only by a watermark on the time breaches fall due, T2's was lost."""
    from sla_stream.wire.events import decode_event

    contracts = contracts_from(tmp_path, acme=RETARGETED)
    events = [
        event("ticket.created", "2026-11-10T10:00:00Z", ticket_id="T1", priority="P1"),
        event("ticket.created", "2026-11-10T09:55:00Z", ticket_id="T2", priority="P2"),
        event("ticket.created", "2026-11-10T10:15:00Z", ticket_id="T3", priority="P2"),
        event("ticket.priority_changed", "2026-11-10T09:58:00Z", ticket_id="T2", priority="P1"),
        event("ticket.status_changed", "2026-11-10T10:20:00Z", ticket_id="T3", status="solved"),
    ]
    engines = [Engine(contracts, allowed_lateness=30 * 60_000) for _ in range(2)]
    worker = engines[1]
    worker.once = True
    breaches = []
    for offset, raw in enumerate(map(orjson.dumps, events)):
        worker.source = ("sla.tickets", offset)
        for engine in engines:
            alerts = engine.apply(decode_event(raw)).alerts
            breaches += [
                (a.subject_id, a.observed_at_ms) for a in alerts if a.kind == "breach" and engine is worker
            ]
        if writes != "never":
            worker.books.wrote()
    assert breaches == [("T1", ms("2026-11-10T10:10:00Z")), ("T2", ms("2026-11-10T10:05:00Z"))]
    counted = [engine.ledgers["acme"].periods["2026-11"]["resolution"] for engine in engines]
    assert counted == [[1, 3], [1, 3]]
