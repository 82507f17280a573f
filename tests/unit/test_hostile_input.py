"""Property tests: whatever a producer writes, the decoder and the worker's pipeline reject it
cleanly, keep it (in a dead-letter record) and go on; valid events around it are unaffected.

Together more than 10,000 generated messages; the fuzz run against a real worker is
``tests/integration/test_hostile_input_live.py``.
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import contracts_from, ms
from hostile import CONTRACT, CONTRACT_ID, MALFORMATIONS, malformed, ticket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_stream.engine.events import Event, Rejected
from sla_stream.engine.time import format_ts
from sla_stream.runtime.pipeline import Output, Pipeline, tick_record
from sla_stream.settings import Settings
from sla_stream.wire.deadletter import COPY_BYTES
from sla_stream.wire.events import MAX_MESSAGE_BYTES, decode_event

NOW = ms("2026-11-24T09:05:00Z")
REASONS = {"invalid", "unknown_contract", "late", "too_large"}
TOPICS = ("sla.tickets", "sla.calls", "sla.requests")
with tempfile.TemporaryDirectory() as _tmp:
    _CONTRACTS = contracts_from(Path(_tmp), fuzz=CONTRACT)
_many = settings(max_examples=3_000, deadline=None, suppress_health_check=list(HealthCheck))


@_many
@given(st.binary(max_size=500))
def test_the_decoder_rejects_any_bytes_it_cannot_use_and_never_fails(data: bytes) -> None:
    try:
        assert isinstance(decode_event(data), Event)
    except Rejected as rejected:
        assert rejected.reason in REASONS and rejected.detail


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["ticket.created", "request", "call.queued", "2026-11-24T09:00:00Z", CONTRACT_ID]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
_FIELDS = ["event_id", "type", "contract_id", "occurred_at", "ticket_id", "priority", "status", "call_id"]


@_many
@given(
    st.sampled_from(["ticket.created", "ticket.agent_replied", "call.queued", "request"]),
    st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=4),
)
def test_events_with_fields_of_any_json_value_are_decoded_or_rejected(
    kind: str, fields: dict[str, Any]
) -> None:
    try:
        decode_event(json.dumps({**ticket(kind, ticket_id="T", priority="P1"), **fields}).encode())
    except Rejected as rejected:
        assert rejected.reason in REASONS and rejected.detail


@settings(max_examples=4_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False), st.sampled_from(TOPICS), st.integers(0, 10**9))
def test_every_malformed_message_goes_to_the_dead_letter_topic_whole_with_a_reason(
    rng: random.Random, topic: str, offset: int
) -> None:
    pipeline = _pipeline()
    kind, key, value = malformed(rng)
    outputs = pipeline.on_event(topic, 3, offset, key, value)
    assert len(outputs) == 1, (kind, value, outputs)
    out = outputs[0]
    record = orjson.loads(out.value)
    assert (out.topic, out.key, out.partition) == ("sla.deadletter", key, 3)
    assert record["reason"] in REASONS and record["detail"], (kind, record)
    assert (record["topic"], record["partition"], record["offset"]) == (topic, 3, offset)
    assert _original(record, "value") == (None if value is None else value[:COPY_BYTES])
    assert _original(record, "key") == (None if key is None else key[:COPY_BYTES])
    assert record.get("value_bytes") == (len(value) if value and len(value) > COPY_BYTES else None)
    assert len(out.value) < 1_000_000  # the producer's request limit
    assert sum(pipeline.counts.events.values()) == 1 and (topic, "ok") not in pipeline.counts.events
    assert pipeline.position(topic, 3) == offset + 1


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_valid_events_among_malformed_ones_give_exactly_the_alerts_they_give_alone(
    rng: random.Random,
) -> None:
    valid = _valid_tickets(rng)
    mixed: list[tuple[bytes | None, bytes | None]] = []
    for event in valid:
        mixed += [malformed(rng)[1:] for _ in range(rng.randrange(4))]
        mixed.append(event)
    alone, among = _pipeline(), _pipeline()
    expected = _alerts(alone, valid)
    assert expected  # the unanswered tickets breach
    assert _alerts(among, mixed) == expected
    rejected = sum(n for (_, outcome), n in among.counts.events.items() if outcome != "ok")
    assert rejected == len(mixed) - len(valid)


def test_the_generator_makes_every_kind_of_malformation() -> None:
    rng = random.Random(7)
    kinds = {malformed(rng)[0] for _ in range(5_000)}
    assert kinds == {*MALFORMATIONS, "oversized"}


def _pipeline() -> Pipeline:
    return Pipeline(Settings(), _CONTRACTS, table={}, clock=lambda: NOW)


def _valid_tickets(rng: random.Random) -> list[tuple[bytes | None, bytes | None]]:
    events = []
    for n in range(rng.randrange(1, 8)):
        at = NOW - rng.randrange(60_000, 120_000)
        events.append(ticket("ticket.created", _at(at), event_id=f"c{n}", ticket_id=f"T{n}", priority="P1"))
        if n and rng.random() < 0.5:  # T0 is never answered
            reply = at + rng.randrange(1_000, 40_000)
            events.append(ticket("ticket.agent_replied", _at(reply), event_id=f"r{n}", ticket_id=f"T{n}"))
    events.sort(key=lambda e: str(e["occurred_at"]))
    return [(CONTRACT_ID.encode(), orjson.dumps(e)) for e in events]


def _alerts(pipeline: Pipeline, messages: list[tuple[bytes | None, bytes | None]]) -> list[str]:
    outputs: list[Output] = []
    for offset, (key, value) in enumerate(messages):
        outputs += pipeline.on_event("sla.tickets", 0, offset, key, value)
    outputs += pipeline.on_tick(0, tick_record(NOW, dict.fromkeys(Settings().source_topics, 0)))
    return [orjson.loads(o.value)["alert_id"] for o in outputs if o.topic == "sla.alerts"]


def _at(epoch_ms: int) -> str:
    return format_ts(epoch_ms, UTC)


def _original(record: dict[str, Any], name: str) -> bytes | None:
    text = record[name]
    if text is None:
        return None
    encoding = record[f"{name}_encoding"]
    return base64.b64decode(text) if encoding == "base64" else str(text).encode()


@pytest.mark.timeout(30)  # before the depth check was made linear, each took over 25 s
@pytest.mark.parametrize("run", [b'\\"', b'"\\'])
def test_adversarial_strings_for_the_depth_check_are_rejected_without_backtracking(run: bytes) -> None:
    message = b"[" * 65 + b'"' + run * 32_700
    with pytest.raises(Rejected) as rejected:
        decode_event(message[:MAX_MESSAGE_BYTES])
    assert rejected.value.reason == "invalid"


def test_a_dead_letter_record_fits_the_producers_limit_at_the_largest_message_size() -> None:
    # The worst case: a key of control characters (escaped six-fold in JSON) and a type that
    # the decoder quotes in its reason, each character of it escaped too.
    pipeline = Pipeline(Settings(max_message_bytes=1_000_000), _CONTRACTS, table={}, clock=lambda: NOW)
    value = json.dumps({"type": "\x85" * 490_000}, ensure_ascii=False).encode()
    (out,) = pipeline.on_event("sla.tickets", 0, 0, b"\x01" * 70_000, value)
    record = orjson.loads(out.value)
    assert record["reason"] == "invalid" and record["detail"].endswith("…")
    assert len(out.value) < 1_000_000


def test_a_copy_cut_inside_a_character_stays_text() -> None:
    value = b'{"type":"' + "é".encode() * 40_000 + b'"}'  # the cut falls inside an é
    (out,) = _pipeline().on_event("sla.tickets", 0, 0, None, value)
    record = orjson.loads(out.value)
    assert record["value_encoding"] == "utf-8" and record["value_truncated"] is True
    assert value.startswith(record["value"].encode()) and len(record["value"].encode()) == COPY_BYTES - 1
