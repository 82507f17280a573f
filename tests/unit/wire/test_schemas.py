"""The JSON Schemas in schemas/ against their example documents, the decoder and the renderers
(that the reference pages show these examples, and that the engine gives them, is tests/unit/test_docs.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from helpers import REPO, ms
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from sla_stream.contracts import load_dir
from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RETRACTED, Alert
from sla_stream.engine.events import Event, ItemEvent, Rejected, source_of
from sla_stream.engine.processor import Engine
from sla_stream.replay import replay
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.alerts import alert_record, encode_alert
from sla_stream.wire.deadletter import deadletter_record, encode_deadletter
from sla_stream.wire.events import decode_event
from sla_stream.wire.statements import statement_record

SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "tests" / "schemas"
RECORDS = [
    "ticket-event",
    "call-event",
    "request-event",
    "item-event",
    "alert",
    "deadletter",
    "penalty-statement",
]
INPUTS = RECORDS[:4]
EXPECTED = "expected.json"
JAKARTA = ZoneInfo("Asia/Jakarta")

# RFC 3339 date-time, checked for real calendar dates: jsonschema only asserts "date-time" with the
# optional rfc3339-validator package, so the test brings its own checker.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    found = _RFC3339.fullmatch(instance)
    if found is None:
        return False
    year, month, day, hour, minute, second = (int(found[i]) for i in range(1, 7))
    datetime(year, month, day, hour, minute, second, tzinfo=UTC)  # ValueError for 2026-02-30 and such
    return found[9] is None or (int(found[9]) < 24 and int(found[10]) < 60)


def schema(record: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{record}.schema.json").read_text())
    return loaded


def validator(record: str, formats: bool = True) -> Draft202012Validator:
    return Draft202012Validator(schema(record), format_checker=FORMATS if formats else None)


def examples(kind: str, record: str | None = None) -> list[Path]:
    folders = [EXAMPLES / kind / record] if record else [EXAMPLES / kind / r for r in RECORDS]
    return sorted(p for folder in folders for p in folder.glob("*.json") if p.name != EXPECTED)


def example_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def epoch_ms(text: str) -> int:
    moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# (1) the schemas themselves


@pytest.mark.parametrize("record", RECORDS)
def test_schema_is_valid_draft_2020_12(record: str) -> None:
    loaded = schema(record)
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(loaded)


def test_every_schema_has_valid_and_invalid_examples() -> None:
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert names == sorted(f"{r}.schema.json" for r in RECORDS)
    for record in RECORDS:
        assert examples("valid", record), record
        assert examples("invalid", record), record


def test_input_events_share_one_timestamp_rule() -> None:
    patterns = {r: schema(r)["$defs"]["timestamp"]["pattern"] for r in INPUTS}
    assert len(set(patterns.values())) == 1, patterns


# (2) examples against their schemas


@pytest.mark.parametrize("path", examples("valid"), ids=example_id)
def test_valid_example_validates(path: Path) -> None:
    validator(path.parent.name).validate(json.loads(path.read_bytes()))


# What each invalid example is wrong about: a substring of the JSON path or message of an error the
# schema reports for it (inside the oneOf branch its `type` selects), so none fails by accident.
BLAME = {
    "alert/elapsed-not-a-number": "$.elapsed_seconds",
    "alert/item-near-breach-without-fraction": "'fraction' is a required property",
    "alert/missing-deadline": "'deadline' is a required property",
    "alert/naive-observed-at": "$.observed_at",
    "alert/near-breach-without-fraction": "'fraction' is a required property",
    "alert/queue-without-interval-start": "'interval_start' is a required property",
    "alert/retracted-without-retracts": "'retracts' is a required property",
    "alert/subject-kind-not-a-name": "$.subject.kind",
    "alert/unknown-kind": "$.kind",
    "alert/wrong-version": "$.v",
    "call-event/answered-negative-wait": "$.wait_seconds",
    "call-event/call-id-not-a-string": "$.call_id",
    "call-event/naive-timestamp": "$.occurred_at",
    "call-event/queued-without-queue": "'queue' is a required property",
    "call-event/unknown-type": "$.type",
    "deadletter/base64-value-not-base64": "$.value",
    "deadletter/missing-reason": "'reason' is a required property",
    "deadletter/missing-value": "'value' is a required property",
    "deadletter/negative-offset": "$.offset",
    "deadletter/unknown-encoding": "$.value_encoding",
    "item-event/built-in-type": "$.type",
    "item-event/empty-event-id": "$.event_id",
    "item-event/event-id-not-a-string": "$.event_id",
    "item-event/field-is-an-array": "$.scans",
    "item-event/field-is-an-object": "$.dimensions",
    "item-event/field-name-too-long": "x' is too long",
    "item-event/field-value-too-long": "$.note",
    "item-event/invalid-date": "$.occurred_at",
    "item-event/missing-contract-id": "'contract_id' is a required property",
    "item-event/missing-type": "'type' is a required property",
    "item-event/naive-timestamp": "$.occurred_at",
    "item-event/thirty-three-fields": "has too many properties",
    "item-event/type-uppercase": "$.type",
    "item-event/type-without-verb": "$.type",
    "penalty-statement/attained-above-one": "$.objectives[0].attained",
    "penalty-statement/compensation-negative-amount": "$.compensation[0].amount",
    "penalty-statement/compensation-without-count": "'count' is a required property",
    "penalty-statement/credit-over-100": "$.credit_percent",
    "penalty-statement/currency-lowercase": "$.credit.currency",
    "penalty-statement/missing-period-end": "'end' is a required property",
    "penalty-statement/objective-without-counts": "$.objectives[0]",
    "penalty-statement/version-without-span": "'from' is a required property",
    "request-event/batch-fractional-good": "$.good",
    "request-event/batch-negative-total": "$.total",
    "request-event/batch-without-service": "'service' is a required property",
    "request-event/request-status-not-an-integer": "$.status",
    "request-event/request-without-latency": "'latency_ms' is a required property",
    "request-event/request-without-status-or-ok": "'status' is a required property",
    "ticket-event/empty-event-id": "$.event_id",
    "ticket-event/event-id-too-long": "$.event_id",
    "ticket-event/invalid-date": "$.occurred_at",
    "ticket-event/missing-ticket-id": "'ticket_id' is a required property",
    "ticket-event/missing-type": "'type' is a required property",
    "ticket-event/naive-timestamp": "$.occurred_at",
    "ticket-event/offset-without-colon": "$.occurred_at",
    "ticket-event/space-instead-of-t": "$.occurred_at",
    "ticket-event/not-an-object": "is not of type 'object'",
    "ticket-event/priority-not-a-string": "$.priority",
    "ticket-event/status-changed-without-status": "'status' is a required property",
    "ticket-event/unknown-type": "$.type",
    "ticket-event/year-out-of-range": "$.occurred_at",
}


def blame(errors: Iterable[ValidationError]) -> list[str]:
    """Paths and messages of errors and their anyOf causes; in a oneOf, only the branch `type` selects."""
    found: list[str] = []
    for error in errors:
        found.append(f"{error.json_path} {error.message}")
        if error.validator == "anyOf":
            found.extend(blame(error.context or []))
        if error.validator != "oneOf":
            continue
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context or []:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        for subs in branches.values():
            if not any(list(s.relative_path) == ["type"] and s.validator == "const" for s in subs):
                found.extend(blame(subs))
    return found


def test_every_invalid_example_says_what_it_is_wrong_about() -> None:
    assert sorted(BLAME) == sorted(example_id(p) for p in examples("invalid"))


@pytest.mark.parametrize("path", examples("invalid"), ids=example_id)
def test_invalid_example_fails(path: Path) -> None:
    errors = list(validator(path.parent.name).iter_errors(json.loads(path.read_bytes())))
    assert errors, f"{path.name} should not validate"
    reported = blame(errors)
    assert any(BLAME[example_id(path)] in line for line in reported), reported


@pytest.mark.parametrize("record", INPUTS)
@pytest.mark.parametrize(
    "occurred_at", ["2026-11-24T09:00:00", "2026-11-24T09:00:00+0700", "2026-11-24 09:00:00Z"]
)
def test_timestamp_offset_enforced_without_format_assertion(record: str, occurred_at: str) -> None:
    # Validators assert "format" only when asked; the pattern must reject these on its own.
    document = json.loads(examples("valid", record)[0].read_bytes())
    document["occurred_at"] = occurred_at
    assert list(validator(record, formats=False).iter_errors(document))


# (3) the ticket decoder agrees with the ticket-event schema


@pytest.mark.parametrize("path", examples("valid", "ticket-event"), ids=example_id)
def test_decoder_accepts_valid_ticket_example(path: Path) -> None:
    document = json.loads(path.read_bytes())
    event = decode_event(path.read_bytes())
    assert event.event_id == document["event_id"]
    assert event.type == document["type"]
    assert event.contract_id == document["contract_id"]
    assert event.ticket_id == document["ticket_id"]
    assert event.at == epoch_ms(document["occurred_at"])
    assert event.priority == document.get("priority")
    assert event.status == document.get("status")


def test_decoder_instants_by_hand() -> None:
    folder = EXAMPLES / "valid" / "ticket-event"
    assert decode_event((folder / "created-offset.json").read_bytes()).at == 1_795_485_600_000
    assert decode_event((folder / "agent-replied-milliseconds.json").read_bytes()).at == 1_795_487_399_250
    assert decode_event((folder / "created-with-status-zulu.json").read_bytes()).at == 1_795_486_200_000


def _expected_details(record: str = "ticket-event") -> dict[str, str]:
    loaded: dict[str, str] = json.loads((EXAMPLES / "invalid" / record / EXPECTED).read_text())
    return loaded


def test_every_invalid_ticket_example_has_an_expected_detail() -> None:
    assert sorted(_expected_details()) == sorted(p.name for p in examples("invalid", "ticket-event"))


@pytest.mark.parametrize("path", examples("invalid", "ticket-event"), ids=example_id)
def test_decoder_rejects_invalid_ticket_example(path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        decode_event(path.read_bytes())
    assert caught.value.reason == "invalid"
    assert _expected_details()[path.name] in caught.value.detail


@pytest.mark.parametrize("path", examples("invalid", "ticket-event"), ids=example_id)
def test_rejected_ticket_makes_a_valid_deadletter_record(path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        decode_event(path.read_bytes())
    record = deadletter_record(
        caught.value.reason, caught.value.detail, "sla.tickets", 2, 41, b"acme-gold", path.read_bytes()
    )
    validator("deadletter").validate(orjson.loads(encode_deadletter(record)))
    assert record["value"] == path.read_text()


# (4) rendered alerts


def _alert(kind: str) -> Alert:
    if kind == BREACH:
        return Alert(
            kind=BREACH,
            contract_id="acme-gold",
            objective="first_response",
            subject_kind="ticket",
            subject_id="T-17",
            cycle=0,
            target_ms=1_800_000,
            elapsed_ms=1_800_000,
            deadline_ms=ms("2026-11-24T09:30:00+07:00"),
            observed_at_ms=ms("2026-11-24T09:30:00+07:00"),
            zone=JAKARTA,
        )
    if kind == NEAR_BREACH:
        return Alert(
            kind=NEAR_BREACH,
            contract_id="acme-gold",
            objective="next_reply",
            subject_kind="ticket",
            subject_id="T-17",
            cycle=2,
            target_ms=3_600_000,
            elapsed_ms=2_700_000,
            deadline_ms=ms("2026-11-24T14:15:00.500+07:00"),
            observed_at_ms=ms("2026-11-24T11:45:00.500+07:00"),
            zone=JAKARTA,
            fraction=0.75,
            details={"fraction": 0.75, "priority": "P1", "cycle": 2},
        )
    breach = _alert(BREACH)
    return Alert(
        kind=RETRACTED,
        contract_id="acme-gold",
        objective="first_response",
        subject_kind="ticket",
        subject_id="T-17",
        cycle=0,
        target_ms=1_800_000,
        elapsed_ms=1_750_000,
        deadline_ms=None,
        observed_at_ms=ms("2026-11-24T09:31:00+07:00"),
        zone=JAKARTA,
        details={"retracts": breach.alert_id, "priority": "P1"},
    )


@pytest.mark.parametrize("emitted_at", [None, ms("2026-11-24T02:30:00.412Z")], ids=["replay", "live"])
@pytest.mark.parametrize("kind", [BREACH, NEAR_BREACH, RETRACTED])
def test_rendered_alert_validates(kind: str, emitted_at: int | None) -> None:
    check = validator("alert")
    record = alert_record(_alert(kind), emitted_at)
    check.validate(record)
    check.validate(orjson.loads(encode_alert(_alert(kind), emitted_at)))
    assert ("emitted_at" in record) == (emitted_at is not None)


def test_every_queue_and_service_alert_of_simulated_traffic_validates() -> None:
    contracts = load_dir(REPO / "examples" / "contracts")
    traffic = Traffic(rate=0.01, call_rate=1, request_rate=20, incident_rate=0.02, seed=2)
    lines = []
    for n, (at, event) in enumerate(generate(contracts, ms("2026-11-24T06:00:00Z"), traffic), 1):
        if at >= ms("2026-11-24T09:00:00Z"):
            break
        lines.append(("events", n, orjson.dumps(event)))
    check = validator("alert")
    seen = set()
    for alert in replay(contracts, lines, allowed_lateness=300_000):
        if alert.subject_kind != "ticket":
            record = alert_record(alert, ms("2026-11-24T09:00:00Z"))
            check.validate(record)
            seen.add((record["subject"]["kind"], record["kind"]))
    assert seen == {
        (subject, kind) for subject in ("queue", "service") for kind in ("near_breach", "breach", "recovered")
    }


# (5) dead-letter records


def test_utf8_deadletter_validates() -> None:
    value = '{"event_id": "e1", "type": "ticket.créé"}'.encode()
    record = deadletter_record("invalid", "bad type", "sla.tickets", 0, 7, b"acme-gold", value)
    validator("deadletter").validate(orjson.loads(encode_deadletter(record)))
    assert record["value"] == value.decode()
    assert (record["key_encoding"], record["value_encoding"]) == ("utf-8", "utf-8")


@pytest.mark.parametrize("value", [b"\xff", b"\xfe\xff{\x00}", bytes(range(256))], ids=["1", "5", "256"])
def test_base64_deadletter_validates_and_round_trips(value: bytes) -> None:
    record = deadletter_record("invalid", "not JSON", "sla.tickets", 3, 12, b"\xc3\x28", value)
    validator("deadletter").validate(orjson.loads(encode_deadletter(record)))
    assert (record["key_encoding"], record["value_encoding"]) == ("base64", "base64")
    assert base64.b64decode(record["value"], validate=True) == value
    assert base64.b64decode(record["key"], validate=True) == b"\xc3\x28"


def test_deadletter_without_key_or_value_validates() -> None:
    record = deadletter_record("invalid", "message has no value", "events.jsonl", None, 3, None, None)
    validator("deadletter").validate(record)


# (4) the call and request decoder agrees with their schemas


@pytest.mark.parametrize(
    "path", examples("valid", "call-event") + examples("valid", "request-event"), ids=example_id
)
def test_decoder_accepts_valid_call_and_request_examples(path: Path) -> None:
    document = json.loads(path.read_bytes())
    event = decode_event(path.read_bytes())
    assert (event.event_id, event.type, event.at) == (
        document["event_id"],
        document["type"],
        epoch_ms(document["occurred_at"]),
    )
    if document["type"].startswith("call."):
        assert event.call_id == document["call_id"]
        assert event.queue == document.get("queue")
        wait = document.get("wait_seconds")
        assert event.wait_ms == (None if wait is None else round(wait * 1000))
    elif document["type"] == "request":
        status, ok = document.get("status"), document.get("ok")
        assert (event.total, event.good) == (1, int(status < 500 if status is not None else ok))
        assert event.latency_ms == document["latency_ms"]
    else:
        assert (event.total, event.good, event.latency_good) == (
            document["total"],
            document["good"],
            document.get("latency_good"),
        )


@pytest.mark.parametrize(
    "path",
    [p for p in examples("invalid", "call-event") + examples("invalid", "request-event")],
    ids=example_id,
)
def test_decoder_rejects_invalid_call_and_request_examples(path: Path) -> None:
    with pytest.raises(Rejected) as rejected:
        decode_event(path.read_bytes())
    assert rejected.value.reason == "invalid"


# (7) item events: the decoder of sla.items agrees with the item-event schema


def decode_item(data: bytes) -> Event:
    """An event as the worker decodes a message on ``sla.items`` (``Pipeline.on_event``): ticket,
    call and request types decode too, but do not belong there."""
    event = decode_event(data, items=True)
    if source_of(event) != "item":
        raise Rejected("invalid", f"a {event.type} event does not belong on sla.items")
    return event


def _as_text(value: str | int | float | bool) -> str:
    """How an item event carries a field's value: as the contract's rules compare it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


