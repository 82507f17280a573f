"""The engine: the event-time clock of one partition, and the sources it asks what falls due.

``apply(event)`` first fires every threshold observed before the event's
time, then applies the event; ``advance(now)`` fires every threshold
observed before ``now``. Both return the alerts decided, in order. The
same calls in the same order give the same alerts, live or in replay.

What each kind of input decides is its source's (:mod:`sla_stream.engine.sources`): tickets,
items, calls, requests, each with its store and its schedule; the engine owns the clock,
rejects late events, and names in each alert the contract version it was measured against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

from sla_stream.engine.alerts import Alert
from sla_stream.engine.books import Books
from sla_stream.engine.calls import CallCentre
from sla_stream.engine.events import CallEvent, Event, ItemEvent, Rejected, RequestEvent
from sla_stream.engine.items import Item
from sla_stream.engine.ledger import Ledger
from sla_stream.engine.model import Contract
from sla_stream.engine.requests import Service
from sla_stream.engine.sources import NEVER, CallSource, ItemSource, RequestSource, Source, TicketSource
from sla_stream.engine.tickets import Ticket
from sla_stream.engine.time import seconds

TicketKey = tuple[str, str]
"""``(contract_id, ticket_id)``."""
ServiceKey = tuple[str, str]
"""``(contract_id, service)``."""
ItemKey = tuple[str, str]
"""``(contract_id, item_id)``."""

OK, DUPLICATE = "ok", "duplicate"


class Applied(NamedTuple):
    """What became of one event."""

    outcome: str
    """``ok`` or ``duplicate``."""
    alerts: list[Alert]
    """Alerts decided on the way: thresholds passed before the event, then the event's own."""


