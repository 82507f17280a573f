"""The engine's four sources of input (tickets, items, calls, requests) behind one interface.

Each :class:`Source` keeps its state per key in a store (a dict in replay, a changelog table
in the worker) and its own schedule of what falls due: ticket and item thresholds and version
changes, call intervals and waits, request minute boundaries. The engine
(:class:`~sla_stream.engine.processor.Engine`) owns the event-time clock and asks each source
in turn; what a source decides about periods it books in the :class:`~sla_stream.engine.books.Books`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Generic, Protocol, TypeVar

from sla_stream.engine import calls, items, requests, tickets
from sla_stream.engine.alerts import Alert
from sla_stream.engine.books import Books
from sla_stream.engine.calls import CallCentre
from sla_stream.engine.events import CALL_QUEUED, CallEvent, ItemEvent, Rejected, RequestEvent, TicketEvent
from sla_stream.engine.items import Item
from sla_stream.engine.ledger import Ledger
from sla_stream.engine.model import Contract
from sla_stream.engine.recent import RecentIds
from sla_stream.engine.requests import Service
from sla_stream.engine.tickets import Ticket

Contracts = Callable[[str], Contract | None]
"""Contract id -> the contract, if one is loaded."""
Late = Callable[[int], None]
"""Raises :class:`~sla_stream.engine.events.Rejected` (``late``) for an event time too far behind."""

NEVER = 2**63
"""Later than anything a schedule holds."""

E_contra = TypeVar("E_contra", contravariant=True)


class Source(Protocol[E_contra]):
    """What the engine asks of a source, for events of type ``E_contra``."""

    def accept(self, contract: Contract, event: E_contra, late: Late) -> bool | None:
        """Whether the event is new (false: applied already; ``None``: its message was processed
        before the state as stored and rejected then, see ``Ticket.below``); raises
        :class:`~sla_stream.engine.events.Rejected` if it is late (``late`` checks the time)
        or not valid here. Changes nothing."""
        ...

    def apply(self, contract: Contract, event: E_contra, clock: int) -> list[Alert]:
        """Apply an accepted event once the engine's clock stands at ``clock``; its alerts."""
        ...

    def next_due(self) -> int:
        """When the first entry of the schedule falls due (:data:`NEVER` when it is empty)."""
        ...

    def fire_next(self, fired: list[Alert], allowed_lateness: int) -> None:
        """Take the first entry off the schedule and add to ``fired`` what it fires, if it is
        still due (entries go stale when what they were scheduled for moved on)."""
        ...


Thing = TypeVar("Thing", Ticket, Item)
Event = TypeVar("Event", TicketEvent, ItemEvent)
Event_contra = TypeVar("Event_contra", TicketEvent, ItemEvent, contravariant=True)


class Rules(Protocol[Thing, Event_contra]):
    """What the ticket and item modules both decide about one ticket or item (``Thing``) and its
    events (``Event_contra``)."""

    def check(self, contract: Contract, thing: Thing | None, event: Event_contra, /) -> None: ...

    def apply(self, contract: Contract, thing: Thing, event: Event_contra, /) -> list[Alert]: ...

    def rebuild(
        self, contract: Contract, old: Thing, late: Event_contra, now: int, /
    ) -> tuple[Thing, list[Alert]]: ...

    def adapt(self, contract: Contract, thing: Thing, /) -> Thing: ...

    def scheduled_before(self, contract: Contract, thing: Thing, /) -> None: ...

    def catch_up(self, contract: Contract, thing: Thing, until: int, /) -> list[Alert]: ...

    def fire(
        self, contract: Contract, thing: Thing, name: str, observed_at: int, fraction: float, /
    ) -> Alert | None: ...

    def due(self, contract: Contract, thing: Thing, /) -> Iterator[tuple[int, float, str]]: ...

    def change_due(self, contract: Contract, thing: Thing, /) -> int | None: ...

    def needs_rebuild(self, contract: Contract, thing: Thing, at: int, /) -> bool: ...

    def leaves_at(self, contract: Contract, thing: Thing, lateness: int, /) -> int | None: ...

    def marker(self, thing: Thing, at: int, /) -> Thing: ...


