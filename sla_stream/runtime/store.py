"""Engine state kept in a changelog-backed table: one entry per ticket, item, call centre, service
header, request minute and period ledger, plus each partition's clock, input positions and
the next period it settles per contract.

Keys carry the partition number first, so the state of one partition can be
found again without decoding anything after a restart or a rebalance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TypeVar

import orjson

from sla_stream.engine.calls import CallCentre
from sla_stream.engine.items import Item
from sla_stream.engine.ledger import Ledger
from sla_stream.engine.processor import TicketKey
from sla_stream.engine.requests import Service
from sla_stream.engine.tickets import Ticket

_SEP = b"\x1f"
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T", Ticket, Item)


class _TableTracked(MutableMapping[TicketKey, T]):
    """The tickets (or items) of one partition, stored as JSON in a bytes-to-bytes table.

    Changes reach the table, whose changelog is what survives a restart, only on
    :meth:`write`: the worker calls it once a message's alerts are on their way, so
    state never says an alert was sent before the alert is. Until then the changed
    tickets are held here, as objects.

    The tickets decoded or changed last (up to ``cache`` of them) are also kept decoded,
    so a busy ticket is not decoded again for each event; the others exist only as
    JSON in the table. An open ticket costs its JSON, not its objects.
    """

    _letter = b""

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int, cache: int = 4096) -> None:
        self._table = table
        self._prefix = self._letter + b"%d" % partition + _SEP
        self._cache = cache
        self._decoded: dict[TicketKey, T] = {}
        # Changed since the last write; None marks a deletion.
        self._changed: dict[TicketKey, T | None] = {}

    def _key(self, key: TicketKey) -> bytes:
        return self._prefix + key[0].encode() + _SEP + key[1].encode()

    def peek(self, key: TicketKey) -> T | None:
        """The ticket (``None`` if absent), read without keeping it decoded: for looking at
        every ticket (metrics) without pushing the busy ones out of the cache."""
        if key in self._changed:
            return self._changed[key]
        ticket = self._decoded.get(key)
        if ticket is None:
            raw = self._table.get(self._key(key))
            return None if raw is None else self._decode(orjson.loads(raw))
        return ticket

    def __getitem__(self, key: TicketKey) -> T:
        changed = self._changed
        if key in changed:
            ticket = changed[key]
            if ticket is None:
                raise KeyError(key)
            return ticket
        ticket = self._decoded.get(key)
        if ticket is None:
            raw = self._table.get(self._key(key))
            if raw is None:
                raise KeyError(key)
            ticket = self._decode(orjson.loads(raw))
            self._remember(key, ticket)
        return ticket

    def __setitem__(self, key: TicketKey, ticket: T) -> None:
        self._changed[key] = ticket
        self._remember(key, ticket)

    def __delitem__(self, key: TicketKey) -> None:
        self[key]  # KeyError if absent
        self._decoded.pop(key, None)
        self._changed[key] = None

    def _remember(self, key: TicketKey, ticket: T) -> None:
        """Keep ``ticket`` decoded, as the newest; forget the oldest beyond the cache size."""
        decoded = self._decoded
        decoded.pop(key, None)
        decoded[key] = ticket
        if len(decoded) > self._cache:
            del decoded[next(iter(decoded))]

    def __iter__(self) -> Iterator[TicketKey]:
        # Over a copy of the table's keys, taken at the first step: a large state is read back a
        # slice at a time, and the table may change in between (other partitions' writes).
        prefix, changed = self._prefix, self._changed
        start = len(prefix)
        for raw in [raw for raw in list(self._table.keys()) if raw.startswith(prefix)]:
            contract_id, ticket_id = raw[start:].split(_SEP, 1)
            key = (contract_id.decode(), ticket_id.decode())
            if key not in changed:
                yield key
        yield from [key for key, ticket in changed.items() if ticket is not None]

    def write(self, below: int = -1) -> int:
        """Put every change since the last write into the table; how many there were.

        ``below``: the input offset below which every message is processed (the partition's
        position), stored with each ticket written (``Ticket.below``): a stop can cut the write
        after the tickets and before the position, and a message processed again below it is
        then one this ticket as stored has been through."""
        changed, self._changed = self._changed, {}
        for key, ticket in changed.items():
            raw_key = self._key(key)
            if ticket is not None:
                state = ticket.to_state()
                if below >= 0 or ticket.below >= 0:
                    # Never lower: messages processed again after a stop start below it.
                    ticket.below = state["u"] = max(below, ticket.below)
                self._table[raw_key] = _dumps(state)
            elif raw_key in self._table:
                del self._table[raw_key]
        return len(changed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _decode(self, state: dict[str, Any]) -> T:
        raise NotImplementedError


class TableTickets(_TableTracked[Ticket]):
    """The tickets of one partition (see :class:`_TableTracked`)."""

    _letter = b"t"

    def _decode(self, state: dict[str, Any]) -> Ticket:
        ticket = Ticket.from_state(state)
        ticket.below = state.get("u", -1)
        return ticket


class TableItems(_TableTracked[Item]):
    """The items (parcels, claims) of one partition (see :class:`_TableTracked`)."""

    _letter = b"i"

    def _decode(self, state: dict[str, Any]) -> Item:
        item = Item.from_state(state)
        item.below = state.get("u", -1)
        return item


class _Loaded(MutableMapping[K, V]):
    """One partition's call centres or services: few and small, so all of them are decoded when
    the partition is assigned, and changes reach the table on :meth:`write`."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self._table = table
        self._values: dict[K, V] = {}
        self._below = -1
        self._changed: set[K] = set()
        self._removed: set[K] = set()

    def __getitem__(self, key: K) -> V:
        return self._values[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._values[key] = value
        self._changed.add(key)
        self._removed.discard(key)

    def __delitem__(self, key: K) -> None:
        del self._values[key]
        self._changed.discard(key)
        self._removed.add(key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def _keys_with(self, *prefixes: bytes) -> list[list[tuple[bytes, list[bytes]]]]:
        """Per prefix, the table's keys under it with the parts after it (one pass over the keys)."""
        under = [raw for raw in list(self._table.keys()) if raw.startswith(prefixes)]
        return [
            [(raw, raw[len(prefix) :].split(_SEP)) for raw in under if raw.startswith(prefix)]
            for prefix in prefixes
        ]

    def write(self, below: int = -1) -> int:
        """Put every change since the last write into the table; how many there were (``below``:
        see ``_TableTracked.write``)."""
        self._below = below
        changed, self._changed = self._changed, set()
        removed, self._removed = self._removed, set()
        for key in changed:
            self._put(key, self._values[key])
        for key in removed:
            self._drop(key)
        return len(changed) + len(removed)

    def _put(self, key: K, value: V) -> None:
        raise NotImplementedError

    def _drop(self, key: K) -> None:
        raise NotImplementedError


class _PerContract(_Loaded[str, V]):
    """One entry per contract id under a key prefix."""

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        prefix: bytes,
        decode: Callable[[bytes], V],
        encode: Callable[[V], bytes],
    ) -> None:
        super().__init__(table)
        self._prefix = prefix
        self._encode = encode
        for raw, (contract_id,) in self._keys_with(prefix)[0]:
            self._values[contract_id.decode()] = decode(table[raw])

    def _put(self, key: str, value: V) -> None:
        self._table[self._prefix + key.encode()] = self._encode(value)

    def _drop(self, key: str) -> None:
        self._table.pop(self._prefix + key.encode(), None)


class TableCentres(_PerContract[CallCentre]):
    """The call centres of one partition (one per contract), one JSON entry each, with the
    position each write covers (``CallCentre.below``, as ``Ticket.below``)."""

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int) -> None:
        prefix = b"k%d" % partition + _SEP
        super().__init__(table, prefix, _centre, self._stamped)

    def _stamped(self, centre: CallCentre) -> bytes:
        state = centre.to_state()
        if self._below >= 0 or centre.below >= 0:
            centre.below = state["u"] = max(self._below, centre.below)
        return _dumps(state)


