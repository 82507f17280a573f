"""Alert lines as the demo (and ``tail --lines``) prints them: alerts the engine really emits,
each saying what was measured against its target."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

import orjson
from helpers import REPO, contracts_from, ms

from sla_stream.alert_lines import alert_line
from sla_stream.contracts import load_dir
from sla_stream.engine.model import Contract
from sla_stream.replay import replay
from sla_stream.wire.alerts import alert_record

#: The worked example's contract, acme-jakarta.
WORKED = REPO / "examples" / "worked-example" / "contracts"

CALLS = """
version: 1
id: centre
calls:
  service_level: {answer_within: 20s, target: 0.80, interval: 30m, short_abandon: 5s}
  abandon_rate:  {max: 0.25, interval: 30m}
  speed_of_answer: {max: 30s, interval: 15m}
"""

REQUESTS = """
version: 1
id: api
requests:
  availability: {target: 0.99, window: 1h}
  latency: {threshold_ms: 300, target: 0.95, window: 1h}
  burn_rate_alerts:
    - {long: 10m, short: 2m, factor: 5, severity: page}
"""

PARCELS = """
version: 1
id: parcels
items:
  kind: shipment
  key: parcel_id
  near_breach: [0.75]
  objectives:
    delivery:
      target_by: service_class
      targets: {express: 1d, standard: 2d}
      start: {event: shipment.picked_up}
      stop: {event: shipment.delivered}
