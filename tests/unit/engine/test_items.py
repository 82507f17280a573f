"""Clocks a contract configures on its own items: a parcel's delivery on a working-day calendar,
paused by customs holds, its per-class targets, flags, compensation and late events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import REPO, contracts_from, ms

from sla_stream.contracts.loader import ContractError, load_dir
from sla_stream.engine.alerts import Alert
from sla_stream.engine.events import Rejected
from sla_stream.engine.processor import Engine
from sla_stream.replay import replay
from sla_stream.wire.alerts import alert_record
from sla_stream.wire.events import decode_event
from sla_stream.wire.statements import statement_record

PARCELS = """
version: 1
id: parcels
timezone: Europe/Berlin
calendars:
  working_days:
    weekly: {mon-fri: ["00:00-24:00"]}
    holidays: {country: DE}
items:
  kind: shipment
  key: parcel_id
  near_breach: [0.75]
  compliance_target: 0.95
  objectives:
    delivery:
      calendar: working_days
      target_by: service_class
      targets: {express: 1d, standard: 2d}
      start: {event: shipment.picked_up}
      pause: {event: shipment.status_changed, where: {status: [customs_hold, force_majeure]}}
      stop: {event: shipment.delivered}
penalties:
  monthly_fee: {amount: 1000, currency: EUR}
  tiers:
    - {objective: delivery, below: 0.95, credit_percent: 5}
  compensation:
    - {objective: delivery, reason: late_delivery, amount: 8.50}
    - {reason: damaged, event: shipment.delivered, where: {condition: damaged}, amount: 25}