def _centre(raw: bytes) -> CallCentre:
    state = orjson.loads(raw)
    centre = CallCentre.from_state(state)
    centre.below = state.get("u", -1)
    return centre


class TableServices(_Loaded[tuple[str, str], Service]):
    """The request services of one partition: a small header each, and one entry per minute
    bucket, so a write carries only the minutes that changed."""

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int) -> None:
        super().__init__(table)
        self._header = b"s%d" % partition + _SEP
        self._bucket = b"m%d" % partition + _SEP
        buckets: dict[tuple[str, str], dict[int, list[int]]] = {}
        through: dict[tuple[str, str], dict[int, int]] = {}
        buckets_found, headers_found = self._keys_with(self._bucket, self._header)
        for raw, (contract_id, service, minute) in buckets_found:
            counts = [int(n) for n in table[raw].split(b",")]
            key = (contract_id.decode(), service.decode())
            buckets.setdefault(key, {})[int(minute)] = counts[:4]
            if len(counts) > 4:
                through.setdefault(key, {})[int(minute)] = counts[4]
        for raw, (contract_id, service) in headers_found:
            key = (contract_id.decode(), service.decode())
            self._values[key] = Service.from_header(orjson.loads(table[raw]), buckets.get(key, {}))
            self._values[key].through = through.get(key, {})

    def _put(self, key: tuple[str, str], value: Service) -> None:
        # Buckets before the header: a stop between them leaves buckets ahead of the header's
        # batch ids, and a bucket knows the messages it counted (its offset); the other way
        # round a batch id would say a batch was counted that its bucket never got.
        name = key[0].encode() + _SEP + key[1].encode()
        for minute in sorted(value.dirty):
            counts = value.buckets.get(minute)
            raw = self._bucket + name + _SEP + b"%d" % minute
            if counts is not None:
                through = value.through.get(minute)
                self._table[raw] = b",".join(b"%d" % n for n in [*counts, *([through] if through else [])])
            else:
                self._table.pop(raw, None)
        self._table[self._header + name] = _dumps(value.header())
        value.dirty.clear()

    def _drop(self, key: tuple[str, str]) -> None:
        name = key[0].encode() + _SEP + key[1].encode()
        self._table.pop(self._header + name, None)
        for raw, _ in self._keys_with(self._bucket + name + _SEP)[0]:
            self._table.pop(raw, None)