@pytest.mark.parametrize("path", examples("valid", "item-event"), ids=example_id)
def test_decoder_accepts_valid_item_example(path: Path) -> None:
    document = json.loads(path.read_bytes())
    event = decode_item(path.read_bytes())
    assert isinstance(event, ItemEvent)
    assert (event.event_id, event.type, event.contract_id, event.at) == (
        document.pop("event_id"),
        document.pop("type"),
        document.pop("contract_id"),
        epoch_ms(document.pop("occurred_at")),
    )
    assert event.fields == tuple(sorted((k, _as_text(v)) for k, v in document.items() if v is not None))


def test_item_decoder_by_hand() -> None:
    folder = EXAMPLES / "valid" / "item-event"
    delivered = decode_item((folder / "delivered-scalars-and-null.json").read_bytes())
    assert isinstance(delivered, ItemEvent)
    assert delivered.fields == (
        ("condition", "damaged"),
        ("parcel_id", "P-1"),
        ("pieces", "3"),
        ("reference", ""),
        ("signed", "true"),
        ("weight_kg", "2.5"),
    )
    assert delivered.at == 1_793_701_800_000
    claim = decode_item((folder / "kind-beginning-like-a-built-in.json").read_bytes())
    assert (claim.type, claim.at) == ("ticket_claim.filed", 1_793_700_000_123)


