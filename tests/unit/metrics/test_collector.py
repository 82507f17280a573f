"""The metrics a scrape returns (docs/reference/metrics.md), read from a fresh registry per test."""

from __future__ import annotations

import orjson
import pytest
from helpers import REPO, ms
from prometheus_client import generate_latest

from sla_stream.contracts import load_dir
from sla_stream.metrics import conventions
from sla_stream.metrics.collector import registry_for
from sla_stream.runtime.pipeline import Pipeline, tick_record
from sla_stream.settings import Settings

NOW = ms("2026-11-24T10:00:00Z")


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(Settings(), load_dir(REPO / "examples" / "contracts"), table={}, clock=lambda: NOW)


def send(pipeline: Pipeline, topic: str, offset: int, **event: object) -> list:
    event.setdefault("event_id", f"e{topic}{offset}")
    event.setdefault("contract_id", "demo-fast")
    return pipeline.on_event(topic, 0, offset, b"demo-fast", orjson.dumps(event))


def test_ticket_clocks_are_counted_by_state_and_the_next_deadline_is_read_at_scrape(pipeline):
    registry = registry_for(pipeline)
    send(
        pipeline,
        "sla.tickets",
        0,
        type="ticket.created",
        occurred_at="2026-11-24T09:59:50Z",
        ticket_id="T-1",
        priority="P1",
    )
    send(
        pipeline,
        "sla.tickets",
        1,
        type="ticket.created",
        occurred_at="2026-11-24T09:59:55Z",
        ticket_id="T-2",
        priority="P3",
    )
    send(
        pipeline,
        "sla.tickets",
        2,
        type="ticket.status_changed",
        occurred_at="2026-11-24T09:59:56Z",
        ticket_id="T-2",
        status="pending",
    )
    value = registry.get_sample_value
    labels = {"contract": "demo-fast", "objective": "first_response"}
    assert value("sla_open_clocks", {**labels, "state": "running"}) == 2
    assert (
        value("sla_open_clocks", {"contract": "demo-fast", "objective": "resolution", "state": "paused"}) == 1
    )
    # The clock is the latest event time (09:59:56); T-1's 20 s first response is due at 10:00:10.
    assert value("sla_next_deadline_seconds", labels) == 14
    assert value("sla_events_total", {"topic": "sla.tickets", "outcome": "ok"}) == 3
    # Lag: the wall clock (10:00:00) minus each event's time.
    assert value("sla_event_lag_seconds_count", {"topic": "sla.tickets"}) == 3
    assert value("sla_event_lag_seconds_sum", {"topic": "sla.tickets"}) == 10 + 5 + 4
    # T-1 passes half its target (10 s) at 10:00:00 and is at risk from then on.
    send(
        pipeline,
        "sla.tickets",
        3,
        type="ticket.created",
        occurred_at="2026-11-24T10:00:01Z",
        ticket_id="T-3",
        priority="P3",
    )
    assert value("sla_open_clocks", {**labels, "state": "at_risk"}) == 1
    assert value("sla_alerts_total", {**labels, "kind": "near_breach"}) == 1
    assert value("sla_alert_delay_seconds_count", {"kind": "near_breach"}) == 1


def test_request_objectives_give_compliance_budget_and_burn_rates(pipeline):
    registry = registry_for(pipeline)
    for minute in range(3):
        send(
            pipeline,
            "sla.requests",
            minute,
            type="request.batch",
            occurred_at=f"2026-11-24T09:5{minute}:30Z",
            service="api",
            total=1000,
            good=990,
            latency_good=1000,
        )
    value = registry.get_sample_value
    availability = {"contract": "demo-fast", "objective": "availability"}
    # Boundaries 09:51 and 09:52 are evaluated: the hour holds two minutes at 1% errors.
    assert value("sla_compliance_ratio", availability) == pytest.approx(0.99)
    assert value("sla_error_budget_remaining_ratio", availability) == pytest.approx(0.0)
    assert value("sla_burn_rate", {**availability, "window": "10m"}) == pytest.approx(1.0)
    assert value("sla_burn_rate", {**availability, "window": "2m"}) == pytest.approx(1.0)
    assert value("sla_compliance_ratio", {"contract": "demo-fast", "objective": "latency"}) == 1.0
    # This month so far is exactly at the 0.99 tier's limit: no credit yet.
    assert value("sla_penalty_credit_ratio", {"contract": "demo-fast"}) == 0.0


def test_the_current_call_interval_counts_calls_still_waiting_past_answer_within(pipeline):
    registry = registry_for(pipeline)
    send(
        pipeline,
        "sla.calls",
        0,
        type="call.queued",
        occurred_at="2026-11-24T09:56:00Z",
        call_id="a",
        queue="sales",
    )
    send(pipeline, "sla.calls", 1, type="call.answered", occurred_at="2026-11-24T09:56:05Z", call_id="a")
    send(
        pipeline,
        "sla.calls",
        2,
        type="call.queued",
        occurred_at="2026-11-24T09:56:10Z",
        call_id="b",
        queue="sales",
    )
    level = {"contract": "demo-fast", "queue": "sales"}
    assert registry.get_sample_value("sla_call_service_level_ratio", level) == 1.0
    # b has waited past 20 s once the clock passes 09:56:30: one of two in time.
    send(
        pipeline,
        "sla.calls",
        3,
        type="call.queued",
        occurred_at="2026-11-24T09:56:31Z",
        call_id="c",
        queue="other",
    )
    assert registry.get_sample_value("sla_call_service_level_ratio", level) == 0.5
    assert (
        registry.get_sample_value(
            "sla_compliance_ratio", {"contract": "demo-fast", "objective": "service_level"}
        )
        == 1.0
    )