"""


class Parcels:
    """Shipment events as the items topic carries them, decoded as the worker decodes them."""

    def __init__(self) -> None:
        self.count = 0

    def record(self, type_: str, parcel: str, at: str, **fields: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "event_id": f"s{self.count}",
            "type": f"shipment.{type_}",
            "contract_id": "parcels",
            "occurred_at": at,
            "parcel_id": parcel,
            **fields,
        }

    def __call__(self, type_: str, parcel: str, at: str, **fields: Any) -> Any:
        return decode_event(orjson.dumps(self.record(type_, parcel, at, **fields)), items=True)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(contracts_from(tmp_path, parcels=PARCELS), allowed_lateness=24 * 3_600_000)


def run(engine: Engine, *events: Any, until: str | None = None) -> list[Alert]:
    alerts: list[Alert] = []
    for event in events:
        alerts += engine.apply(event).alerts
    if until:
        alerts += engine.advance(ms(until))
    return alerts


def summary(alerts: list[Alert]) -> list[tuple[str, str, str, str]]:
    return [(a.subject_id, a.objective, a.kind, alert_record(a)["observed_at"]) for a in alerts]


def test_delivery_counts_working_days_only_and_a_customs_hold_pauses_it(engine):
    parcel = Parcels()
    alerts = run(
        engine,
        # Friday 10:00: 14 h on Friday, the weekend is closed, 24 h on Monday, 10 h on Tuesday...
        parcel("picked_up", "P-1", "2026-12-18T10:00:00+01:00", service_class="standard"),
        parcel("status_changed", "P-1", "2026-12-21T08:00:00+01:00", status="customs_hold"),
        # ...but the hold pauses it for six hours, and an ordinary delay does not pause it.
        parcel("status_changed", "P-1", "2026-12-21T14:00:00+01:00", status="in_transit"),
        parcel("status_changed", "P-1", "2026-12-21T15:00:00+01:00", status="delayed_by_traffic"),
        until="2026-12-23T00:00:00+01:00",
    )
    assert summary(alerts) == [
        ("P-1", "delivery", "near_breach", "2026-12-22T04:00:00+01:00"),
        ("P-1", "delivery", "breach", "2026-12-22T16:00:00+01:00"),
    ]
    breach = alert_record(alerts[-1])
    assert breach["subject"] == {"kind": "shipment", "id": "P-1"}
    assert breach["target_seconds"] == 2 * 86_400 and breach["details"] == {"service_class": "standard"}


def test_public_holidays_of_the_calendar_do_not_count(engine):
    parcel = Parcels()
    # Thursday 24 December noon, express: Christmas Day and Boxing Day are holidays in Germany.
    alerts = run(
        engine,
        parcel("picked_up", "P-2", "2026-12-24T12:00:00+01:00", service_class="express"),
        until="2026-12-29T00:00:00+01:00",
    )
    assert summary(alerts)[-1] == ("P-2", "delivery", "breach", "2026-12-28T12:00:00+01:00")


def test_a_parcel_delivered_before_its_near_breach_gives_no_alert_and_counts_as_met(tmp_path):
    contracts = contracts_from(tmp_path, parcels=PARCELS)
    parcel = Parcels()
    records = [
        parcel.record("picked_up", "P-3", "2026-11-02T09:00:00+01:00", service_class="express"),
        parcel.record("delivered", "P-3", "2026-11-02T20:00:00+01:00"),
    ]
    alerts, found = _replay(contracts, records, until="2026-12-02T00:00:00+01:00")
    assert alerts == []
    [delivery] = found[0]["objectives"]
    assert (delivery["objective"], delivery["met"], delivery["total"]) == ("delivery", 1, 1)


def test_the_statement_gives_the_on_time_rate_and_compensation_per_late_and_damaged_parcel(tmp_path):
    contracts = contracts_from(tmp_path, parcels=PARCELS)
    parcel = Parcels()
    records = []
    for n in range(10):  # ten express parcels picked up on Monday 2 November
        records.append(
            parcel.record("picked_up", f"P{n}", "2026-11-02T09:00:00+01:00", service_class="express")
        )
    for n in range(7):  # seven delivered on Tuesday morning, in time; one of those damaged
        fields = {"condition": "damaged"} if n == 0 else {}
        records.append(parcel.record("delivered", f"P{n}", "2026-11-03T08:00:00+01:00", **fields))
    for n in range(7, 10):  # three on Wednesday, late; one damaged too
        fields = {"condition": "damaged"} if n == 9 else {"condition": "intact"}
        records.append(parcel.record("delivered", f"P{n}", "2026-11-04T08:00:00+01:00", **fields))
    alerts, found = _replay(contracts, records, until="2026-12-02T00:00:00+01:00")
    assert sorted(a.subject_id for a in alerts if a.kind == "breach") == ["P7", "P8", "P9"]
    [statement] = found
    assert statement["statement_id"] == "parcels/2026-11"
    [delivery] = statement["objectives"]
    assert delivery == {
        "objective": "delivery",
        "attained": 0.7,
        "target": 0.95,
        "met": 7,
        "total": 10,
        "credit_percent": 5,
        "tier": {"below": 0.95, "credit_percent": 5},
    }
    assert statement["compensation"] == [
        {"reason": "late_delivery", "objective": "delivery", "count": 3, "each": 8.5, "amount": 25.5},
        {"reason": "damaged", "count": 2, "each": 25.0, "amount": 50.0},
    ]
    # 5% of the 1000 EUR fee, plus the compensation.
    assert statement["credit"] == {"amount": 50 + 25.5 + 50, "currency": "EUR"}


def test_an_item_is_flagged_once_however_many_events_say_so(tmp_path):
    contracts = contracts_from(tmp_path, parcels=PARCELS)
    parcel = Parcels()
    records = [
        parcel.record("picked_up", "P-1", "2026-11-02T09:00:00+01:00", service_class="express"),
        parcel.record("delivered", "P-1", "2026-11-02T15:00:00+01:00", condition="damaged"),
        parcel.record("delivered", "P-1", "2026-11-02T16:00:00+01:00", condition="damaged"),
    ]
    _, [statement] = _replay(contracts, records, until="2026-12-02T00:00:00+01:00")
    assert statement["compensation"][1] == {"reason": "damaged", "count": 1, "each": 25.0, "amount": 25.0}


def test_an_upgraded_service_class_retargets_the_running_clock(engine):
    parcel = Parcels()
    alerts = run(
        engine,
        parcel("picked_up", "P-4", "2026-11-02T09:00:00+01:00", service_class="standard"),
        # 30 working hours later it becomes express (1d): past its target, it breaches at once.
        parcel(
            "status_changed", "P-4", "2026-11-03T15:00:00+01:00", status="in_transit", service_class="express"
        ),
    )
    assert summary(alerts) == [("P-4", "delivery", "breach", "2026-11-03T15:00:00+01:00")]
    assert alert_record(alerts[0])["target_seconds"] == 86_400


def test_a_late_customs_hold_retracts_a_breach_it_shows_did_not_happen(engine):
    parcel = Parcels()
    first = run(
        engine,
        parcel("picked_up", "P-5", "2026-11-02T09:00:00+01:00", service_class="express"),
        until="2026-11-03T09:30:00+01:00",
    )
    assert [a.kind for a in first] == ["near_breach", "breach"]
    # The hold from 08:00 to 10:00 on Tuesday is reported late: the deadline moves to 11:00.
    late = run(
        engine,
        parcel("status_changed", "P-5", "2026-11-03T08:00:00+01:00", status="customs_hold"),
        parcel("status_changed", "P-5", "2026-11-03T10:00:00+01:00", status="in_transit"),
        until="2026-11-03T12:00:00+01:00",
    )
    assert [(a.kind, a.details.get("retracts")) for a in late[:1]] == [("retracted", first[1].alert_id)]
    assert summary(late[1:]) == [("P-5", "delivery", "breach", "2026-11-03T11:00:00+01:00")]
    assert late[1].alert_id != first[1].alert_id  # the breach that came back is a new alert


def test_the_same_history_gives_the_same_alerts_in_any_arrival_order(tmp_path):
    contracts = contracts_from(tmp_path, parcels=PARCELS)
    parcel = Parcels()
    records = [
        parcel.record("picked_up", "P-6", "2026-11-02T09:00:00+01:00", service_class="express"),
        parcel.record("status_changed", "P-6", "2026-11-03T08:00:00+01:00", status="force_majeure"),
        parcel.record("status_changed", "P-6", "2026-11-03T12:00:00+01:00", status="in_transit"),
    ]
    in_order, _ = _replay(contracts, records, until="2026-11-04T00:00:00+01:00", lateness_h=48)
    shuffled, _ = _replay(
        contracts, [records[0], records[2], records[1]], until="2026-11-04T00:00:00+01:00", lateness_h=48
    )
    assert [a.kind for a in in_order] == ["near_breach", "breach"]
    assert summary(in_order)[-1][3] == "2026-11-03T13:00:00+01:00"
    assert {alert_record(a)["observed_at"] for a in standing(shuffled)} == {
        alert_record(a)["observed_at"] for a in in_order
    }


def standing(alerts: list[Alert]) -> list[Alert]:
    """The alerts not retracted by a later one (retractions left out too)."""
    retracted = {a.details["retracts"] for a in alerts if a.kind == "retracted"}
    return [a for a in alerts if a.kind != "retracted" and a.alert_id not in retracted]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"service_class": "overnight"}, "service_class 'overnight' is not one of express, standard"),
        ({}, "starts delivery, whose target depends on `service_class`"),
    ],
)
def test_an_event_the_contract_cannot_measure_is_rejected_with_what_is_wrong(engine, fields, reason):
    with pytest.raises(Rejected, match=reason):
        engine.apply(Parcels()("picked_up", "P-7", "2026-11-02T09:00:00+01:00", **fields))


def test_an_event_without_the_item_key_or_of_another_kind_is_rejected(engine):
    no_key = decode_event(
        orjson.dumps(
            {
                "event_id": "x",
                "type": "shipment.picked_up",
                "contract_id": "parcels",
                "occurred_at": "2026-11-02T09:00:00Z",
            }
        ),
        items=True,
    )
    with pytest.raises(Rejected, match="`parcel_id` is missing"):
        engine.apply(no_key)
    other = decode_event(
        orjson.dumps(
            {
                "event_id": "y",
                "type": "claim.filed",
                "contract_id": "parcels",
                "occurred_at": "2026-11-02T09:00:00Z",
            }
        ),
        items=True,
    )
    with pytest.raises(Rejected, match=r"claim\.filed is not a shipment event"):
        engine.apply(other)


def test_a_duplicate_item_event_is_recognised(engine):
    parcel = Parcels()
    event = parcel("picked_up", "P-8", "2026-11-02T09:00:00+01:00", service_class="express")
    assert engine.apply(event).outcome == "ok"
    assert engine.apply(event).outcome == "duplicate"


def test_item_state_survives_a_round_trip_through_its_stored_form(engine):
    from sla_stream.engine.items import Item

    parcel = Parcels()
    run(
        engine,
        parcel("picked_up", "P-9", "2026-11-02T09:00:00+01:00", service_class="express"),
        parcel("status_changed", "P-9", "2026-11-02T10:00:00+01:00", status="customs_hold"),
    )
    stored = engine.items["parcels", "P-9"]
    again = Item.from_state(orjson.loads(orjson.dumps(stored.to_state())))
    assert again.to_state() == stored.to_state() and again.history == stored.history


def test_an_open_item_keeps_its_fields_in_slots_with_no_dict_of_its_own(engine):
    """One item object is kept per open item, as per open ticket (see ``test_tickets``)."""
    run(engine, Parcels()("picked_up", "P-9", "2026-11-02T09:00:00+01:00", service_class="express"))
    item = engine.items["parcels", "P-9"]
    assert not hasattr(item, "__dict__") and not hasattr(item, "__weakref__")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("start: {event: shipment.picked_up}", "start: {event: parcel.picked_up}"),
            "items.objectives.delivery.start[0].event: parcel.picked_up is not a shipment event",
        ),
        (
            ("targets: {express: 1d, standard: 2d}", "targets: {express: 1d}\n      target: 2d"),
            "items.objectives.delivery: expected exactly one of target or targets",
        ),
        (
            ("{objective: delivery, reason: late_delivery", "{objective: shipping, reason: late_delivery"),
            "penalties.compensation[0].objective: no ticket or item objective 'shipping'",
        ),
        (
            ("calendar: working_days\n      target_by", "calendar: nights\n      target_by"),
            "no calendar named 'nights'",
        ),
        (("kind: shipment", "kind: ticket"), "items.kind: ticket is built in"),
        (("kind: shipment", "kind: service"), "items.kind: service is built in"),
        (("key: parcel_id", "key: event_id"), "items.key: event_id is part of every event"),
        (("target_by: service_class", "target_by: fraction"), "target_by: fraction is taken"),
        (("where: {status: [", "where: {type: ["), "where: type is part of every event"),
    ],
)
def test_contract_mistakes_in_an_items_section_are_named(tmp_path, change, message):
    old, new = change
    assert old in PARCELS
    (tmp_path / "parcels.yaml").write_text(PARCELS.replace(old, new))
    with pytest.raises(ContractError) as caught:
        load_dir(tmp_path)
    assert any(message in line for line in caught.value.errors), caught.value.errors


def test_the_expedition_example_contract_loads():
    contract = load_dir(REPO / "examples" / "contracts")["swiftparcel-eu"]
    assert contract.items is not None and contract.sources == ("item",)
    assert set(contract.items.objectives) == {"delivery", "claim_response"}
    assert [rule.reason for rule in contract.penalties.compensation] == ["late_delivery", "damaged"]


def _replay(
    contracts: Any, records: list[dict[str, Any]], until: str, lateness_h: int = 1
) -> tuple[list[Alert], list[dict[str, Any]]]:
    found: list[dict[str, Any]] = []
    lines = [("items.jsonl", n, orjson.dumps(r)) for n, r in enumerate(records, 1)]
    alerts = list(
        replay(
            contracts,
            lines,
            ms(until),
            lateness_h * 3_600_000,
            on_statement=lambda s: found.append(statement_record(s)),
        )
    )
    return alerts, found


VERSIONED = (
    PARCELS
    + """
