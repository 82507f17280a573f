"""Input event records: JSON bytes validated into engine events, or a reason they are bad."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

import msgspec

from sla_stream.engine import events as ev
from sla_stream.engine.events import Rejected, TicketEvent
from sla_stream.engine.time import DAY_MS, MINUTE_MS, to_ms

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


# Each record makes its engine event itself (``event``), with every field in order:
# ``_new(TicketEvent, (...))`` is what the named tuple's own constructor does, without its
# Python-level call, once per message. ``occurred_at`` is read first, so a bad timestamp is
# the reason given before any other check.
_new = tuple.__new__


class TicketCreated(_Event, tag=ev.TICKET_CREATED, frozen=True):
    ticket_id: Text
    priority: Text
    status: Text | None = None

    def event(self) -> TicketEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.TICKET_CREATED
        return _new(
            TicketEvent,
            (self.event_id, kind, self.contract_id, at, self.ticket_id, self.priority, self.status),
        )


class TicketAgentReplied(_Event, tag=ev.TICKET_AGENT_REPLIED, frozen=True):
    ticket_id: Text

    def event(self) -> TicketEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.TICKET_AGENT_REPLIED
        return _new(TicketEvent, (self.event_id, kind, self.contract_id, at, self.ticket_id, None, None))


class TicketCustomerReplied(_Event, tag=ev.TICKET_CUSTOMER_REPLIED, frozen=True):
    ticket_id: Text

    def event(self) -> TicketEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.TICKET_CUSTOMER_REPLIED
        return _new(TicketEvent, (self.event_id, kind, self.contract_id, at, self.ticket_id, None, None))


class TicketStatusChanged(_Event, tag=ev.TICKET_STATUS_CHANGED, frozen=True):
    ticket_id: Text
    status: Text

    def event(self) -> TicketEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.TICKET_STATUS_CHANGED
        return _new(
            TicketEvent, (self.event_id, kind, self.contract_id, at, self.ticket_id, None, self.status)
        )


class TicketPriorityChanged(_Event, tag=ev.TICKET_PRIORITY_CHANGED, frozen=True):
    ticket_id: Text
    priority: Text

    def event(self) -> TicketEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.TICKET_PRIORITY_CHANGED
        return _new(
            TicketEvent, (self.event_id, kind, self.contract_id, at, self.ticket_id, self.priority, None)
        )


TicketRecord = (
    TicketCreated | TicketAgentReplied | TicketCustomerReplied | TicketStatusChanged | TicketPriorityChanged
)

Seconds = Annotated[float, msgspec.Meta(ge=0, le=10 * 365 * 86_400)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class CallQueued(_Event, tag=ev.CALL_QUEUED, frozen=True):
    call_id: Text
    queue: Text

    def event(self) -> ev.CallEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.CALL_QUEUED
        return _new(ev.CallEvent, (self.event_id, kind, self.contract_id, at, self.call_id, self.queue, None))


class CallAnswered(_Event, tag=ev.CALL_ANSWERED, frozen=True):
    call_id: Text
    queue: Text | None = None
    wait_seconds: Seconds | None = None

    def event(self) -> ev.CallEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.CALL_ANSWERED
        wait = None if self.wait_seconds is None else round(self.wait_seconds * 1000)
        return _new(ev.CallEvent, (self.event_id, kind, self.contract_id, at, self.call_id, self.queue, wait))


class CallAbandoned(_Event, tag=ev.CALL_ABANDONED, frozen=True):
    call_id: Text
    queue: Text | None = None
    wait_seconds: Seconds | None = None

    def event(self) -> ev.CallEvent:
        at = instant_ms(self.occurred_at, _AT)
        kind = ev.CALL_ABANDONED
        wait = None if self.wait_seconds is None else round(self.wait_seconds * 1000)
        return _new(ev.CallEvent, (self.event_id, kind, self.contract_id, at, self.call_id, self.queue, wait))


class Request(_Event, tag=ev.REQUEST, frozen=True):
    service: Text
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=10**12)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    ok: bool | None = None

    def event(self) -> ev.RequestEvent:
        at = instant_ms(self.occurred_at, _AT)
        if self.status is not None:
            good = int(self.status < 500)
        elif self.ok is not None:
            good = int(self.ok)
        else:
            raise Rejected("invalid", "a request needs `status` or `ok` - at `$`")
        fields = (
            self.event_id,
            ev.REQUEST,
            self.contract_id,
            at,
            self.service,
            1,
            good,
            self.latency_ms,
            None,
        )
        return _new(ev.RequestEvent, fields)


class RequestBatch(_Event, tag=ev.REQUEST_BATCH, frozen=True):
    service: Text
    total: Count
    good: Count
    latency_good: Count | None = None

    def event(self) -> ev.RequestEvent:
        at = instant_ms(self.occurred_at, _AT)
        if self.good > self.total:
            raise Rejected("invalid", "`good` is more than `total` - at `$.good`")
        if self.latency_good is not None and self.latency_good > self.total:
            raise Rejected("invalid", "`latency_good` is more than `total` - at `$.latency_good`")
        kind = ev.REQUEST_BATCH
        fields = (
            self.event_id,
            kind,
            self.contract_id,
            at,
            self.service,
            self.total,
            self.good,
            None,
            self.latency_good,
        )
        return _new(ev.RequestEvent, fields)


CallRecord = CallQueued | CallAnswered | CallAbandoned
RequestRecord = Request | RequestBatch

_decoder: msgspec.json.Decoder[TicketRecord | CallRecord | RequestRecord] = msgspec.json.Decoder(
    TicketRecord | CallRecord | RequestRecord
)
_ALL_TYPES = ev.TICKET_TYPES | ev.CALL_TYPES | ev.REQUEST_TYPES
_AT = "$.occurred_at"

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
    # Deeper JSON is rejected before it is decoded, except a message too short to be both a
    # record and too deep (_SHALLOW): decoded first, it is counted only if it is no record.
    short = len(data) < _SHALLOW
    if not short and _too_deep(data):
        raise Rejected("invalid", f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        record = _decoder.decode(data)
    except _DECODER_ERRORS as exc:
        if short and _too_deep(data):
            raise Rejected("invalid", f"JSON nested more than {MAX_DEPTH} levels deep") from None
        # Not a ticket, call or request record: with ``items`` an item event, or the reason
        # the decoder its type chooses gives; without, this decoder's reason.
        if items:
            return _item_or_reason(data)
        raise _rejected(exc, data, items) from None
    # Decoded as a built-in record, the message is one whatever ``items`` says (every ``type``
    # field it has names that record's type), so reading its type alone first would change nothing.
    return record.event()


_DECODER_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _item_or_reason(data: bytes) -> ev.Event:
    """:func:`decode_event` with ``items`` of a message the built-in records' decoder does not
    take: its ``type`` alone chooses the decoder, and that decoder's error is the reason."""
    try:
        kind = _typed.decode(data).type
        if kind is not None and kind.split(".", 1)[0] not in _BUILT_IN:
            return _item(_item_decoder.decode(data))
        record = _decoder.decode(data)
    except _DECODER_ERRORS as exc:
        raise _rejected(exc, data, True) from None
    return record.event()


