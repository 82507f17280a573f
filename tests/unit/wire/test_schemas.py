"""The JSON Schemas in schemas/ against their example documents, the ticket decoder and the renderers."""

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
from sla_stream.engine.events import Rejected
from sla_stream.replay import replay
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.alerts import alert_record, encode_alert
from sla_stream.wire.deadletter import deadletter_record, encode_deadletter
from sla_stream.wire.events import decode_event

SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "tests" / "schemas"
SPEC = REPO.parent / "shared" / "SPEC.md"
RECORDS = ["ticket-event", "call-event", "request-event", "alert", "deadletter", "penalty-statement"]
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
    patterns = {r: schema(r)["$defs"]["timestamp"]["pattern"] for r in RECORDS[:3]}
    assert len(set(patterns.values())) == 1, patterns


# (2) examples against their schemas


@pytest.mark.parametrize("path", examples("valid"), ids=example_id)
def test_valid_example_validates(path: Path) -> None:
    validator(path.parent.name).validate(json.loads(path.read_bytes()))


# What each invalid example is wrong about: a substring of the JSON path or message of an error the
# schema reports for it (inside the oneOf branch its `type` selects), so none fails by accident.
BLAME = {
    "alert/elapsed-not-a-number": "$.elapsed_seconds",
    "alert/missing-deadline": "'deadline' is a required property",
    "alert/naive-observed-at": "$.observed_at",
    "alert/near-breach-without-fraction": "'fraction' is a required property",
    "alert/queue-without-interval-start": "'interval_start' is a required property",
    "alert/retracted-without-retracts": "'retracts' is a required property",
    "alert/unknown-kind": "$.kind",
    "alert/unknown-subject-kind": "$.subject.kind",
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
    "penalty-statement/attained-above-one": "$.objectives[0].attained",
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


@pytest.mark.parametrize("record", RECORDS[:3])
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


def _expected_details() -> dict[str, str]:
    loaded: dict[str, str] = json.loads((EXAMPLES / "invalid" / "ticket-event" / EXPECTED).read_text())
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


def test_rendered_breach_is_the_spec_example() -> None:
    spec = json.loads((EXAMPLES / "valid" / "alert" / "spec-section-4.json").read_bytes())
    rendered = alert_record(_alert(BREACH), ms("2026-11-24T02:30:00.412Z"))
    assert {**rendered, "alert_id": "…"} == spec
    assert list(rendered) == list(spec)


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


# (6) the SPEC's own examples


@pytest.mark.parametrize(
    ("record", "name", "opening"),
    [
        ("alert", "spec-section-4", '{"v": 1, "alert_id": "…", "kind": "breach"'),
        ("penalty-statement", "spec-section-5", '{"v": 1, "statement_id": "acme-gold/2026-11"'),
    ],
)
def test_spec_example_validates(record: str, name: str, opening: str) -> None:
    path = EXAMPLES / "valid" / record / f"{name}.json"
    validator(record).validate(json.loads(path.read_bytes()))
    assert SPEC.exists(), f"{SPEC} is not beside the repository (CI clones it there)"
    blocks = re.findall(r"```json\n(.*?)```", SPEC.read_text(), flags=re.DOTALL)
    assert path.read_text() in blocks, f"{path.name} is not a verbatim copy of the SPEC's example"
    assert path.read_text().startswith(opening)


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