"""

_ids = count()


def event(contract: str, type_: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{next(_ids)}", "type": type_, "contract_id": contract, "occurred_at": at, **fields}


def alerts(
    contracts: dict[str, Contract], events: list[dict[str, Any]], until: str | None = None, lateness: int = 0
) -> list[dict[str, Any]]:
    """The alert records a replay of ``events`` gives (decoded and applied as the worker does)."""
    lines = [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    found = replay(contracts, lines, ms(until) if until else None, lateness or None)
    return [alert_record(alert) for alert in found]


def lines(records: list[dict[str, Any]]) -> list[str]:
    return [alert_line(record) for record in records]


def test_a_ticket_clock_says_its_target_and_elapsed_time_in_human_durations():
    contracts = load_dir(WORKED)
    created = event(
        "acme-jakarta", "ticket.created", "2026-11-24T16:00:00+07:00", ticket_id="T-17", priority="P2"
    )
    assert lines(alerts(contracts, [created], until="2026-11-25T12:00:00+07:00")) == [
        "NEAR_BREACH  acme-jakarta first_response ticket T-17 (P2): target 2h, elapsed 1h30m (75%),"
        " deadline 2026-11-25T09:00:00+07:00, observed 2026-11-25T08:30:00+07:00",
        "BREACH       acme-jakarta first_response ticket T-17 (P2): target 2h, elapsed 2h,"
        " deadline 2026-11-25T09:00:00+07:00",
    ]


def test_a_retraction_names_the_alert_it_takes_back():
    contracts = load_dir(WORKED)
    history = [
        event("acme-jakarta", "ticket.created", "2026-11-25T09:00:00+07:00", ticket_id="T-1", priority="P1"),
        event("acme-jakarta", "ticket.created", "2026-11-25T09:40:00+07:00", ticket_id="T-2", priority="P2"),
        # the reply to T-1 arrives after T-2's creation moved the clock past T-1's deadline
        event("acme-jakarta", "ticket.agent_replied", "2026-11-25T09:20:00+07:00", ticket_id="T-1"),
    ]
    records = alerts(contracts, history, lateness=3_600_000)
    sent = [r["alert_id"] for r in records if r["kind"] in ("near_breach", "breach")]
    said = [alert_line(r) for r in records if r["kind"] == "retracted"]
    assert len(sent) == 2
    assert said == [
        f"RETRACTED    acme-jakarta first_response ticket T-1 (P1): retracts {alert_id};"
        " target 30m, elapsed 20m, deadline 2026-11-25T09:30:00+07:00, observed 2026-11-25T09:20:00+07:00"
        for alert_id in sent
    ]


def test_an_item_clock_says_the_field_that_picked_its_target(tmp_path: Path):
    contracts = contracts_from(tmp_path, parcels=PARCELS)
    picked = event(
        "parcels", "shipment.picked_up", "2026-11-24T10:00:00Z", parcel_id="S-1", service_class="express"
    )
    assert lines(alerts(contracts, [picked], until="2026-11-25T12:00:00Z")) == [
        "NEAR_BREACH  parcels delivery shipment S-1 (service_class express): target 1d, elapsed 18h (75%),"
        " deadline 2026-11-25T10:00:00Z, observed 2026-11-25T04:00:00Z",
        "BREACH       parcels delivery shipment S-1 (service_class express): target 1d, elapsed 1d,"
        " deadline 2026-11-25T10:00:00Z",
    ]


def test_queue_alerts_say_the_measure_against_its_target_over_the_interval(tmp_path: Path):
    contracts = contracts_from(tmp_path, centre=CALLS)
    waits = [10, 10, 60, 60]
    calls = [
        event(
            "centre",
            "call.answered",
            f"2026-11-24T10:0{n}:00Z",
            call_id=f"a{n}",
            queue="sales",
            wait_seconds=w,
        )
        for n, w in enumerate(waits, 1)
    ]
    calls += [
        event(
            "centre",
            "call.abandoned",
            f"2026-11-24T10:0{n}:00Z",
            call_id=f"b{n}",
            queue="sales",
            wait_seconds=30,
        )
        for n in (6, 7)
    ]
    # The next half hour meets every objective: the service level recovers.
    calls.append(
        event("centre", "call.answered", "2026-11-24T10:40:00Z", call_id="c1", queue="sales", wait_seconds=5)
    )
    said = lines(alerts(contracts, calls, until="2026-11-24T11:00:01Z"))
    closed = [line for line in said if not line.startswith("NEAR_BREACH")]
    assert closed == [
        "BREACH       centre speed_of_answer queue sales: average speed of answer 35s > 30s in 10:00–10:15"
        " (4 calls answered), observed 2026-11-24T10:15:00Z",
        "BREACH       centre service_level queue sales: service level 33% < 80% in 10:00–10:30"
        " (2 of 6 calls answered in time), observed 2026-11-24T10:30:00Z",
        "BREACH       centre abandon_rate queue sales: abandon rate 33% > 25% in 10:00–10:30"
        " (2 of 6 calls abandoned), observed 2026-11-24T10:30:00Z",
        "RECOVERED    centre speed_of_answer queue sales: average speed of answer 5s < 30s in 10:30–10:45"
        " (1 call answered), observed 2026-11-24T10:45:00Z",
        "RECOVERED    centre service_level queue sales: service level 100% > 80% in 10:30–11:00"
        " (1 of 1 calls answered in time), observed 2026-11-24T11:00:00Z",
        "RECOVERED    centre abandon_rate queue sales: abandon rate 0% < 25% in 10:30–11:00"
        " (0 of 1 calls abandoned), observed 2026-11-24T11:00:00Z",
    ]
    warned = [line for line in said if line.startswith("NEAR_BREACH")]
    assert warned[0].startswith(
        "NEAR_BREACH  centre service_level queue sales: service level 67% < 80% in 10:00–10:30 so far"
        " (2 of 3 calls answered in time)"
    )


def test_a_service_level_just_under_target_is_not_shown_as_meeting_it(tmp_path: Path):
    contracts = contracts_from(tmp_path, centre=CALLS)
    calls = [
        event(
            "centre",
            "call.answered",
            f"2026-11-24T10:{n // 2:02d}:{n % 2 * 30:02d}Z",
            call_id=f"a{n}",
            queue="sales",
            wait_seconds=10 if n < 39 else 25,
        )
        for n in range(49)
    ]
    said = lines(alerts(contracts, calls, until="2026-11-24T10:30:00.001Z"))
    assert any(
        "service level 79.6% < 80% in 10:00–10:30 (39 of 49 calls answered in time)" in s for s in said
    )


def test_service_alerts_say_burn_rates_with_their_windows_and_attainment_with_its_error_budget(
    tmp_path: Path,
):
    contracts = contracts_from(tmp_path, api=REQUESTS)
    batches = [
        event(
            "api",
            "request.batch",
            f"2026-11-24T10:{minute:02d}:30Z",
            service="checkout",
            total=100,
            good=90 if minute < 5 else 100,
            latency_good=80 if minute < 5 else 100,
        )
        for minute in range(10)
    ]
    said = lines(alerts(contracts, batches))
    assert said[:3] == [
        "NEAR_BREACH  api availability service checkout: burn rate 10× over 10m and 10× over 2m, above the"
        " threshold 5× (target 99%), observed 2026-11-24T10:01:00Z",
        "BREACH       api availability service checkout: availability 90% < 99% over 1h (90 of 100 requests"
        " good; error budget overspent by 900%), observed 2026-11-24T10:01:00Z",
        "BREACH       api latency service checkout: latency 80% < 95% over 1h (80 of 100 requests fast"
        " enough; error budget overspent by 300%), observed 2026-11-24T10:01:00Z",
    ]
    # A clean minute later the short window burns at 5, not above it: the rule recovers.
    assert (
        "RECOVERED    api availability service checkout: burn rate 8.33× over 10m and 5× over 2m, no longer"
        " both above the threshold 5× (target 99%), observed 2026-11-24T10:06:00Z"
    ) in said


def test_an_alert_of_a_versioned_contract_says_its_version():
    contracts = load_dir(REPO / "examples" / "versioned")
    created = event(
        "acme-renewal", "ticket.created", "2026-12-01T09:00:00+07:00", ticket_id="T-9", priority="P1"
    )
    said = lines(alerts(contracts, [created], until="2026-12-01T09:20:00+07:00"))
    assert said[-1].startswith(
        "BREACH       acme-renewal first_response ticket T-9 (P1, version gold-2027): target 15m"
    )


def test_colour_marks_only_the_kind():
    record = {
        "kind": "breach",
        "contract_id": "c",
        "objective": "first_response",
        "subject": {"kind": "ticket", "id": "T-1"},
        "target_seconds": 60,
        "elapsed_seconds": 60,
        "deadline": "2026-11-24T10:01:00Z",
        "observed_at": "2026-11-24T10:01:00Z",
        "details": {},
    }
    assert alert_line(record, colour=True) == (
        "\033[31mBREACH      \033[0m c first_response ticket T-1:"
        " target 1m, elapsed 1m, deadline 2026-11-24T10:01:00Z"
    )