TrackedKey = tuple[str, str]
"""``(contract_id, ticket or item id)``."""

_CHANGE = -1.0
"""The fraction of an entry in the schedule at a version change: below every threshold's,
so at the same instant the change comes first, as an event does."""
_LEAVE = -2.0
"""The fraction of an entry in the schedule at which a finished thing leaves the state (or
the marker it left goes): it has no threshold left, and a change does nothing to it."""


class _Tracked(Generic[Thing, Event]):
    """Tickets or items (of events ``Event``): named clocks per thing, thresholds and version
    changes scheduled. A ticket and an item differ in how an event names its thing
    (:meth:`key`) and what their first event makes (:meth:`create`).

    With an allowed ``lateness``, a finished thing leaves the state at the time its rules say
    (``leaves_at``): an event for it later than that is rejected as ``expired``. It is replaced
    by a marker of its id (and of its events' ids, to recognise repeats) one lateness later, once
    no event the engine accepts can be at or before that time: until then a late event is put in
    its place by time. The marker is forgotten in turn: an event later than the marker's own
    time is taken as for a thing never seen, and the marker goes one lateness after that. So the
    store holds the open things and the markers of those finished lately, and what becomes of an
    event depends on its own time and the state, not on how far the clock has moved (ticks move
    it live). Without an allowed lateness any event may still be late, so nothing leaves.
    """

    _rules: Rules[Thing, Event]
    """The module deciding about the things (``tickets``, ``items``)."""
    noun = ""
    """What a thing is called in a rejection."""
    section = ""
    """The contract section that names its retention."""

    def __init__(
        self,
        contracts: Contracts,
        store: MutableMapping[TrackedKey, Thing],
        books: Books,
        lateness: int | None = None,
        clock: int | None = None,
        position: int | None = None,
    ) -> None:
        self._contract = contracts
        self.store: MutableMapping[TrackedKey, Thing] = store
        self._books = books
        self.lateness = lateness
        #: How many things left the state (markers going are not counted).
        self.removed = 0
        #: ``(observed_at, fraction, contract_id, id, objective)``; fraction ``_CHANGE`` for a
        #: version change, ``_LEAVE`` for leaving the state.
        self._due: list[tuple[int, float, str, str, str]] = []
        #: Per thing, the version change scheduled for it.
        self._changes: dict[TrackedKey, int] = {}
        #: Per thing, when it leaves the state (a marker: when it is forgotten); what it is
        #: scheduled for is one lateness later.
        self._leaves: dict[TrackedKey, int] = {}
        #: With a lateness: the ids of the events applied within it, per contract.
        self._recent = RecentIds()
        #: ``(below, contract_id, id)`` of things stored past the state's ``position``, held out
        #: of the schedule until the messages before ``below`` are processed again (``release``).
        self._held: list[tuple[int, str, str]] = []
        self._position, self._clock = position, clock
        #: Ids of contracts not loaded whose things were read back (and not scheduled).
        self.unmeasured: set[str] = set()
        #: The stored things not read back yet (``read_back``), ``None`` once all are.
        self._unread: Iterator[TrackedKey] | None = iter(store)

    def read_back(self, limit: int | None = None) -> bool:
        """Read up to ``limit`` more of the stored things back (all of them: ``None``) into the
        schedule and the recent ids; whether all are read back. The worker reads a large state a
        slice at a time, between which the event loop runs (heartbeats, the web server)."""
        unread = self._unread
        if unread is None:
            return True
        for count, key in enumerate(unread, 1):
            self._read(key)
            if limit is not None and count >= limit:
                return False
        self._unread = None
        if self._clock is not None and self.lateness is not None:
            self._recent.forget_before(self._clock - self.lateness)
        heapq.heapify(self._held)
        self._books.confirm(self._counted)
        return True

    def _read(self, key: TrackedKey) -> None:
        """Read one stored thing back: schedule what it has due (or hold it, see ``release``)."""
        contract = self._contract(key[0])
        if contract is None:
            self.unmeasured.add(key[0])
            return
        thing = self.load(key, contract)
        if thing is None:
            return
        for running in thing.clocks.values():
            running.scheduled = None  # nothing is scheduled yet
        if self._position is not None and thing.below > self._position:
            self._held.append((thing.below, key[0], key[1]))
        else:
            self.schedule(key, thing, contract)
        # Read back: what was applied lately is in the histories and the markers (what is older
        # than the lateness is never asked for: the lateness rejects it).
        if self.lateness is None:
            return
        horizon = None if self._clock is None else self._clock - self.lateness
        for applied in thing.history:
            if horizon is None or applied.at >= horizon:
                self._remember(key[0], applied.event_id, applied.at)
        for event_id, at in thing.ids:
            if horizon is None or at >= horizon:
                self._remember(key[0], event_id, at)

    def release(self, processed: int) -> None:
        """Schedule the things held (see ``Ticket.below``) whose messages are all processed again
        (those before ``processed``).

        A worker stopped after writing a thing and before the position its write covers starts
        again from the position, with a thing ahead of its clock: what the ticks and events
        processed again would fire of it (a deadline that passed before the thing was created
        by a late event, say) it had fired then if it was to, and what it had not is not due
        until the messages that came after are."""
        held = self._held
        while held and held[0][0] <= processed:
            _, contract_id, thing_id = heapq.heappop(held)
            key = (contract_id, thing_id)
            contract = self._contract(contract_id)
            thing = None if contract is None else self.load(key, contract)
            if thing is not None and contract is not None:
                for running in thing.clocks.values():
                    running.scheduled = None  # decoded again, perhaps: nothing of it is scheduled
                self.schedule(key, thing, contract)

    def _policy(self, contract: Contract) -> object | None:
        """The contract's section for these things, if it has one."""
        raise NotImplementedError

    def _counted(self, contract_id: str, thing_id: str, view: Mapping[str, list[list[int]]]) -> bool:
        """Whether the thing as stored was written after the ledger counted ``view`` of it: it
        has those outcomes, or it left the state since (a marker: nothing of it is decided again)."""
        thing = self.store.get((contract_id, thing_id))
        return thing is not None and (thing.gone is not None or thing.outcomes == view)

    def load(self, key: TrackedKey, contract: Contract) -> Thing | None:
        thing = self.store.get(key)
        if thing is None or self._policy(contract) is None:
            return None
        if thing.gone is not None:
            return thing
        thing = self._rules.adapt(contract, thing)
        if thing.decoded:
            # Decoded again (a store that keeps only some as objects): its thresholds are in
            # the schedule since it last changed.
            self._rules.scheduled_before(contract, thing)
        return thing

    def schedule(self, key: TrackedKey, thing: Thing, contract: Contract) -> None:
        """Put the thing's next thresholds, its next version change and when it leaves the
        state, each once, in the schedule."""
        if self.lateness is not None:
            leaves = self._rules.leaves_at(contract, thing, self.lateness)
            if leaves is None:
                self._leaves.pop(key, None)  # open again (a reopen): its entry goes stale
            elif self._leaves.get(key) != leaves:
                self._leaves[key] = leaves
                heapq.heappush(self._due, (leaves + self.lateness, _LEAVE, key[0], key[1], ""))
            if thing.gone is not None:
                return
        for observed_at, fraction, objective in self._rules.due(contract, thing):
            heapq.heappush(self._due, (observed_at, fraction, key[0], key[1], objective))
        change = self._rules.change_due(contract, thing)
        if change is not None and self._changes.get(key) != change:
            self._changes[key] = change
            heapq.heappush(self._due, (change, _CHANGE, key[0], key[1], ""))

    def key(self, contract: Contract, event: Event) -> TrackedKey:
        """Which thing ``event`` is about."""
        raise NotImplementedError

    def create(self, contract: Contract, event: Event) -> tuple[Thing, list[Alert]]:
        """The thing ``event``, its first, makes, and the alerts that fires."""
        raise NotImplementedError

    def accept(self, contract: Contract, event: Event, late: Late) -> bool | None:
        key = self.key(contract, event)
        thing = self.load(key, contract)
        if thing is not None and thing.applied(event.event_id):
            return False
        seen = self._recent.seen(key[0], event.event_id)
        if seen is not None and _within(late, seen):
            return False  # the id of an event applied to another thing of the contract lately
        if thing is not None and self._books.source[1] < thing.below:
            # Processed before the thing as stored (a worker stopped after writing it, before
            # its position), and not applied to it: rejected then, for the thing as it was.
            return None
        late(event.at)
        if thing is not None:
            ends = self._leaves.get(key, NEVER)
            if thing.gone is not None and event.at > ends:
                thing = None  # a marker forgotten by the event's time: as if never seen
            elif thing.gone is not None or ends < event.at:
                raise Rejected(
                    "expired",
                    f"{event.type} for {self.noun} {key[1]!r}, which was finished and has left the"
                    f" state (see retention in the contract's {self.section} section)",
                )
        self._rules.check(contract, thing, event)
        return True

    def apply(self, contract: Contract, event: Event, clock: int) -> list[Alert]:
        key = self.key(contract, event)
        thing = self.load(key, contract)  # the clock's advance may have stored a newer copy
        if thing is not None and thing.gone is not None:
            thing = None  # accepted: a marker forgotten by the event's time
        if thing is not None and self._rules.needs_rebuild(contract, thing, event.at):
            # A late event: decide the thing again with the event in its place by time.
            thing, more = self._rules.rebuild(contract, thing, event, clock)
        elif thing is None:
            thing, more = self.create(contract, event)
        else:
            more = self._rules.apply(contract, thing, event)
        self.keep(key, thing, contract)
        self._remember(key[0], event.event_id, event.at)
        if self.lateness is not None:
            self._recent.forget_before(clock - self.lateness, key[0])
        return more

    def _remember(self, contract_id: str, event_id: str, at: int) -> None:
        """Note an event applied, for recognising a repeat of its id within the lateness."""
        if self.lateness is not None:
            self._recent.remember(contract_id, event_id, at)

    def keep(self, key: TrackedKey, thing: Thing, contract: Contract) -> None:
        """Store a thing an event changed, book its outcomes, schedule what it has due."""
        self.store[key] = thing
        self._books.book(contract, key[1], thing)
        self.schedule(key, thing, contract)

    def next_due(self) -> int:
        return self._due[0][0] if self._due else NEVER

    def fire_next(self, fired: list[Alert], allowed_lateness: int) -> None:
        observed_at, fraction, contract_id, thing_id, objective = heapq.heappop(self._due)
        key = (contract_id, thing_id)
        if fraction == _CHANGE and self._changes.get(key) == observed_at:
            del self._changes[key]
        if fraction == _LEAVE:
            leaves = self._leaves.get(key)
            if leaves is not None and self.lateness is not None and leaves + self.lateness == observed_at:
                del self._leaves[key]
                self._leave(key, leaves)
            return
        contract = self._contract(contract_id)
        thing = None if contract is None else self.load(key, contract)
        if thing is None or contract is None or thing.gone is not None:
            return
        version = thing.version
        more = self._rules.catch_up(contract, thing, observed_at)
        if fraction != _CHANGE:
            alert = self._rules.fire(contract, thing, objective, observed_at, fraction)
            more += [] if alert is None else [alert]
        if not more and thing.version == version:
            return  # stale entry: the clock (or the version) moved on since it was scheduled
        fired += more
        self.store[key] = thing
        self._books.book(contract, thing_id, thing)
        self.schedule(key, thing, contract)

    def _leave(self, key: TrackedKey, at: int) -> None:
        """A finished thing that left the state at ``at`` is replaced by a marker; a marker
        forgotten at ``at`` goes."""
        contract = self._contract(key[0])
        thing = None if contract is None else self.load(key, contract)
        if thing is None or contract is None or self.lateness is None:
            return  # its contract was removed: the thing stays, as the contract's state does
        if self._rules.leaves_at(contract, thing, self.lateness) != at:
            self.schedule(key, thing, contract)  # changed since (the contract's retention, say)
            return
        if thing.gone is not None:
            del self.store[key]
            return
        self._changes.pop(key, None)
        marker = self._rules.marker(thing, at)
        self.store[key] = marker
        self.removed += 1
        self.schedule(key, marker, contract)