class TableLedgers(_PerContract[Ledger]):
    """What one input topic's partition counted per contract and period, one JSON entry each."""

    def __init__(self, table: MutableMapping[bytes, bytes], topic: str, partition: int) -> None:
        prefix = b"l%d" % partition + _SEP + topic.encode() + _SEP
        super().__init__(table, prefix, lambda raw: Ledger.from_state(orjson.loads(raw)), _state)


class TableMarks(_PerContract[str]):
    """Per contract, the next period a partition has to settle (``YYYY-MM``)."""

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int) -> None:
        super().__init__(table, b"p%d" % partition + _SEP, bytes.decode, str.encode)


def _state(value: Ledger) -> bytes:
    return _dumps(value.to_state())


def _dumps(value: object) -> bytes:
    """``value`` as JSON, right-sized for keeping: orjson hands out bytes whose buffer is
    over-allocated (4 KiB at least since 3.12), which the table would hold for good."""
    return bytes(memoryview(orjson.dumps(value)))


Store = TableTickets | TableItems | TableCentres | TableServices
"""The table-backed state of one input topic's partition."""


def clock_key(topic: str, partition: int) -> bytes:
    """The table key of the event-time clock of ``topic``'s ``partition``."""
    return b"c%d" % partition + _SEP + topic.encode()


def load_clock(table: MutableMapping[bytes, bytes], topic: str, partition: int) -> int | None:
    raw = table.get(clock_key(topic, partition))
    return None if raw is None else int(raw)


def save_clock(table: MutableMapping[bytes, bytes], topic: str, partition: int, clock: int) -> None:
    table[clock_key(topic, partition)] = b"%d" % clock


def position_key(topic: str, partition: int) -> bytes:
    """The table key of the next input offset of ``topic`` not yet applied to the state."""
    return b"o%d" % partition + _SEP + topic.encode()


def load_position(table: MutableMapping[bytes, bytes], topic: str, partition: int) -> int | None:
    raw = table.get(position_key(topic, partition))
    return None if raw is None else int(raw)


def save_position(table: MutableMapping[bytes, bytes], topic: str, partition: int, offset: int) -> None:
    table[position_key(topic, partition)] = b"%d" % offset


def load_ticks(table: MutableMapping[bytes, bytes], topic: str, partition: int) -> tuple[int, int] | None:
    """How far the ticks of ``partition`` are handled: the next offset, and the newest tick time."""
    raw = table.get(position_key(topic, partition))
    if raw is None:
        return None
    offset, newest = raw.split(b",")
    return int(offset), int(newest)


def save_ticks(
    table: MutableMapping[bytes, bytes], topic: str, partition: int, offset: int, newest: int
) -> None:
    table[position_key(topic, partition)] = b"%d,%d" % (offset, newest)