def test_every_invalid_item_example_has_an_expected_detail() -> None:
    assert sorted(_expected_details("item-event")) == sorted(
        p.name for p in examples("invalid", "item-event")
    )


@pytest.mark.parametrize("path", examples("invalid", "item-event"), ids=example_id)
def test_decoder_rejects_invalid_item_example(path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        decode_item(path.read_bytes())
    assert caught.value.reason == "invalid"
    assert _expected_details("item-event")[path.name] in caught.value.detail


@pytest.mark.parametrize("path", examples("invalid", "item-event"), ids=example_id)
def test_rejected_item_makes_a_valid_deadletter_record(path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        decode_item(path.read_bytes())
    record = deadletter_record(
        caught.value.reason, caught.value.detail, "sla.items", 0, 9, b"swiftparcel-eu", path.read_bytes()
    )
    validator("deadletter").validate(orjson.loads(encode_deadletter(record)))


ITEM = {
    "event_id": "s1",
    "type": "shipment.picked_up",
    "contract_id": "swiftparcel-eu",
    "occurred_at": "2026-11-02T09:00:00+01:00",
    "parcel_id": "P-1",
}
_BEYOND_DOUBLE = "__1e400__"
#: Changes to ITEM on the edges of what an item event may be.
ITEM_EDGES: dict[str, dict[str, Any]] = {
    "kind-of-64": {"type": "k" * 64 + ".filed"},
    "kind-of-65": {"type": "k" * 65 + ".filed"},
    "verb-of-64": {"type": "shipment." + "v" * 64},
    "verb-of-65": {"type": "shipment." + "v" * 65},
    "kind-with-digit-first": {"type": "1shipment.picked_up"},
    "verb-with-hyphen": {"type": "shipment.picked-up"},
    "verb-empty": {"type": "shipment."},
    "verb-of-dots": {"type": "shipment.."},
    "kind-call": {"type": "call.transferred"},
    "kind-request": {"type": "request.retried"},
    "kind-requests": {"type": "requests.retried"},
    "type-a-number": {"type": 7},
    "type-null": {"type": None},
    "contract-id-null": {"contract_id": None},
    "contract-id-of-257": {"contract_id": "c" * 257},
    "event-id-of-256": {"event_id": "e" * 256},
    "event-id-blank": {"event_id": " "},
    "occurred-at-a-number": {"occurred_at": 1_793_606_400},
    "occurred-at-1999": {"occurred_at": "1999-12-31T23:59:59Z"},
    "occurred-at-2200": {"occurred_at": "2200-01-01T00:00:00Z"},
    "occurred-at-9-fraction-digits": {"occurred_at": "2026-11-02T09:00:00.123456789+01:00"},
    "occurred-at-10-fraction-digits": {"occurred_at": "2026-11-02T09:00:00.1234567890+01:00"},
    "field-name-empty": {"": "x"},
    "field-name-of-64-non-ascii": {"ü" * 64: 1},
    "field-name-of-65-non-ascii": {"ü" * 65: 1},
    "value-of-256-non-bmp": {"note": "📦" * 256},
    "value-of-257-non-bmp": {"note": "📦" * 257},
    "value-negative-float": {"weight_kg": -1.5},
    "value-integer-beyond-64-bits": {"barcode": 10**30},
    "value-false": {"signed": False},
    "value-beyond-a-double": {"weight_kg": _BEYOND_DOUBLE},
    "fields-32-with-nulls": {f"f{i:02d}": None for i in range(31)},
    "fields-33-with-nulls": {f"f{i:02d}": None for i in range(32)},
}
# Disagreements the schema cannot help or a validator brings: kept here, and failing, so that
# a change to either side shows.
ITEM_EDGES_KNOWN = {
    "value-beyond-a-double": "JSON Schema has no limit for a number; the decoder rejects 1e400",
}


def _edge(name: str) -> bytes:
    text = json.dumps({**ITEM, **ITEM_EDGES[name]}, ensure_ascii=False)
    return text.replace(f'"{_BEYOND_DOUBLE}"', "1e400").encode()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=ITEM_EDGES_KNOWN[n]))
        if n in ITEM_EDGES_KNOWN
        else n
        for n in ITEM_EDGES
    ],
)
def test_item_schema_and_decoder_agree_on_the_edges(name: str) -> None:
    data = _edge(name)
    valid = validator("item-event").is_valid(json.loads(data))
    try:
        decode_item(data)
        accepted = True
    except Rejected:
        accepted = False
    assert accepted == valid, f"schema says {valid}, decoder {accepted}"