def _rejected(exc: Exception, data: bytes, items: bool) -> Rejected:
    """The rejection of ``data`` for a decoder's error."""
    if isinstance(exc, msgspec.ValidationError):
        message = _field_named(str(exc), data) if items else str(exc)
        return Rejected("invalid", _explain(message, _ALL_TYPES, items))
    if isinstance(exc, msgspec.DecodeError):
        return Rejected("invalid", f"not JSON: {exc}")
    if isinstance(exc, UnicodeDecodeError):  # msgspec's, for bytes in a string that are not UTF-8
        return Rejected("invalid", f"not UTF-8: {exc.reason} at byte {exc.start}")
    return Rejected("invalid", "not JSON this decoder accepts: nested too deeply")  # RecursionError


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
    fields = [
        (name, value if isinstance(value, str) else _text(value))
        for name, value in record.items()
        if value is not None
    ]
    at = instant_ms(texts["occurred_at"], _AT)
    return _new(ev.ItemEvent, (texts["event_id"], kind, texts["contract_id"], at, tuple(sorted(fields))))


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


_SHALLOW = len('"event_id":"contract_id":"occurred_at":"type":') + 2 * (MAX_DEPTH + 1)
"""A message shorter than this that the built-in records' decoder takes is not too deep: it is
whole JSON with those four keys, and nested more than :data:`MAX_DEPTH` levels it would open
more than that many arrays or objects and close them too."""


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
    """Epoch ms of a strict RFC 3339 timestamp with an offset; raises :class:`Rejected` otherwise.

    Digits past the millisecond are dropped (floored). A timestamp whose date, hour and minute
    :func:`_instant` has accepted before is read from its parts (seconds, up to nine fraction
    digits, ``Z`` or an offset), each looked up in a table of the values the full check
    accepts; anything else goes to :func:`_instant`, which decides what is accepted and why not.
    """
    # Cut at fixed places: a timestamp of another shape puts a character no table has (a digit
    # where ``:`` or ``+`` should be) in some part, and goes to _instant.
    minute = _MINUTES.get(text[:16])
    second = _SECONDS.get(text[16:19])
    if text[-1:] in _ZULU:
        offset: int | None = 0
        fraction = text[19:-1]
    else:
        offset = _OFFSETS.get(text[-6:])
        fraction = text[19:-6]
    millis = _FRACTIONS.get(fraction)
    if millis is None:
        millis = _long_fraction(fraction)
    if minute is None or second is None or offset is None or millis is None:
        return _instant(text, where)
    return minute + second + millis + offset