def test_queues_past_the_per_contract_limit_are_counted_not_exported(pipeline, monkeypatch):
    monkeypatch.setattr(conventions, "MAX_QUEUES_PER_CONTRACT", 2)
    registry = registry_for(pipeline)
    for n, queue in enumerate(["a", "b", "c", "d"]):
        send(
            pipeline,
            "sla.calls",
            2 * n,
            type="call.queued",
            occurred_at="2026-11-24T09:56:00Z",
            call_id=queue,
            queue=queue,
        )
        send(
            pipeline,
            "sla.calls",
            2 * n + 1,
            type="call.answered",
            occurred_at="2026-11-24T09:56:05Z",
            call_id=queue,
        )
    text = generate_latest(registry).decode()
    assert 'queue="a"' in text and 'queue="b"' in text and 'queue="c"' not in text
    assert registry.get_sample_value("sla_metric_series_dropped") == 2


def test_every_spec_metric_is_exposed_with_prometheus_names(pipeline):
    text = generate_latest(registry_for(pipeline)).decode()
    for name, kind in [
        ("sla_compliance_ratio", "gauge"),
        ("sla_error_budget_remaining_ratio", "gauge"),
        ("sla_burn_rate", "gauge"),
        ("sla_open_clocks", "gauge"),
        ("sla_next_deadline_seconds", "gauge"),
        ("sla_call_service_level_ratio", "gauge"),
        ("sla_alerts_total", "counter"),
        ("sla_events_total", "counter"),
        ("sla_event_lag_seconds", "histogram"),
        ("sla_alert_delay_seconds", "histogram"),
    ]:
        assert f"# TYPE {name} {kind}" in text, name


def test_consumer_lag_is_the_highwater_less_what_the_state_has_applied(pipeline):
    registry = registry_for(pipeline)
    send(
        pipeline,
        "sla.tickets",
        41,
        type="ticket.created",
        occurred_at="2026-11-24T09:59:50Z",
        ticket_id="T-1",
        priority="P1",
    )
    pipeline.highwater = lambda topic, partition: {("sla.tickets", 0): 50}.get((topic, partition))
    assert (
        registry.get_sample_value("sla_consumer_lag_messages", {"topic": "sla.tickets", "partition": "0"})
        == 8
    )


def test_ticket_compliance_is_met_over_decided_this_month(pipeline):
    registry = registry_for(pipeline)
    created = {"type": "ticket.created", "occurred_at": "2026-11-24T09:58:00Z", "priority": "P1"}
    send(pipeline, "sla.tickets", 0, ticket_id="T-1", **created)
    send(pipeline, "sla.tickets", 1, ticket_id="T-2", **created)
    send(pipeline, "sla.tickets", 2, ticket_id="T-3", **created)
    # T-1 answered in 10 s and T-3 in 19 s (met); T-2 never: its 20 s pass at 09:58:20 (breached),
    # which T-4's creation a minute later puts behind the clock.
    send(
        pipeline,
        "sla.tickets",
        3,
        type="ticket.agent_replied",
        occurred_at="2026-11-24T09:58:10Z",
        ticket_id="T-1",
    )
    send(
        pipeline,
        "sla.tickets",
        4,
        type="ticket.agent_replied",
        occurred_at="2026-11-24T09:58:19Z",
        ticket_id="T-3",
    )
    send(
        pipeline,
        "sla.tickets",
        5,
        type="ticket.created",
        occurred_at="2026-11-24T09:59:00Z",
        ticket_id="T-4",
        priority="P3",
    )
    labels = {"contract": "demo-fast", "objective": "first_response"}
    assert registry.get_sample_value("sla_compliance_ratio", labels) == pytest.approx(2 / 3)
    # Under the 0.9 first-response tier: the month would credit 10% if it closed now.
    assert registry.get_sample_value("sla_penalty_credit_ratio", {"contract": "demo-fast"}) == 0.1
    assert registry.get_sample_value("sla_penalty_statements_total", {"contract": "demo-fast"}) is None
    pipeline.clock = lambda: ms("2026-12-01T00:10:00Z")
    # November closes.
    pipeline.on_tick(0, tick_record(ms("2026-12-01T00:05:00Z"), dict.fromkeys(Settings().source_topics, 0)))
    assert registry.get_sample_value("sla_penalty_statements_total", {"contract": "demo-fast"}) == 1
    # December has counted nothing yet: no projection until it does.
    assert registry.get_sample_value("sla_penalty_credit_ratio", {"contract": "demo-fast"}) is None