def test_item_edges_go_both_ways() -> None:
    verdicts = {validator("item-event").is_valid(json.loads(_edge(name))) for name in ITEM_EDGES}
    assert verdicts == {True, False}


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in examples("valid", "ticket-event")
        + examples("valid", "call-event")
        + examples("valid", "request-event")
    ],
    ids=example_id,
)
def test_replay_decoder_accepts_valid_ticket_call_and_request_examples(path: Path) -> None:
    assert decode_event(path.read_bytes(), items=True) == decode_event(path.read_bytes())


# (8) item alerts and statements with compensation, from the swiftparcel-eu example contract


def _swiftparcel() -> dict[str, Any]:
    return {k: c for k, c in load_dir(REPO / "examples" / "contracts").items() if k == "swiftparcel-eu"}


class Shipments:
    """shipment.* records for swiftparcel-eu with fresh event ids."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, verb: str, parcel: str, at: str, **fields: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "event_id": f"s{self.count}",
            "type": f"shipment.{verb}",
            "contract_id": "swiftparcel-eu",
            "occurred_at": at,
            "parcel_id": parcel,
            **fields,
        }


def _item_alerts() -> list[Alert]:
    engine = Engine(_swiftparcel(), allowed_lateness=24 * 3_600_000)
    shipment = Shipments()

    def apply(*records: dict[str, Any]) -> list[Alert]:
        return [a for r in records for a in engine.apply(decode_item(orjson.dumps(r))).alerts]

    alerts = apply(
        shipment("picked_up", "P-1", "2026-11-02T09:00:00+01:00", service_class="standard"),
        shipment("picked_up", "P-2", "2026-11-02T09:00:00+01:00", service_class="express"),
        shipment("claim_filed", "P-1", "2026-11-02T10:00:00+01:00"),
    )
    alerts += engine.advance(ms("2026-11-03T12:00:00+01:00"))
    # A customs hold of P-2 on Tuesday morning, reported late: its breach is retracted.
    alerts += apply(
        shipment("status_changed", "P-2", "2026-11-03T08:00:00+01:00", status="customs_hold"),
        shipment("status_changed", "P-2", "2026-11-03T10:00:00+01:00", status="in_transit"),
    )
    return alerts + engine.advance(ms("2026-11-05T12:00:00+01:00"))


@pytest.mark.parametrize("emitted_at", [None, ms("2026-11-05T11:00:00.250Z")], ids=["replay", "live"])
def test_rendered_item_alerts_validate(emitted_at: int | None) -> None:
    check = validator("alert")
    seen = set()
    for alert in _item_alerts():
        record = alert_record(alert, emitted_at)
        check.validate(record)
        check.validate(orjson.loads(encode_alert(alert, emitted_at)))
        assert record["subject"]["kind"] == "shipment"
        if record["objective"] == "delivery":
            assert record["details"]["service_class"] in ("standard", "express")
        seen.add((record["objective"], record["kind"]))
    assert seen == {
        ("delivery", "near_breach"),
        ("delivery", "breach"),
        ("delivery", "retracted"),
        ("claim_response", "near_breach"),
        ("claim_response", "breach"),
    }


def test_statement_with_compensation_validates() -> None:
    shipment = Shipments()
    records = [
        shipment("picked_up", "P-1", "2026-11-02T09:00:00+01:00", service_class="express"),
        shipment("picked_up", "P-2", "2026-11-02T09:00:00+01:00", service_class="standard"),
        shipment("delivered", "P-1", "2026-11-03T08:00:00+01:00", condition="damaged"),
        shipment("claim_filed", "P-1", "2026-11-03T10:00:00+01:00"),
        shipment("claim_answered", "P-1", "2026-11-05T11:00:00+01:00"),
        shipment("delivered", "P-2", "2026-11-05T08:00:00+01:00", condition="intact"),
    ]
    lines = [("items.jsonl", n, orjson.dumps(r)) for n, r in enumerate(records, 1)]
    found: list[dict[str, Any]] = []
    alerts = replay(
        _swiftparcel(),
        lines,
        ms("2026-12-03T00:00:00+01:00"),
        86_400_000,
        on_statement=lambda s: found.append(statement_record(s)),
    )
    assert {alert.subject_id for alert in alerts if alert.kind == BREACH} == {"P-1", "P-2"}
    [statement] = found
    validator("penalty-statement").validate(statement)
    assert [(o["objective"], o["met"], o["total"]) for o in statement["objectives"]] == [
        ("delivery", 1, 2),
        ("claim_response", 0, 1),
    ]
    assert statement["compensation"] == [
        {"reason": "late_delivery", "objective": "delivery", "count": 1, "each": 8.5, "amount": 8.5},
        {"reason": "damaged", "count": 1, "each": 25.0, "amount": 25.0},
    ]
    # What the schema cannot check: the fee's share (40000 EUR at 15 + 2 %) plus the compensation.
    fee_share = 40_000 * statement["credit_percent"] / 100
    assert statement["credit"]["amount"] == fee_share + sum(c["amount"] for c in statement["compensation"])