def _within(late: Late, at: int) -> bool:
    """Whether an event at ``at`` would still be on time (not rejected as late)."""
    try:
        late(at)
    except Rejected:
        return False
    return True


class TicketSource(_Tracked[Ticket, TicketEvent]):
    """Tickets, by ``(contract_id, ticket_id)``."""

    _rules = tickets
    noun = "ticket"
    section = "tickets"

    def _policy(self, contract: Contract) -> object | None:
        return contract.tickets

    def key(self, contract: Contract, event: TicketEvent) -> TrackedKey:
        """A ticket event names its ticket."""
        return event.contract_id, event.ticket_id

    def create(self, contract: Contract, event: TicketEvent) -> tuple[Ticket, list[Alert]]:
        """A ticket is created by its ``ticket.created``, which fires nothing."""
        return tickets.create(contract, event), []


class ItemSource(_Tracked[Item, ItemEvent]):
    """Items of a contract's ``items`` section, by ``(contract_id, item id)``."""

    _rules = items
    noun = "item"
    section = "items"

    def _policy(self, contract: Contract) -> object | None:
        return contract.items

    def key(self, contract: Contract, event: ItemEvent) -> TrackedKey:
        """An item event carries its item's id in the field the items section names (an event
        of another kind, or without it, is rejected)."""
        return event.contract_id, items.item_id(contract, event)

    def create(self, contract: Contract, event: ItemEvent) -> tuple[Item, list[Alert]]:
        """An item is made by whatever event comes first, applied to it."""
        return items.create(contract, event)


