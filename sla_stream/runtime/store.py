"""Engine state kept in a changelog-backed table: one entry per ticket, plus each partition's clock.

Keys carry the partition number first, so the state of one partition can be
found again without decoding anything after a restart or a rebalance.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import orjson

from sla_stream.engine.processor import TicketKey
from sla_stream.engine.tickets import Ticket

_SEP = b"\x1f"


class TableTickets(MutableMapping[TicketKey, Ticket]):
    """The tickets of one partition, stored as JSON in a bytes-to-bytes table.

    Decoded tickets are kept while the partition is owned, so the engine works on
    one object per ticket (as it does on a plain dict in replay). Changes reach the
    table, whose changelog is what survives a restart, only on :meth:`write`: the
    worker calls it once a message's alerts are on their way, so state never says
    an alert was sent before the alert is.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int) -> None:
        self._table = table
        self._prefix = b"t%d" % partition + _SEP
        self._decoded: dict[TicketKey, Ticket] = {}
        # Changed since the last write; None marks a deletion.
        self._changed: dict[TicketKey, Ticket | None] = {}

    def _key(self, key: TicketKey) -> bytes:
        return self._prefix + key[0].encode() + _SEP + key[1].encode()

    def __getitem__(self, key: TicketKey) -> Ticket:
        ticket = self._decoded.get(key)
        if ticket is None:
            if key in self._changed:
                raise KeyError(key)
            raw = self._table.get(self._key(key))
            if raw is None:
                raise KeyError(key)
            ticket = self._decoded[key] = Ticket.from_state(orjson.loads(raw))
        return ticket

    def __setitem__(self, key: TicketKey, ticket: Ticket) -> None:
        self._decoded[key] = ticket
        self._changed[key] = ticket

    def __delitem__(self, key: TicketKey) -> None:
        self[key]  # KeyError if absent
        self._decoded.pop(key, None)
        self._changed[key] = None

    def __iter__(self) -> Iterator[TicketKey]:
        stored = []
        for raw in list(self._table.keys()):
            if raw.startswith(self._prefix):
                contract_id, ticket_id = raw[len(self._prefix) :].split(_SEP, 1)
                stored.append((contract_id.decode(), ticket_id.decode()))
        changed = self._changed
        yield from (key for key in stored if key not in changed)
        yield from (key for key, ticket in changed.items() if ticket is not None)

    def write(self) -> int:
        """Put every change since the last write into the table; how many there were."""
        changed, self._changed = self._changed, {}
        for key, ticket in changed.items():
            raw_key = self._key(key)
            if ticket is not None:
                self._table[raw_key] = orjson.dumps(ticket.to_state())
            elif raw_key in self._table:
                del self._table[raw_key]
        return len(changed)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def clock_key(partition: int) -> bytes:
    """The table key of a partition's event-time clock."""
    return b"c%d" % partition


def load_clock(table: MutableMapping[bytes, bytes], partition: int) -> int | None:
    raw = table.get(clock_key(partition))
    return None if raw is None else int(raw)


def save_clock(table: MutableMapping[bytes, bytes], partition: int, clock: int) -> None:
    table[clock_key(partition)] = b"%d" % clock


def position_key(topic: str, partition: int) -> bytes:
    """The table key of the next input offset of ``topic`` not yet applied to the state."""
    return b"o%d" % partition + _SEP + topic.encode()


def load_position(table: MutableMapping[bytes, bytes], topic: str, partition: int) -> int | None:
    raw = table.get(position_key(topic, partition))
    return None if raw is None else int(raw)


def save_position(table: MutableMapping[bytes, bytes], topic: str, partition: int, offset: int) -> None:
    table[position_key(topic, partition)] = b"%d" % offset
