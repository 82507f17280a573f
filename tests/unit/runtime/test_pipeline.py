"""The worker's per-message path without a broker: decode, engine, outputs, ticks, state in a table."""

from __future__ import annotations

import orjson
import pytest
from helpers import REPO, ms

from sla_stream.contracts import load_dir
from sla_stream.runtime.pipeline import Pipeline, tick_record
from sla_stream.settings import Settings

TOPIC = "sla.tickets"


def event(n: int, kind: str, at: str, **fields: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "type": kind,
            "contract_id": "demo-fast",
            "occurred_at": at,
            "ticket_id": "T-1",
            **fields,
        }
    )


@pytest.fixture
def pipeline() -> Pipeline:
    contracts = load_dir(REPO / "examples" / "contracts")
    return Pipeline(Settings(), contracts, table={}, clock=lambda: ms("2026-11-24T10:00:00Z"))


def test_a_tick_waits_until_the_events_already_in_kafka_are_processed(pipeline):
    created = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    # The tick was made when the partition's highwater was 1: one event not processed yet.
    assert pipeline.on_tick(0, tick_record(ms("2026-11-24T09:05:00Z"), {TOPIC: 1})) == []
    assert pipeline.on_event(TOPIC, 0, 0, b"demo-fast", created) == []
    outputs = pipeline.on_tick(0, tick_record(ms("2026-11-24T09:05:00Z"), {TOPIC: 1}))
    kinds = [orjson.loads(o.value)["kind"] for o in outputs]
    assert kinds == ["near_breach", "near_breach", "breach", "near_breach", "near_breach", "breach"]
    assert {o.topic for o in outputs} == {"sla.alerts"} and {o.key for o in outputs} == {b"demo-fast"}
    assert all(orjson.loads(o.value)["emitted_at"] == "2026-11-24T10:00:00.000Z" for o in outputs)


def test_state_lives_in_the_table_and_a_new_pipeline_resumes_from_it(pipeline):
    pipeline.on_event(
        TOPIC, 3, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P3")
    )
    table = pipeline.table
    assert any(key.startswith(b"t3\x1f") for key in table) and table[b"c3"] == b"%d" % ms(
        "2026-11-24T09:00:00Z"
    )
    # A restarted worker (a new pipeline over the same table) fires what came due meanwhile.
    resumed = Pipeline(Settings(), pipeline.contracts, table, clock=pipeline.clock)
    alerts = resumed.on_tick(3, tick_record(ms("2026-11-24T09:01:00.001Z"), {}))
    assert [(a["objective"], a["kind"]) for a in map(orjson.loads, (o.value for o in alerts))] == [
        ("first_response", "near_breach"),
        ("first_response", "near_breach"),
        ("first_response", "breach"),
    ]


def test_bad_input_becomes_one_dead_letter_record_with_the_reason_and_the_original_bytes(pipeline):
    (out,) = pipeline.on_event(TOPIC, 2, 41, b"demo-fast", b'{"type": "ticket.created"')
    record = orjson.loads(out.value)
    assert out.topic == "sla.deadletter" and out.key == b"demo-fast"
    assert record["reason"] == "invalid" and record["detail"].startswith("not JSON")
    assert (record["topic"], record["partition"], record["offset"]) == (TOPIC, 2, 41)
    assert record["value"] == '{"type": "ticket.created"'
    assert pipeline.counts.events == {(TOPIC, "invalid"): 1}