class CallSource:
    """Calls, one :class:`~sla_stream.engine.calls.CallCentre` per contract."""

    def __init__(
        self,
        contracts: Contracts,
        store: MutableMapping[str, CallCentre],
        books: Books,
        position: int | None = None,
    ) -> None:
        self._contract, self.store, self._books = contracts, store, books
        self._due: list[tuple[int, str]] = []
        #: Per contract, the time its entry in the schedule is for (one entry per change).
        self._scheduled: dict[str, int] = {}
        #: ``(below, contract_id)`` of centres stored past the state's position (see ``_Tracked``).
        self._held: list[tuple[int, str]] = []
        #: Ids of contracts not loaded that have a centre stored.
        self.unmeasured = {contract_id for contract_id in store if contracts(contract_id) is None}
        for contract_id, centre in list(store.items()):
            if position is not None and centre.below > position:
                heapq.heappush(self._held, (centre.below, contract_id))
            else:
                self._schedule(contract_id, centre)

    def release(self, processed: int) -> None:
        """Schedule the centres held whose messages are all processed again (``_Tracked.release``)."""
        while self._held and self._held[0][0] <= processed:
            _, contract_id = heapq.heappop(self._held)
            centre = self.store.get(contract_id)
            if centre is not None:
                self._schedule(contract_id, centre)

    def accept(self, contract: Contract, event: CallEvent, late: Late) -> bool | None:
        centre = self.store.get(event.contract_id)
        if centre is not None and event.event_id in centre.seen:
            return False
        if centre is not None and self._books.source[1] < centre.below:
            return None  # processed before the centre as stored, and rejected then
        late(event.at)
        calls.check(contract, centre, event)
        return True

    def apply(self, contract: Contract, event: CallEvent, clock: int) -> list[Alert]:
        centre = self.store.get(event.contract_id) or CallCentre()
        books = self._books
        ledger = books.ledger(contract.id)
        periods = len(ledger.periods)
        # A queued call is counted once answered or abandoned.
        counting = event.type != CALL_QUEUED and books.counting(ledger)
        alerts = calls.apply(contract, centre, event, clock, ledger if counting else Ledger())
        if counting:
            books.keep(contract.id, ledger, periods)
        self.store[event.contract_id] = centre
        self._schedule(event.contract_id, centre)
        return alerts

    def next_due(self) -> int:
        return self._due[0][0] if self._due else NEVER

    def fire_next(self, fired: list[Alert], allowed_lateness: int) -> None:
        at, contract_id = heapq.heappop(self._due)
        if self._scheduled.get(contract_id) == at:
            del self._scheduled[contract_id]
        contract, centre = self._contract(contract_id), self.store.get(contract_id)
        if contract is None or centre is None or calls.due(contract, centre) != at:
            return  # stale entry: the calls moved on since it was scheduled
        fired += calls.fire(contract, centre, at, allowed_lateness)
        self.store[contract_id] = centre
        self._schedule(contract_id, centre)

    def _schedule(self, contract_id: str, centre: CallCentre) -> None:
        contract = self._contract(contract_id)
        if contract is None or contract.calls is None:
            return
        at = calls.due(contract, centre)
        if at is not None and self._scheduled.get(contract_id) != at:
            self._scheduled[contract_id] = at
            heapq.heappush(self._due, (at, contract_id))