versions:
  - name: faster-2026-12
    effective_from: 2026-12-01T00:00:00+01:00
    items: {objectives: {delivery: {targets: {standard: 1d}}}}
"""
)


def test_a_running_delivery_clock_takes_the_new_versions_target_at_the_change(tmp_path):
    engine = Engine(contracts_from(tmp_path, parcels=VERSIONED), allowed_lateness=3_600_000)
    parcel = Parcels()
    # Picked up Monday 30 November 09:00 (standard: 2d). At midnight 15 working hours are used;
    # from then on the target is 1d, so the breach falls at 09:00 on 1 December, with no event.
    alerts = run(
        engine,
        parcel("picked_up", "P-10", "2026-11-30T09:00:00+01:00", service_class="standard"),
        until="2026-12-02T00:00:00+01:00",
    )
    assert summary(alerts) == [
        ("P-10", "delivery", "near_breach", "2026-12-01T03:00:00+01:00"),
        ("P-10", "delivery", "breach", "2026-12-01T09:00:00+01:00"),
    ]
    assert [a.details["contract_version"] for a in alerts] == ["faster-2026-12"] * 2
    assert alert_record(alerts[-1])["target_seconds"] == 86_400
    # The schedule entry of the change is spent: nothing more falls due.
    assert engine.advance(ms("2026-12-02T00:00:01+01:00")) == []


def test_the_same_parcel_history_across_a_change_gives_the_same_alerts_in_any_order(tmp_path):
    contracts = contracts_from(tmp_path, parcels=VERSIONED)
    parcel = Parcels()
    records = [
        parcel.record("picked_up", "P-11", "2026-11-30T09:00:00+01:00", service_class="standard"),
        parcel.record("status_changed", "P-11", "2026-11-30T20:00:00+01:00", status="customs_hold"),
        parcel.record("status_changed", "P-11", "2026-12-01T02:00:00+01:00", status="in_transit"),
    ]
    in_order, _ = _replay(contracts, records, until="2026-12-03T00:00:00+01:00", lateness_h=48)
    late, _ = _replay(
        contracts, [records[0], records[2], records[1]], until="2026-12-03T00:00:00+01:00", lateness_h=48
    )
    # 11 h before the hold, resumed at 02:00 under the 1d target: breach at 15:00.
    assert summary(in_order)[-1] == ("P-11", "delivery", "breach", "2026-12-01T15:00:00+01:00")
    assert {alert_record(a)["observed_at"] for a in standing(late)} == {
        alert_record(a)["observed_at"] for a in in_order
    }


def test_an_exclusion_window_stops_item_clocks_as_it_stops_ticket_clocks(tmp_path):
    text = PARCELS.replace(
        "items:\n",
        "exclusions:\n"
        "  - {start: 2026-11-02T12:00:00+01:00, end: 2026-11-02T15:00:00+01:00, reason: depot outage}\n"
        "items:\n",
    )
    engine = Engine(contracts_from(tmp_path, parcels=text), allowed_lateness=3_600_000)
    alerts = run(
        engine,
        Parcels()("picked_up", "P-12", "2026-11-02T09:00:00+01:00", service_class="express"),
        until="2026-11-04T00:00:00+01:00",
    )
    # 24 working hours from Monday 09:00, with three hours excluded: Tuesday 12:00.
    assert summary(alerts)[-1] == ("P-12", "delivery", "breach", "2026-11-03T12:00:00+01:00")


def test_a_version_cannot_change_which_events_are_items(tmp_path):
    (tmp_path / "parcels.yaml").write_text(
        VERSIONED.replace("items: {objectives:", "items: {key: tracking_no, objectives:")
    )
    with pytest.raises(ContractError) as caught:
        load_dir(tmp_path)
    assert any("versions[0].items.key: a version cannot change it" in line for line in caught.value.errors)


CLAIMS = """
version: 1
id: parcels
items:
  kind: shipment
  key: parcel_id
  near_breach: [0.5]
  objectives:
    delivery: {target: 1d, start: {event: shipment.picked_up}, stop: {event: shipment.delivered}}
    claim_response: {target: 4h, start: {event: shipment.claim_filed}, stop: {event: shipment.claim_answered}}