def _long_fraction(fraction: str) -> int | None:
    """The ms of ``.1234`` to ``.123456789`` (digits past the third are dropped), or ``None``."""
    beyond = fraction[4:]
    if len(beyond) > 6 or not (beyond.isascii() and beyond.isdigit()):
        return None
    return _FRACTIONS.get(fraction[:4])


def _instant(text: str, where: str) -> int:
    """:func:`instant_ms` the full way: the pattern, :meth:`datetime.fromisoformat`, the range.
    Remembers the date, hour and minute of what it accepts, for :func:`instant_ms`."""
    if _RFC3339.fullmatch(text) is None:
        raise Rejected(
            "invalid",
            f"expected an RFC 3339 timestamp with a timezone offset, like 2026-11-24T09:00:00+07:00,"
            f" got {text!r} - at `{where}`",
        )
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise Rejected("invalid", f"{exc}: {text!r} - at `{where}`") from None
    at = to_ms(moment)
    if not _EARLIEST_MS <= at < _LATEST_MS:
        raise Rejected("invalid", f"{text!r} is out of range (years 2000 to 2199) - at `{where}`")
    # The wall-clock minute read as UTC; seconds, fraction and offset move it by less than a day.
    minute = (((moment.toordinal() - _EPOCH_DAY) * 24 + moment.hour) * 60 + moment.minute) * MINUTE_MS
    if _EARLIEST_MS + DAY_MS <= minute < _LATEST_MS - DAY_MS - MINUTE_MS:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        _MINUTES[text[:16]] = minute
    return at


# What instant_ms looks a timestamp's parts up in. Each table holds exactly the values of its
# part that the pattern (ASCII digits where it says [0-9]) and fromisoformat accept together
# with any other valid part, and _MINUTES only minutes far enough inside the range that any
# time in them, at any offset, is inside it: a timestamp read from them needs no other check.
_MINUTES: dict[str, int] = {}
"""``2026-11-24T09:00`` (date, ``T`` or ``t``, hour and minute) of a timestamp accepted, as epoch
ms of that wall-clock minute read as UTC; emptied when full (a flood of odd dates costs time,
not memory)."""
_MINUTES_KEPT = 4096
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_SECONDS = {f":{n:02}": n * 1000 for n in range(60)}
_ZULU = frozenset({"Z", "z"})
_OFFSETS = {
    f"{sign}{hours:02}:{minutes:02}": (-1 if sign == "+" else 1) * (hours * 60 + minutes) * MINUTE_MS
    for sign in "+-"
    for hours in range(24)
    for minutes in range(60)
}
"""``+07:00`` as the ms to add to the wall-clock time for UTC (fromisoformat also takes minutes
past 59, like ``+05:75``: those are left to :func:`_instant`)."""
_FRACTIONS = {"": 0} | {
    f".{n:0{width}}": n * 10 ** (3 - width) for width in (1, 2, 3) for n in range(10**width)
}
"""No fraction, or one to three digits, as ms: ``.5`` 500, ``.25`` 250, ``.125`` 125."""


def _explain(message: str, types: frozenset[str], items: bool = False) -> str:
    if message.endswith("- at `$.type`") and message.startswith("Invalid value"):
        return f"{message}: expected one of {', '.join(sorted(types))}"
    if message == "Object missing required field `type`":
        other = ", or an item type like shipment.delivered (kind.verb)" if items else ""
        return f"{message}: expected one of {', '.join(sorted(types))}{other}"
    return message
