"""The engine: event-time clock, ticket, call and request state, and what falls due, per partition.

``apply(event)`` first fires every threshold observed before the event's
time, then applies the event; ``advance(now)`` fires every threshold
observed before ``now``. Both return the alerts decided, in order. The
same calls in the same order give the same alerts, live or in replay.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

from sla_stream.engine import calls, items, requests, tickets
from sla_stream.engine.alerts import Alert
from sla_stream.engine.calls import CallCentre
from sla_stream.engine.events import CALL_QUEUED, CallEvent, Event, ItemEvent, Rejected, RequestEvent
from sla_stream.engine.items import Item
from sla_stream.engine.model import Contract
from sla_stream.engine.penalties import Ledger
from sla_stream.engine.requests import Service
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
    calls, ``services`` ``(contract_id, service)`` to request counts,
    ``ledgers`` contract ids to what each period counted; the live
    worker passes mappings backed by a changelog table, and the engine writes
    everything it changes back to them. ``clock`` is the latest event time
    seen; events more than ``allowed_lateness`` behind it are rejected as ``late``.
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
    ) -> None:
        self._contract = contracts.get if isinstance(contracts, Mapping) else contracts
        self.tickets: MutableMapping[TicketKey, Ticket] = {} if store is None else store
        self.centres: MutableMapping[str, CallCentre] = {} if centres is None else centres
        self.services: MutableMapping[ServiceKey, Service] = {} if services is None else services
        self.ledgers: MutableMapping[str, Ledger] = {} if ledgers is None else ledgers
        self.items: MutableMapping[ItemKey, Item] = {} if items is None else items
        #: How many times a ledger got a period it did not have (the closer watches it).
        self.opened = 0
        #: Count each booking once however often messages are processed again (the worker under
        #: at-least-once; see ``_counting``); ``source`` is the input message being applied.
        self.once = False
        self.source: tuple[str, int] = ("", -1)
        #: With ``once``: how far the stored state is (the input position and clock it was last
        #: written at in full); set by the worker after each write.
        self.epoch: tuple[int, int] = (-1, -1)
        self.clock = clock
        self.allowed_lateness = allowed_lateness
        self._due: list[tuple[int, float, str, str, str]] = []
        #: Per ticket, the version change scheduled for it (see ``_CHANGE``).
        self._changes: dict[TicketKey, int] = {}
        self._item_changes: dict[ItemKey, int] = {}
        self._call_due: list[tuple[int, str]] = []
        self._item_due: list[tuple[int, float, str, str, str]] = []
        for key in list(self.tickets):
            contract = self._contract(key[0])
            ticket = None if contract is None else self._load(key, contract)
            if ticket is not None:
                for running in ticket.clocks.values():
                    running.scheduled = None  # nothing is scheduled yet
                self._schedule(key, ticket, contract)
        for key in list(self.items):
            contract = self._contract(key[0])
            item = None if contract is None else self._load_item(key, contract)
            if item is not None and contract is not None:
                for running in item.clocks.values():
                    running.scheduled = None
                self._schedule_item(key, item, contract)
        for contract_id, centre in list(self.centres.items()):
            self._schedule_calls(contract_id, centre)
        #: The minute boundaries services have still to evaluate: ``(at, contract_id, service)``.
        self._service_due: list[tuple[int, str, str]] = []
        for (contract_id, service_id), service in list(self.services.items()):
            service.scheduled = None  # nothing is scheduled yet
            self._schedule_service(contract_id, service_id, service)

    def contract_or_none(self, contract_id: str) -> Contract | None:
        return self._contract(contract_id)

    def contract(self, contract_id: str) -> Contract:
        found = self._contract(contract_id)
        if found is None:
            raise Rejected("unknown_contract", f"no contract with id {contract_id!r} is loaded")
        return found

    def apply(self, event: Event) -> Applied:
        """Apply one event at its own time; raises :class:`Rejected` for bad input."""
        contract = self.contract(event.contract_id)
        if isinstance(event, CallEvent):
            return self._apply_call(contract, event)
        if isinstance(event, RequestEvent):
            return self._apply_request(contract, event)
        if isinstance(event, ItemEvent):
            return self._apply_item(contract, event)
        key = (event.contract_id, event.ticket_id)
        ticket = self._load(key, contract)
        if ticket is not None and event.event_id in ticket.seen:
            return Applied(DUPLICATE, [])
        self._check_late(event.at)
        tickets.check(contract, ticket, event)
        # Nothing below rejects: thresholds passed before the event fire first.
        alerts = self.advance(event.at)
        ticket = self._load(key, contract)  # advance may have stored a newer copy
        if (
            ticket is not None
            and self.clock is not None
            and tickets.needs_rebuild(contract, ticket, event.at)
        ):
            # A late event: decide the ticket again with the event in its place by time.
            ticket, more = tickets.rebuild(contract, ticket, event, self.clock)
        elif ticket is None:
            ticket, more = tickets.create(contract, event), []
        else:
            more = tickets.apply(contract, ticket, event)
        self.tickets[key] = ticket
        self._book(contract, ticket)
        self._schedule(key, ticket, contract)
        alerts.extend(more)
        return Applied(OK, self._versions(alerts))

    def _apply_item(self, contract: Contract, event: ItemEvent) -> Applied:
        key = (event.contract_id, items.item_id(contract, event))
        item = self._load_item(key, contract)
        if item is not None and event.event_id in item.seen:
            return Applied(DUPLICATE, [])
        self._check_late(event.at)
        items.check(contract, item, event)
        alerts = self.advance(event.at)
        item = self._load_item(key, contract)
        if item is not None and self.clock is not None and items.needs_rebuild(contract, item, event.at):
            item, more = items.rebuild(contract, item, event, self.clock)
        elif item is None:
            item, more = items.create(contract, event)
        else:
            more = items.apply(contract, item, event)
        self.items[key] = item
        self._book(contract, item)
        self._schedule_item(key, item, contract)
        alerts.extend(more)
        return Applied(OK, self._versions(alerts))

    def _apply_call(self, contract: Contract, event: CallEvent) -> Applied:
        centre = self.centres.get(event.contract_id)
        if centre is not None and event.event_id in centre.seen:
            return Applied(DUPLICATE, [])
        self._check_late(event.at)
        calls.check(contract, centre, event)
        alerts = self.advance(event.at)
        centre = self.centres.get(event.contract_id) or CallCentre()
        ledger = self._ledger(contract.id)
        periods = len(ledger.periods)
        now = self.clock if self.clock is not None else event.at
        # A queued call is counted once answered or abandoned.
        counting = event.type != CALL_QUEUED and self._counting(ledger)
        alerts += calls.apply(contract, centre, event, now, ledger if counting else Ledger())
        if counting:
            self._keep(contract.id, ledger, periods)
        self.centres[event.contract_id] = centre
        self._schedule_calls(event.contract_id, centre)
        return Applied(OK, self._versions(alerts))

    def _apply_request(self, contract: Contract, event: RequestEvent) -> Applied:
        key = (event.contract_id, event.service)
        service = self.services.get(key)
        if service is not None and event.event_id in service.seen:
            return Applied(DUPLICATE, [])
        self._check_late(event.at)
        requests.policy_of(contract)  # rejects a contract without request objectives
        alerts = self.advance(event.at)
        service = self.services.get(key) or Service()
        ledger = self._ledger(contract.id)
        periods = len(ledger.periods)
        counting = self._counting(ledger)
        offset = self.source[1] if self.once else None
        if requests.apply(contract, service, event, ledger if counting else Ledger(), offset) and counting:
            self._keep(contract.id, ledger, periods)
        self.services[key] = service
        self._schedule_service(key[0], key[1], service, contract)
        return Applied(OK, self._versions(alerts))

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
        """Move the clock to ``now``, firing everything observed before it, in time order:
        ticket thresholds, then item thresholds, then call intervals and waits, then request
        minute boundaries."""
        if self.clock is None or now > self.clock:
            self.clock = now
        fired: list[Alert] = []
        due, call_due, item_due, service_due = self._due, self._call_due, self._item_due, self._service_due
        while True:
            at = min(
                due[0][0] if due else _NEVER,
                item_due[0][0] if item_due else _NEVER,
                call_due[0][0] if call_due else _NEVER,
                service_due[0][0] if service_due else _NEVER,
            )
            if at >= now:
                return self._versions(fired)
            if due and due[0][0] == at:
                self._fire_ticket(fired)
            elif item_due and item_due[0][0] == at:
                self._fire_item(fired)
            elif call_due and call_due[0][0] == at:
                _, contract_id = heapq.heappop(call_due)
                contract, centre = self._contract(contract_id), self.centres.get(contract_id)
                if contract is None or centre is None or calls.due(contract, centre) != at:
                    continue  # stale entry: the calls moved on since it was scheduled
                fired += calls.fire(contract, centre, at, self.allowed_lateness or 0)
                self.centres[contract_id] = centre
                self._schedule_calls(contract_id, centre)
            else:
                # Services at the same boundary in the order of their keys, as the heap gives them.
                _, contract_id, service_id = heapq.heappop(service_due)
                contract = self._contract(contract_id)
                service = self.services.get((contract_id, service_id))
                if contract is None or contract.requests is None or service is None:
                    continue
                if requests.next_boundary(contract, service) != at:
                    continue  # stale entry: the service moved on since it was scheduled
                fired += requests.evaluate(contract, service_id, service, at, self.allowed_lateness or 0)
                self.services[contract_id, service_id] = service
                self._schedule_service(contract_id, service_id, service, contract)

    def _fire_ticket(self, fired: list[Alert]) -> None:
        entry = heapq.heappop(self._due)
        self._fire_tracked(fired, entry, tickets, self.tickets, self._changes, self._load, self._schedule)

    def _fire_item(self, fired: list[Alert]) -> None:
        entry = heapq.heappop(self._item_due)
        self._fire_tracked(
            fired, entry, items, self.items, self._item_changes, self._load_item, self._schedule_item
        )

    def _fire_tracked(
        self,
        fired: list[Alert],
        entry: tuple[int, float, str, str, str],
        kind: Any,
        store: MutableMapping[tuple[str, str], Any],
        changes: dict[tuple[str, str], int],
        load: Callable[[tuple[str, str], Contract], Any],
        schedule: Callable[[tuple[str, str], Any, Contract], None],
    ) -> None:
        """A ticket's or item's (``kind``: the module deciding it) threshold or version change
        from the schedule, if it is still due."""
        observed_at, fraction, contract_id, thing_id, objective = entry
        key = (contract_id, thing_id)
        if fraction == _CHANGE and changes.get(key) == observed_at:
            del changes[key]
        contract = self._contract(contract_id)
        thing = None if contract is None else load(key, contract)
        if thing is None or contract is None:
            return
        version = thing.version
        more: list[Alert] = kind.catch_up(contract, thing, observed_at)
        if fraction != _CHANGE:
            alert = kind.fire(contract, thing, objective, observed_at, fraction)
            more += [] if alert is None else [alert]
        if not more and thing.version == version:
            return  # stale entry: the clock (or the version) moved on since it was scheduled
        fired += more
        store[key] = thing
        self._book(contract, thing, (observed_at, thing_id, objective))
        schedule(key, thing, contract)

    def _ledger(self, contract_id: str) -> Ledger:
        return self.ledgers.get(contract_id) or Ledger()

    def _counting(self, ledger: Ledger, due: tuple[int, str, str] | None = None) -> bool:
        """Whether what is being booked is still to be counted in ``ledger`` (and note that it is).

        Under at-least-once a worker stopped after writing a ledger but before the tickets,
        calls or services it counted processes messages again. What a message books itself
        is recognised by the message's offset. A breach that fell due (``due``: when, ticket,
        objective) can fall due again only if it fell due since the state was last written in
        full (``epoch``), so the ledger keeps those. Not a watermark: a late event can make a
        breach fall due at a time before one already counted.
        """
        if not self.once:
            return True
        if ledger.since != self.epoch:
            ledger.since, ledger.recent = self.epoch, set()
        if due is not None:
            if due in ledger.recent:
                return False
            ledger.recent.add(due)
            return True
        topic, offset = self.source
        if ledger.counted.get(topic, -1) > offset:
            return False
        ledger.counted[topic] = offset + 1
        return True

    def _keep(self, contract_id: str, ledger: Ledger, periods: int) -> None:
        """Store a ledger just counted in, which had ``periods`` periods before."""
        self.ledgers[contract_id] = ledger
        if len(ledger.periods) != periods:
            self.opened += 1

    def _book(
        self, contract: Contract, ticket: Ticket | Item, due: tuple[int, str, str] | None = None
    ) -> None:
        """Move the outcomes a ticket decided or took back to the period ledger; ``due`` when a
        breach fell due, rather than a message deciding them."""
        if not ticket.booked:
            return
        ledger = self._ledger(contract.id)
        if not self._counting(ledger, due):
            ticket.booked.clear()
            return
        periods = len(ledger.periods)
        net: dict[tuple[str, str], list[int]] = {}
        for name, met, at, sign in ticket.booked:
            counts = net.setdefault((ledger.period(contract.zone, at), name), [0, 0])
            counts[0] += sign * met
            counts[1] += sign
        ticket.booked.clear()
        changed = [(where, counts) for where, counts in net.items() if counts != [0, 0]]
        for (period, name), counts in changed:
            ledger.add(period, name, counts)
        if changed:
            self._keep(contract.id, ledger, periods)

    def _schedule_service(
        self, contract_id: str, service_id: str, service: Service, contract: Contract | None = None
    ) -> None:
        """Put a service's next minute boundary in the schedule."""
        contract = contract or self._contract(contract_id)
        if contract is None or contract.requests is None:
            return
        at = requests.next_boundary(contract, service)
        if at is not None and at != service.scheduled:
            service.scheduled = at
            heapq.heappush(self._service_due, (at, contract_id, service_id))

    def _load(self, key: TicketKey, contract: Contract) -> Ticket | None:
        ticket = self.tickets.get(key)
        if ticket is None or contract.tickets is None:
            return None
        ticket = tickets.adapt(contract, ticket)
        if ticket.decoded:
            # Decoded again (a store that keeps only some tickets as objects): its thresholds
            # are in the schedule since it last changed.
            tickets.scheduled_before(contract, ticket)
        return ticket

    def _load_item(self, key: ItemKey, contract: Contract) -> Item | None:
        item = self.items.get(key)
        if item is None or contract.items is None:
            return None
        item = items.adapt(contract, item)
        if item.decoded:
            items.scheduled_before(contract, item)
        return item

    def _schedule_item(self, key: ItemKey, item: Item, contract: Contract) -> None:
        _schedule_tracked(self._item_due, self._item_changes, items, key, item, contract)

    def _schedule(self, key: TicketKey, ticket: Ticket, contract: Contract | None = None) -> None:
        contract = contract or self._contract(key[0])
        if contract is None:
            return
        _schedule_tracked(self._due, self._changes, tickets, key, ticket, contract)

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

    def _schedule_calls(self, contract_id: str, centre: CallCentre) -> None:
        contract = self._contract(contract_id)
        if contract is None or contract.calls is None:
            return
        at = calls.due(contract, centre)
        if at is not None:
            heapq.heappush(self._call_due, (at, contract_id))


def _schedule_tracked(
    due: list[tuple[int, float, str, str, str]],
    changes: dict[tuple[str, str], int],
    kind: Any,
    key: tuple[str, str],
    thing: Any,
    contract: Contract,
) -> None:
    """Put a ticket's or item's (``kind``: the module deciding it) next thresholds and its next
    version change, each once, in the schedule ``due``."""
    for observed_at, fraction, objective in kind.due(contract, thing):
        heapq.heappush(due, (observed_at, fraction, key[0], key[1], objective))
    change = kind.change_due(contract, thing)
    if change is not None and changes.get(key) != change:
        changes[key] = change
        heapq.heappush(due, (change, _CHANGE, key[0], key[1], ""))


_NEVER = 2**63
_CHANGE = -1.0
"""The fraction of a ticket's entry in the schedule at a version change: below every threshold's,
so at the same instant the change comes first, as an event does."""
