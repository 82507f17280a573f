"""JSON nested deeper than the decoder's limit is rejected as too deep, however short the message
and whatever else is wrong with it; at the limit it is decoded."""

from __future__ import annotations

import pytest

from sla_stream.engine.events import Rejected
from sla_stream.wire.events import MAX_DEPTH, decode_event

TOO_DEEP = f"invalid: JSON nested more than {MAX_DEPTH} levels deep"

# The shortest record of each built-in type (a one-letter timestamp passes the decoder; the
# event would be rejected for it), with an unknown field to nest in.
SHORTEST = [
    b'{"event_id":"e","contract_id":"c","occurred_at":"x","type":"request","service":"s","latency_ms":0,',
    b'{"event_id":"e","contract_id":"c","occurred_at":"x","type":"call.queued","call_id":"k","queue":"q",',
    b'{"event_id":"e","contract_id":"c","occurred_at":"x","type":"ticket.agent_replied","ticket_id":"t",',
]


def verdict(data: bytes, items: bool) -> str:
    try:
        return repr(decode_event(data, items=items))
    except Rejected as rejected:
        return f"{rejected.reason}: {rejected.detail}"


def nested(record: bytes, levels: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    """``record`` with a field nesting ``levels`` more arrays (or objects) inside its object."""
    inner = b"1" if open_ == b'{"a":' else b""
    return record + b'"":' + open_ * levels + inner + close * levels + b"}"


@pytest.mark.parametrize("items", [False, True])
@pytest.mark.parametrize("record", SHORTEST)
def test_the_shortest_records_one_level_too_deep_are_rejected_as_too_deep(record: bytes, items: bool) -> None:
    assert verdict(nested(record, MAX_DEPTH), items) == TOO_DEEP
    assert verdict(nested(record, MAX_DEPTH, b'{"a":', b"}"), items) == TOO_DEEP
    at_the_limit = verdict(nested(record, MAX_DEPTH - 1), items)
    assert at_the_limit != TOO_DEEP and "RFC 3339" in at_the_limit


@pytest.mark.parametrize("items", [False, True])
@pytest.mark.parametrize(
    "data",
    [
        b"[" * (MAX_DEPTH + 1),
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b'{"a":' * (MAX_DEPTH + 1),
        b'{"type":"request",' + b"[" * (MAX_DEPTH + 1),
        b"\xff" + b"{" * (MAX_DEPTH + 1),
    ],
)
def test_short_messages_nested_too_deep_are_rejected_as_too_deep_before_anything_else(
    data: bytes, items: bool
) -> None:
    assert verdict(data, items) == TOO_DEEP


@pytest.mark.parametrize("items", [False, True])
def test_brackets_inside_strings_do_not_count(items: bool) -> None:
    record = SHORTEST[0] + b'"note":"' + b"[{" * 200 + b'"}'
    assert verdict(record, items) != TOO_DEEP
