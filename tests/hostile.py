"""Hostile input: messages a broken or malicious producer could write to the input topics.

Every message :func:`malformed` makes must be rejected, by the decoder or by the engine
(an unknown contract, a ticket never created), whatever the contract set holds, as long as
its ids do not start with ``x-``. Used by the decoder's property tests and by the fuzz run
against a real worker, so both throw the same kinds of input.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

#: The contract the valid events of a fuzz run belong to (tickets with P1 only, calls, requests).
CONTRACT_ID = "fuzz"
CONTRACT = """
version: 1
id: fuzz
timezone: UTC
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {targets: {P1: 20s}}
calls:
  service_level: {answer_within: 20s, target: 0.80, interval: 5m}
requests:
  availability: {target: 0.99, window: 1h}
"""

_STAMP = "2026-11-24T09:00:00+00:00"


def _dumps(value: Any) -> bytes:
    """JSON bytes (the standard library's, which writes integers of any size)."""
    return json.dumps(value, separators=(",", ":")).encode()


def ticket(kind: str, at: str = _STAMP, **fields: Any) -> dict[str, Any]:
    """A ticket event of the fuzz contract."""
    return {"event_id": "x-e", "type": kind, "contract_id": CONTRACT_ID, "occurred_at": at, **fields}


def _examples(rng: random.Random) -> dict[str, Any]:
    """A well-formed event of some type, for the malformations below to spoil."""
    n = rng.randrange(10**6)
    return rng.choice(
        [
            ticket("ticket.created", ticket_id=f"x-t{n}", priority="P1"),
            ticket("ticket.agent_replied", ticket_id=f"x-t{n}"),
            ticket("ticket.status_changed", ticket_id=f"x-t{n}", status="pending"),
            ticket("call.queued", call_id=f"x-c{n}", queue="support"),
            ticket("call.answered", call_id=f"x-c{n}", wait_seconds=3.5),
            ticket("request", service="api", latency_ms=12.5, status=200),
            ticket("request.batch", service="api", total=10, good=9),
        ]
    )


_REQUIRED = ("event_id", "type", "contract_id", "occurred_at")
_NOT_TEXT: list[Any] = [None, 0, -1, 1.5, True, [], {}, ["x"], {"a": 1}, 10**30]


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(0, 300))


def _truncated(rng: random.Random) -> bytes:
    whole = _dumps(_examples(rng))
    return whole[: rng.randrange(len(whole))]


def _wrong_type(rng: random.Random) -> bytes:
    event = _examples(rng)
    required = [*_REQUIRED, *(k for k in ("ticket_id", "call_id", "service") if k in event)]
    event[rng.choice(required)] = rng.choice(_NOT_TEXT)
    return _dumps(event)


def _missing_field(rng: random.Random) -> bytes:
    event = _examples(rng)
    del event[rng.choice(_REQUIRED)]
    return _dumps(event)


def _huge_number(rng: random.Random) -> bytes:
    number = rng.choice([b"1e400", b"-1e400", b"9" * 400, b"-5", b"NaN", b"Infinity", b"1e13"])
    event, field = rng.choice(
        [
            (ticket("request", service="api", status=200), "latency_ms"),
            (ticket("request", service="api", latency_ms=1), "status"),
            (ticket("request.batch", service="api", good=1), "total"),
            (ticket("call.answered", call_id="x-c"), "wait_seconds"),
        ]
    )
    return _dumps({**event, field: "<n>"}).replace(b'"<n>"', number)


def _huge_string(rng: random.Random) -> bytes:
    event = _examples(rng)
    event[rng.choice(["event_id", "contract_id"])] = "x" * rng.choice([257, 5_000, 60_000])
    return _dumps(event)


def _oversized(rng: random.Random) -> bytes:
    event = _examples(rng)
    event["padding"] = "p" * rng.randrange(66_000, 120_000)
    return _dumps(event)


def _deep(rng: random.Random) -> bytes:
    depth = rng.randrange(1_100, 20_000)
    open_, close = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = b"1" if open_ != b"[" else b""
    body = _dumps(_examples(rng))
    return body[:-1] + b',"nested":' + open_ * depth + inner + close * depth + b"}"


def _unknown_type(rng: random.Random) -> bytes:
    event = _examples(rng)
    event["type"] = rng.choice(["ticket.deleted", "call", "", "TICKET.CREATED", "request.batch.x"])
    return _dumps(event)


def _unknown_contract(rng: random.Random) -> bytes:
    event = _examples(rng)
    event["contract_id"] = f"x-nobody-{rng.randrange(1000)}"
    return _dumps(event)


def _bad_timestamp(rng: random.Random) -> bytes:
    event = _examples(rng)
    event["occurred_at"] = rng.choice(
        [
            "2026-11-24T09:00:00",  # naive
            "2026-11-24 09:00:00",
            "2026-11-24",
            "1764000000",
            "2026-13-45T99:00:00Z",
            "1850-01-01T00:00:00Z",
            "2026-11-24T09:00:00+0700",
            "yesterday",
        ]
    )
    return _dumps(event)


def _invalid_utf8(rng: random.Random) -> bytes:
    body = _dumps(_examples(rng))
    at = body.index(b"x-") + 2
    return (
        body[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + body[at:]
    )


def _never_created(rng: random.Random) -> bytes:
    """Well-formed, for a ticket nobody created: the engine rejects it."""
    return _dumps(ticket("ticket.agent_replied", ticket_id=f"x-ghost-{rng.randrange(10**6)}"))


def _undefined_priority(rng: random.Random) -> bytes:
    return _dumps(ticket("ticket.created", ticket_id=f"x-p{rng.randrange(10**6)}", priority="P9"))


def _not_an_object(rng: random.Random) -> bytes:
    return rng.choice([b"[]", b"null", b"42", b'"ticket.created"', b"true", b"{}", b"{", b"", b" "])


def _no_value(rng: random.Random) -> None:
    return None


MALFORMATIONS: dict[str, Callable[[random.Random], bytes | None]] = {
    "random_bytes": _random_bytes,
    "truncated": _truncated,
    "wrong_type": _wrong_type,
    "missing_field": _missing_field,
    "huge_number": _huge_number,
    "huge_string": _huge_string,
    "deep": _deep,
    "unknown_type": _unknown_type,
    "unknown_contract": _unknown_contract,
    "bad_timestamp": _bad_timestamp,
    "invalid_utf8": _invalid_utf8,
    "never_created": _never_created,
    "undefined_priority": _undefined_priority,
    "not_an_object": _not_an_object,
    "no_value": _no_value,
}


def malformed(rng: random.Random) -> tuple[str, bytes | None, bytes | None]:
    """``(kind, key, value)``: a message to reject; now and then a huge one, or an odd key."""
    kind = "oversized" if rng.random() < 0.002 else rng.choice(list(MALFORMATIONS))
    value = _oversized(rng) if kind == "oversized" else MALFORMATIONS[kind](rng)
    key = rng.choice([None, b"", CONTRACT_ID.encode(), rng.randbytes(8), b"\xff\xfe", b"k" * 1_000])
    if key is None and value is None:
        key = b"x-tombstone"  # aiokafka's producer refuses a record with neither
    return kind, key, value