ServiceKey = tuple[str, str]
"""``(contract_id, service)``."""


class RequestSource:
    """Request counts, one :class:`~sla_stream.engine.requests.Service` per contract and service."""

    def __init__(
        self, contracts: Contracts, store: MutableMapping[ServiceKey, Service], books: Books
    ) -> None:
        self._contract, self.store, self._books = contracts, store, books
        #: ``(boundary, contract_id, service)``: services at the same boundary in key order.
        self._due: list[tuple[int, str, str]] = []
        #: Ids of contracts not loaded that have services stored.
        self.unmeasured = {contract_id for contract_id, _ in store if contracts(contract_id) is None}
        for (contract_id, service_id), service in list(store.items()):
            service.scheduled = None  # nothing is scheduled yet
            self._schedule(contract_id, service_id, service)

    def accept(self, contract: Contract, event: RequestEvent, late: Late) -> bool:
        service = self.store.get((event.contract_id, event.service))
        if service is not None and event.event_id in service.seen:
            return False
        late(event.at)
        requests.policy_of(contract)  # rejects a contract without request objectives
        return True

    def apply(self, contract: Contract, event: RequestEvent, clock: int) -> list[Alert]:
        key = (event.contract_id, event.service)
        service = self.store.get(key) or Service()
        books = self._books
        ledger = books.ledger(contract.id)
        periods = len(ledger.periods)
        counting = books.counting(ledger)
        offset = books.source[1] if books.once else None
        if requests.apply(contract, service, event, ledger if counting else Ledger(), offset) and counting:
            books.keep(contract.id, ledger, periods)
        self.store[key] = service
        self._schedule(key[0], key[1], service, contract)
        return []

    def next_due(self) -> int:
        return self._due[0][0] if self._due else NEVER

    def fire_next(self, fired: list[Alert], allowed_lateness: int) -> None:
        at, contract_id, service_id = heapq.heappop(self._due)
        contract = self._contract(contract_id)
        service = self.store.get((contract_id, service_id))
        if contract is None or contract.requests is None or service is None:
            return
        if requests.next_boundary(contract, service) != at:
            return  # stale entry: the service moved on since it was scheduled
        fired += requests.evaluate(contract, service_id, service, at, allowed_lateness)
        self.store[contract_id, service_id] = service
        self._schedule(contract_id, service_id, service, contract)

    def _schedule(
        self, contract_id: str, service_id: str, service: Service, contract: Contract | None = None
    ) -> None:
        contract = contract or self._contract(contract_id)
        if contract is None or contract.requests is None:
            return
        at = requests.next_boundary(contract, service)
        if at is not None and at != service.scheduled:
            service.scheduled = at
            heapq.heappush(self._due, (at, contract_id, service_id))