versions:
  - name: no-claims
    effective_from: 2026-11-02T12:00:00Z
    items: {objectives: {claim_response: null}}
  - name: claims-again
    effective_from: 2026-11-04T00:00:00Z
    items: {objectives: {claim_response: {target: 4h, start: {event: shipment.claim_filed},
                                          stop: {event: shipment.claim_answered}}}}
"""


def test_alerts_of_an_objective_a_version_dropped_are_not_sent_again_by_a_late_event(tmp_path):
    engine = Engine(contracts_from(tmp_path, parcels=CLAIMS), allowed_lateness=86_400_000)
    parcel = Parcels()
    first = run(
        engine,
        parcel("claim_filed", "P-20", "2026-11-02T09:00:00Z"),
        parcel("status_changed", "P-20", "2026-11-02T14:00:00Z", status="in_transit"),
    )
    assert [(a.objective, a.kind) for a in first] == [("claim_response", "near_breach")]
    late = run(engine, parcel("status_changed", "P-20", "2026-11-02T13:00:00Z", status="sorted"))
    assert late == []  # decided again, the near-breach is the one already sent


def test_an_objective_dropped_and_added_again_does_not_start_a_second_clock_for_an_item(tmp_path):
    engine = Engine(contracts_from(tmp_path, parcels=CLAIMS), allowed_lateness=86_400_000)
    parcel = Parcels()
    run(
        engine,
        parcel("claim_filed", "P-21", "2026-11-02T09:00:00Z"),
        parcel("claim_answered", "P-21", "2026-11-02T10:00:00Z"),
        parcel("claim_filed", "P-21", "2026-11-05T09:00:00Z"),
    )
    item = engine.items["parcels", "P-21"]
    assert "claim_response" not in item.clocks and item.outcomes["claim_response|0"] == [
        [1, ms("2026-11-02T10:00:00Z")]
    ]


def test_a_start_is_checked_against_the_values_known_at_its_own_time(engine):
    parcel = Parcels()
    engine.apply(
        parcel(
            "status_changed", "P-22", "2026-11-02T10:00:00+01:00", status="labelled", service_class="standard"
        )
    )
    # Picked up (reported late) at 09:00, before anything said which class the parcel is.
    with pytest.raises(Rejected, match="starts delivery, whose target depends on `service_class`"):
        engine.apply(parcel("picked_up", "P-22", "2026-11-02T09:00:00+01:00"))
    # Picked up at 11:00: the class is known from 10:00.
    assert engine.apply(parcel("picked_up", "P-22", "2026-11-02T11:00:00+01:00")).outcome == "ok"
    assert engine.items["parcels", "P-22"].clocks["delivery"].target == 2 * 86_400_000


def test_a_compensation_rule_on_an_envelope_field_is_a_contract_error(tmp_path):
    (tmp_path / "parcels.yaml").write_text(
        PARCELS.replace("where: {condition: damaged}", "where: {contract_id: x}")
    )
    with pytest.raises(ContractError) as caught:
        load_dir(tmp_path)
    assert any(
        "penalties.compensation[1].where: contract_id is part of every event" in e
        for e in caught.value.errors
    )


def test_a_start_is_rejected_when_the_items_value_has_no_target_for_that_clock(tmp_path):
    text = PARCELS.replace(
        "      stop: {event: shipment.delivered}\n",
        "      stop: {event: shipment.delivered}\n"
        "    return_pickup:\n"
        "      target_by: service_class\n"
        "      targets: {standard: 1d}\n"
        "      start: {event: shipment.return_requested}\n"
        "      stop: {event: shipment.returned}\n",
        1,
    )
    engine = Engine(contracts_from(tmp_path, parcels=text), allowed_lateness=3_600_000)
    parcel = Parcels()
    engine.apply(parcel("picked_up", "P-30", "2026-11-02T09:00:00+01:00", service_class="express"))
    # Express parcels have no return-pickup target: said, not a clock that silently never starts.
    with pytest.raises(Rejected, match="service_class 'express' is not one of standard"):
        engine.apply(parcel("return_requested", "P-30", "2026-11-02T10:00:00+01:00"))
