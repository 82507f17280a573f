"""Input event records: JSON bytes validated into engine events, or a reason they are bad."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec

from sla_stream.engine import events as ev
from sla_stream.engine.events import Rejected, TicketEvent
from sla_stream.engine.time import to_ms

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Instant = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
"""An RFC 3339 timestamp, checked strictly by :func:`instant_ms` (msgspec also takes ``+0700``)."""

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class _Event(msgspec.Struct, tag_field="type", frozen=True):
    event_id: Text
    contract_id: Text
    occurred_at: Instant


class TicketCreated(_Event, tag=ev.TICKET_CREATED, frozen=True):
    ticket_id: Text
    priority: Text
    status: Text | None = None


class TicketAgentReplied(_Event, tag=ev.TICKET_AGENT_REPLIED, frozen=True):
    ticket_id: Text


class TicketCustomerReplied(_Event, tag=ev.TICKET_CUSTOMER_REPLIED, frozen=True):
    ticket_id: Text


class TicketStatusChanged(_Event, tag=ev.TICKET_STATUS_CHANGED, frozen=True):
    ticket_id: Text
    status: Text


class TicketPriorityChanged(_Event, tag=ev.TICKET_PRIORITY_CHANGED, frozen=True):
    ticket_id: Text
    priority: Text


TicketRecord = (
    TicketCreated | TicketAgentReplied | TicketCustomerReplied | TicketStatusChanged | TicketPriorityChanged
)

Seconds = Annotated[float, msgspec.Meta(ge=0, le=10 * 365 * 86_400)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class CallQueued(_Event, tag=ev.CALL_QUEUED, frozen=True):
    call_id: Text
    queue: Text


class CallAnswered(_Event, tag=ev.CALL_ANSWERED, frozen=True):
    call_id: Text
    queue: Text | None = None
    wait_seconds: Seconds | None = None


class CallAbandoned(_Event, tag=ev.CALL_ABANDONED, frozen=True):
    call_id: Text
    queue: Text | None = None
    wait_seconds: Seconds | None = None


class Request(_Event, tag=ev.REQUEST, frozen=True):
    service: Text
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=10**12)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    ok: bool | None = None


class RequestBatch(_Event, tag=ev.REQUEST_BATCH, frozen=True):
    service: Text
    total: Count
    good: Count
    latency_good: Count | None = None


CallRecord = CallQueued | CallAnswered | CallAbandoned
RequestRecord = Request | RequestBatch

_decoder = msgspec.json.Decoder(TicketRecord | CallRecord | RequestRecord)
_ALL_TYPES = ev.TICKET_TYPES | ev.CALL_TYPES | ev.REQUEST_TYPES
_TAGS = {
    cls: str(cls.__struct_config__.tag)
    for cls in (*TicketRecord.__args__, *CallRecord.__args__, *RequestRecord.__args__)
}

# A timestamp this far outside the present is a producer bug, not an event.
_EARLIEST_MS = to_ms(datetime.fromisoformat("2000-01-01T00:00:00+00:00"))
_LATEST_MS = to_ms(datetime.fromisoformat("2200-01-01T00:00:00+00:00"))


#: The largest input message decoded by default (the worker's ``max_message_bytes``).
MAX_MESSAGE_BYTES = 65_536


def decode_event(data: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES, items: bool = False) -> ev.Event:
    """A ticket, call or request event from the bytes of an input message; raises :class:`Rejected`.

    Messages longer than ``max_bytes`` are rejected unread (reason ``too_large``): an event
    is a few hundred bytes, and a producer's runaway message must not cost the worker more
    than its length. With ``items``, a type of another kind (``shipment.delivered``) is an
    :class:`~sla_stream.engine.events.ItemEvent`, for a contract's ``items`` section.
    """
    if data is None:
        raise Rejected("invalid", "message has no value")
    if len(data) > max_bytes:
        raise Rejected("too_large", f"message of {len(data)} bytes; at most {max_bytes} are accepted")
    if _too_deep(data):
        raise Rejected("invalid", f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        if (
            items
            and (kind := _typed.decode(data).type) is not None
            and kind.split(".", 1)[0] not in _BUILT_IN
        ):
            return _item(_item_decoder.decode(data))
        record = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        message = _field_named(str(exc), data) if items else str(exc)
        raise Rejected("invalid", _explain(message, _ALL_TYPES, items)) from None
    except msgspec.DecodeError as exc:
        raise Rejected("invalid", f"not JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec's, for bytes in a string that are not UTF-8
        raise Rejected("invalid", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise Rejected("invalid", "not JSON this decoder accepts: nested too deeply") from None
    at = instant_ms(record.occurred_at, "$.occurred_at")
    kind = _TAGS[type(record)]
    match record:
        case CallQueued() | CallAnswered() | CallAbandoned():
            wait = getattr(record, "wait_seconds", None)
            return ev.CallEvent(
                record.event_id,
                kind,
                record.contract_id,
                at,
                record.call_id,
                record.queue,
                None if wait is None else round(wait * 1000),
            )
        case Request():
            if record.status is None and record.ok is None:
                raise Rejected("invalid", "a request needs `status` or `ok` - at `$`")
            good = record.status < 500 if record.status is not None else bool(record.ok)
            return ev.RequestEvent(
                record.event_id, kind, record.contract_id, at, record.service, 1, int(good), record.latency_ms
            )
        case RequestBatch():
            if record.good > record.total:
                raise Rejected("invalid", "`good` is more than `total` - at `$.good`")
            if record.latency_good is not None and record.latency_good > record.total:
                raise Rejected("invalid", "`latency_good` is more than `total` - at `$.latency_good`")
            return ev.RequestEvent(
                record.event_id,
                kind,
                record.contract_id,
                at,
                record.service,
                record.total,
                record.good,
                None,
                record.latency_good,
            )
    return TicketEvent(
        record.event_id,
        kind,
        record.contract_id,
        at,
        record.ticket_id,
        getattr(record, "priority", None),
        getattr(record, "status", None),
    )


_BUILT_IN = frozenset({"ticket", "call", "request"})


class _Typed(msgspec.Struct):
    """Only the ``type`` of a record (other fields are skipped): which decoder reads it."""

    type: str | None = None


_typed = msgspec.json.Decoder(_Typed)
_ITEM_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}\.[a-z0-9_.]{1,64}")
#: An item event's fields beside ``type``, ``event_id``, ``contract_id`` and ``occurred_at``.
MAX_ITEM_FIELDS = 32
Scalar = Annotated[str, msgspec.Meta(max_length=256)] | int | float | bool | None
#: The longest field name of an item event.
MAX_NAME = 64
_item_decoder = msgspec.json.Decoder(dict[Annotated[str, msgspec.Meta(max_length=MAX_NAME)], Scalar])


def _item(record: dict[str, str | int | float | bool | None]) -> ev.ItemEvent:
    kind = str(record.pop("type"))
    if _ITEM_TYPE.fullmatch(kind) is None:
        raise Rejected(
            "invalid", f"expected a type like shipment.delivered (kind.verb), got {kind!r} - at `$.type`"
        )
    texts = {}
    for name in ("event_id", "contract_id", "occurred_at"):
        value = record.pop(name, None)
        if not isinstance(value, str) or not value:
            raise Rejected("invalid", f"`{name}` must be a non-empty string - at `$.{name}`")
        texts[name] = value
    if len(record) > MAX_ITEM_FIELDS:
        raise Rejected("invalid", f"{len(record)} fields; an item event has at most {MAX_ITEM_FIELDS}")
    fields = tuple(sorted((name, _text(value)) for name, value in record.items() if value is not None))
    at = instant_ms(texts["occurred_at"], "$.occurred_at")
    return ev.ItemEvent(texts["event_id"], kind, texts["contract_id"], at, fields)


_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_scalar = msgspec.json.Decoder(Scalar)


def _field_named(message: str, data: bytes) -> str:
    """``message`` naming the field it is about, which msgspec does not for an item event (read
    as a dict): ``$.weight`` for its ``$[...]``, the name itself for its ``key``."""
    value, key = message.endswith(" - at `$[...]`"), message.endswith(" - at `key` in `$`")
    if not (value or key):
        return message
    try:
        fields = _raw_fields.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return message
    for name, raw in fields.items():
        if key and len(name) > MAX_NAME:
            return f"field name {name[:MAX_NAME]!r}... is longer than {MAX_NAME} characters - at `$`"
        if not value:
            continue
        try:
            _scalar.decode(raw)
        except msgspec.ValidationError:
            return f"{message.removesuffix('`$[...]`')}`$.{name}`" if len(name) <= MAX_NAME else message
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
    return message


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


#: Deeper JSON is rejected before it is decoded: the decoder recurses, so how deep it could go
#: would depend on the interpreter's recursion limit and stack, not on the message.
MAX_DEPTH = 64
# Possessive, and an unterminated string runs to the end: linear on any input (a plain
# ``(?:...)*"`` backtracked quadratically over a 64 KiB run of escaped quotes: 38 s).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def _too_deep(data: bytes) -> bool:
    """Whether ``data`` opens more than :data:`MAX_DEPTH` arrays or objects inside each other
    (outside strings); an event needs three."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b"", data)):
        depth += 1 if bracket[0] in (b"[", b"{") else -1
        if depth > MAX_DEPTH:
            return True
    return False


def instant_ms(text: str, where: str) -> int:
    """Epoch ms of a strict RFC 3339 timestamp with an offset; raises :class:`Rejected` otherwise."""
    if _RFC3339.fullmatch(text) is None:
        raise Rejected(
            "invalid",
            f"expected an RFC 3339 timestamp with a timezone offset, like 2026-11-24T09:00:00+07:00,"
            f" got {text!r} - at `{where}`",
        )
    try:
        at = to_ms(datetime.fromisoformat(text.upper()))
    except ValueError as exc:
        raise Rejected("invalid", f"{exc}: {text!r} - at `{where}`") from None
    if not _EARLIEST_MS <= at < _LATEST_MS:
        raise Rejected("invalid", f"{text!r} is out of range (years 2000 to 2199) - at `{where}`")
    return at


def _explain(message: str, types: frozenset[str], items: bool = False) -> str:
    if message.endswith("- at `$.type`") and message.startswith("Invalid value"):
        return f"{message}: expected one of {', '.join(sorted(types))}"
    if message == "Object missing required field `type`":
        other = ", or an item type like shipment.delivered (kind.verb)" if items else ""
        return f"{message}: expected one of {', '.join(sorted(types))}{other}"
    return message
