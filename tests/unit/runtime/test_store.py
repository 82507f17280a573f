"""Ticket state through the changelog encoding: a worker reading it back decides exactly what a
worker that never stopped decides (the same alerts, in the same order, as replay)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import orjson
import pytest
from helpers import REPO, ms

from sla_stream.contracts import load_dir
from sla_stream.engine.events import Event
from sla_stream.engine.processor import Engine, TicketKey
from sla_stream.engine.tickets import Ticket
from sla_stream.runtime.store import TableTickets
from sla_stream.simulate import Traffic, generate
from sla_stream.wire.events import decode_event


class Reencoded(MutableMapping[TicketKey, Ticket]):
    """Every read decodes afresh from JSON, like a worker that restarted before each event."""

    def __init__(self) -> None:
        self.raw: dict[TicketKey, bytes] = {}

    def __getitem__(self, key: TicketKey) -> Ticket:
        return Ticket.from_state(orjson.loads(self.raw[key]))

    def __setitem__(self, key: TicketKey, ticket: Ticket) -> None:
        self.raw[key] = orjson.dumps(ticket.to_state())

    def __delitem__(self, key: TicketKey) -> None:
        del self.raw[key]

    def __iter__(self) -> Iterator[TicketKey]:
        return iter(list(self.raw))

    def __len__(self) -> int:
        return len(self.raw)


def alerts_with(
    store: MutableMapping[TicketKey, Ticket] | None, seed: int, write: TableTickets | None = None
) -> list[str]:
    """The alerts of simulated traffic; ``write``: a table store written after every 7th event."""
    contracts = load_dir(REPO / "examples" / "contracts")
    engine = Engine(contracts, store)
    out = []
    for n, (_, event) in enumerate(
        generate(contracts, ms("2026-11-02T00:00:00Z"), Traffic(rate=0.2, seed=seed))
    ):
        if n == 3000:
            break
        assert isinstance(event, dict)
        out += [a.alert_id + a.kind for a in engine.apply(decode_event(orjson.dumps(event))).alerts]
        if write is not None and n % 7 == 0:
            write.write()
    return out + [a.alert_id + a.kind for a in engine.advance(ms("2026-12-31T00:00:00Z"))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_read_back_from_its_encoding_decides_the_same_alerts(seed: int) -> None:
    in_memory = alerts_with(None, seed)
    assert in_memory, "the traffic should breach something"
    assert alerts_with(Reencoded(), seed) == in_memory
    assert alerts_with(TableTickets({}, 0), seed) == in_memory


@pytest.mark.parametrize("cache", [0, 16])
def test_tickets_kept_only_as_json_beyond_the_cache_decide_the_same_alerts(cache: int) -> None:
    """Most tickets live only as JSON in the table once written (memory per open ticket);
    decoding them again on each use changes nothing."""
    in_memory = alerts_with(None, 5)
    store = TableTickets({}, 0, cache=cache)
    assert alerts_with(store, 5, write=store) == in_memory


def test_changes_reach_the_table_only_when_written_and_read_back_the_same() -> None:
    table: dict[bytes, bytes] = {}
    store = TableTickets(table, 2)
    contracts = load_dir(REPO / "examples" / "contracts")
    engine = Engine(contracts, store)
    for n, (_, event) in enumerate(
        generate(contracts, ms("2026-11-02T00:00:00Z"), Traffic(rate=0.2, seed=4))
    ):
        if n == 200:
            break
        assert isinstance(event, dict)
        engine.apply(decode_event(orjson.dumps(event)))
    assert table == {} and len(store) > 0
    written = store.write()
    assert written == len(store) and store.write() == 0
    reread = TableTickets(table, 2)
    assert sorted(reread) == sorted(store)
    assert all(reread[key].to_state() == store[key].to_state() for key in store)
    some = next(iter(store))
    del store[some]
    assert some not in store and some in reread
    store.write()
    assert some not in TableTickets(table, 2) and len(table) == written - 1


def test_tickets_decoded_again_are_not_scheduled_again() -> None:
    """A ticket read back from JSON has its thresholds in the schedule already: scheduling
    them again on every event would grow the schedule with the event rate, not the tickets."""
    contracts = load_dir(REPO / "examples" / "contracts")

    def ticket_event(event_id: str, type_: str, at: str, ticket: str, **fields: str) -> Event:
        record = {"event_id": event_id, "type": type_, "contract_id": "acme-gold", "occurred_at": at}
        return decode_event(orjson.dumps({**record, "ticket_id": ticket, **fields}))

    sizes = []
    for store in (None, TableTickets({}, 0, cache=0)):
        engine = Engine(contracts, store)
        for n in range(50):
            engine.apply(
                ticket_event(f"c{n}", "ticket.created", "2026-11-02T09:00:00Z", f"T{n}", priority="P3")
            )
        for n in range(1000):
            if store is not None:
                store.write()
            touched = ticket_event(
                f"s{n}", "ticket.status_changed", "2026-11-02T09:00:01Z", f"T{n % 50}", status="open"
            )
            engine.apply(touched)
        sizes.append(len(engine._tickets._due))
    assert sizes[1] == sizes[0]