class Engine:
    """Decides alerts for the contracts of one partition (or of a whole replay).

    ``store`` maps ticket keys to tickets, ``centres`` contract ids to their
    calls, ``services`` ``(contract_id, service)`` to request counts, ``items`` item keys to
    items, ``ledgers`` contract ids to what each period counted; the live worker passes the
    one its partition's topic needs, backed by a changelog table, and the engine writes
    everything it changes back to it. ``clock`` is the latest event time seen; events more
    than ``allowed_lateness`` behind it are rejected as ``late``. ``position`` (the worker's)
    is the input offset the state is applied up to: tickets and items stored past it are held
    out of the schedule until the messages before theirs are processed again (``Ticket.below``).
    ``lazy``: read the stored tickets and items back later (``read_back``), not in the constructor.
    """

    def __init__(
        self,
        contracts: Callable[[str], Contract | None] | Mapping[str, Contract],
        store: MutableMapping[TicketKey, Ticket] | None = None,
        clock: int | None = None,
        allowed_lateness: int | None = None,
        centres: MutableMapping[str, CallCentre] | None = None,
        services: MutableMapping[ServiceKey, Service] | None = None,
        ledgers: MutableMapping[str, Ledger] | None = None,
        items: MutableMapping[ItemKey, Item] | None = None,
        position: int | None = None,
        lazy: bool = False,
    ) -> None:
        self._contract = contracts.get if isinstance(contracts, Mapping) else contracts
        self.books = Books(ledgers)
        tickets = {} if store is None else store
        self._tickets = TicketSource(self._contract, tickets, self.books, allowed_lateness, clock, position)
        self._items = ItemSource(
            self._contract, {} if items is None else items, self.books, allowed_lateness, clock, position
        )
        self._calls = CallSource(self._contract, {} if centres is None else centres, self.books, position)
        self._requests = RequestSource(self._contract, {} if services is None else services, self.books)
        #: At the same instant: ticket thresholds, then item thresholds, then call intervals and
        #: waits, then request minute boundaries.
        self._sources = (self._tickets, self._items, self._calls, self._requests)
        self.clock = clock
        self._lateness = allowed_lateness
        self._loading = True
        if not lazy:
            self.read_back()

    def read_back(self, limit: int | None = None) -> bool:
        """Read up to ``limit`` more stored tickets and items back into the schedule (all:
        ``None``); whether all are. An engine made ``lazy`` reads none at first, so the worker can
        read a large state a slice at a time; it reads the rest at once when it is first used."""
        if self._loading:
            self._loading = not (self._tickets.read_back(limit) and self._items.read_back(limit))
        return not self._loading

    @property
    def tickets(self) -> MutableMapping[TicketKey, Ticket]:
        return self._tickets.store

    @property
    def items(self) -> MutableMapping[ItemKey, Item]:
        return self._items.store

    @property
    def centres(self) -> MutableMapping[str, CallCentre]:
        return self._calls.store

    @property
    def services(self) -> MutableMapping[ServiceKey, Service]:
        return self._requests.store

    @property
    def ledgers(self) -> MutableMapping[str, Ledger]:
        return self.books.ledgers

    @property
    def opened(self) -> int:
        """How many times a ledger got a period it did not have (the closer watches it)."""
        return self.books.opened

    @property
    def once(self) -> bool:
        """Count each booking once however often messages are processed again (see :class:`Books`)."""
        return self.books.once

    @once.setter
    def once(self, value: bool) -> None:
        self.books.once = value

    @property
    def source(self) -> tuple[str, int]:
        """The input message being applied (topic, offset), with ``once``."""
        return self.books.source

    @source.setter
    def source(self, value: tuple[str, int]) -> None:
        self.books.source = value

    @property
    def allowed_lateness(self) -> int | None:
        """How far behind the clock an event may be; ``None``: any. Finished tickets and items
        leave the state only with one (see ``sources``): pass it to the constructor, so that
        those read back from a store are scheduled to leave too."""
        return self._lateness

    @allowed_lateness.setter
    def allowed_lateness(self, value: int | None) -> None:
        self._lateness = self._tickets.lateness = self._items.lateness = value

    @property
    def removed(self) -> int:
        """How many finished tickets and items left the state."""
        return self._tickets.removed + self._items.removed

    def contract_or_none(self, contract_id: str) -> Contract | None:
        return self._contract(contract_id)

    def contract(self, contract_id: str) -> Contract:
        found = self._contract(contract_id)
        if found is None:
            raise Rejected("unknown_contract", f"no contract with id {contract_id!r} is loaded")
        return found

    def apply(self, event: Event) -> Applied:
        """Apply one event at its own time; raises :class:`Rejected` for bad input."""
        if self._loading:
            self.read_back()
        contract = self.contract(event.contract_id)
        source = self._source_of(event)
        accepted = source.accept(contract, event, self._check_late)
        if accepted is None:
            # Its message was processed before the state as stored, and rejected then (a
            # dead letter, already sent): it moved nothing, and moves nothing now.
            return Applied(DUPLICATE, [])
        if not accepted:
            return self._duplicate(event)
        # Nothing below rejects: thresholds passed before the event fire first.
        alerts = self.advance(event.at)
        alerts += source.apply(contract, event, self._now(event.at))
        return Applied(OK, self._versions(alerts))

    def release(self, processed: int) -> None:
        """The worker's: every message before input offset ``processed`` is processed (again, after
        a stop); tickets, items and call centres stored up to there take deadlines again (see
        ``Ticket.below``)."""
        for held in (self._tickets, self._items, self._calls):
            held.release(processed)

    @property
    def unmeasured(self) -> set[str]:
        """Ids of contracts not loaded that have state here (read back, not scheduled): a reload
        that brings one of them in must read the state back again."""
        if self._loading:
            self.read_back()
        return (
            self._tickets.unmeasured
            | self._items.unmeasured
            | self._calls.unmeasured
            | (self._requests.unmeasured)
        )

    def _source_of(self, event: Event) -> Source[Any]:
        if isinstance(event, CallEvent):
            return self._calls
        if isinstance(event, RequestEvent):
            return self._requests
        if isinstance(event, ItemEvent):
            return self._items
        return self._tickets

    def _duplicate(self, event: Event) -> Applied:
        """A repeat of an event applied before moves the clock as the event did then (and fires
        what that fired): the worker, under at-least-once, processes messages again after a
        stop on a state that may have kept the things they changed but not the clock, and a
        clock left behind would take later events for late ones it can still place, or miss
        ones too late. In one uninterrupted run a repeat of an event is at or behind the clock (the
        event moved it), so it moves nothing there."""
        return Applied(DUPLICATE, self.advance(event.at))

    def _now(self, at: int) -> int:
        return self.clock if self.clock is not None else at

    def _check_late(self, at: int) -> None:
        if (
            self.allowed_lateness is not None
            and self.clock is not None
            and at < self.clock - self.allowed_lateness
        ):
            raise Rejected(
                "late",
                f"occurred_at is {seconds(self.clock - at)}s behind the clock,"
                f" more than the allowed lateness of {seconds(self.allowed_lateness)}s",
            )

    def advance(self, now: int) -> list[Alert]:
        """Move the clock to ``now``, firing everything observed before it, in time order (at the
        same instant: tickets, items, calls, then requests)."""
        if self._loading:
            self.read_back()
        if self.clock is None or now > self.clock:
            self.clock = now
        fired: list[Alert] = []
        lateness = self.allowed_lateness or 0
        while True:
            at, first = NEVER, None
            for source in self._sources:
                due = source.next_due()
                if due < at:
                    at, first = due, source
            if first is None or at >= now:
                return self._versions(fired)
            first.fire_next(fired, lateness)

    def next_due(self) -> int:
        """When ``advance`` next has something to do: the earliest entry of the schedules (an
        alert to fire, or one that went stale), :data:`NEVER` when there is none."""
        return min((source.next_due() for source in self._sources), default=NEVER)

    def _versions(self, alerts: list[Alert]) -> list[Alert]:
        """Name in each alert of a versioned contract the version it was measured against: the
        one in force at its ``observed_at`` (for a queue, at the start of its interval)."""
        for index, alert in enumerate(alerts):
            contract = self._contract(alert.contract_id)
            if contract is not None and contract.versions:
                at = alert.observed_at_ms if alert.interval_start_ms is None else alert.interval_start_ms
                details = {**alert.details, "contract_version": contract.at(at).version}
                alerts[index] = dataclasses.replace(alert, details=details)
        return alerts
