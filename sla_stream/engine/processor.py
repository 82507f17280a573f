"""The engine: event-time clock, ticket state and due thresholds for one partition's contracts.

``apply(event)`` first fires every threshold observed before the event's
time, then applies the event; ``advance(now)`` fires every threshold
observed before ``now``. Both return the alerts decided, in order. The
same calls in the same order give the same alerts, live or in replay.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, MutableMapping
from typing import NamedTuple

from sla_stream.engine import tickets
from sla_stream.engine.alerts import Alert
from sla_stream.engine.events import Rejected, TicketEvent
from sla_stream.engine.model import Contract
from sla_stream.engine.tickets import Ticket
from sla_stream.engine.time import seconds

TicketKey = tuple[str, str]
"""``(contract_id, ticket_id)``."""

OK, DUPLICATE = "ok", "duplicate"


class Applied(NamedTuple):
    """What became of one event."""

    outcome: str
    """``ok`` or ``duplicate``."""
    alerts: list[Alert]
    """Alerts decided on the way: thresholds passed before the event, then the event's own."""


class Engine:
    """Decides alerts for the contracts of one partition (or of a whole replay).

    ``store`` maps ticket keys to tickets; the live worker passes a mapping
    backed by a changelog table, and the engine writes every ticket it
    changes back to it. ``clock`` is the latest event time seen; events more than
    ``allowed_lateness`` behind it are rejected as ``late``.
    """

    def __init__(
        self,
        contracts: Callable[[str], Contract | None] | Mapping[str, Contract],
        store: MutableMapping[TicketKey, Ticket] | None = None,
        clock: int | None = None,
        allowed_lateness: int | None = None,
    ) -> None:
        self._contract = contracts.get if isinstance(contracts, Mapping) else contracts
        self.tickets: MutableMapping[TicketKey, Ticket] = {} if store is None else store
        self.clock = clock
        self.allowed_lateness = allowed_lateness
        self._due: list[tuple[int, float, str, str, str]] = []
        for key in list(self.tickets):
            contract = self._contract(key[0])
            ticket = None if contract is None else self._load(key, contract)
            if ticket is not None:
                self._schedule(key, ticket, contract)

    def contract(self, contract_id: str) -> Contract:
        found = self._contract(contract_id)
        if found is None:
            raise Rejected("unknown_contract", f"no contract with id {contract_id!r} is loaded")
        return found

    def apply(self, event: TicketEvent) -> Applied:
        """Apply one ticket event at its own time; raises :class:`Rejected` for bad input."""
        contract = self.contract(event.contract_id)
        key = (event.contract_id, event.ticket_id)
        ticket = self._load(key, contract)
        if ticket is not None and event.event_id in ticket.seen:
            return Applied(DUPLICATE, [])
        if (
            self.allowed_lateness is not None
            and self.clock is not None
            and event.at < self.clock - self.allowed_lateness
        ):
            raise Rejected(
                "late",
                f"occurred_at is {seconds(self.clock - event.at)}s behind the clock,"
                f" more than the allowed lateness of {seconds(self.allowed_lateness)}s",
            )
        tickets.check(contract, ticket, event)
        # Nothing below rejects: thresholds passed before the event fire first.
        alerts = self.advance(event.at)
        ticket = self._load(key, contract)  # advance may have stored a newer copy
        if ticket is not None and self.clock is not None and tickets.needs_rebuild(ticket, event.at):
            # A late event: decide the ticket again with the event in its place by time.
            ticket, more = tickets.rebuild(contract, ticket, event, self.clock)
        elif ticket is None:
            ticket, more = tickets.create(contract, event), []
        else:
            more = tickets.apply(contract, ticket, event)
        self.tickets[key] = ticket
        self._schedule(key, ticket, contract)
        alerts.extend(more)
        return Applied(OK, alerts)

    def advance(self, now: int) -> list[Alert]:
        """Move the clock to ``now``, firing every threshold observed before it."""
        if self.clock is None or now > self.clock:
            self.clock = now
        fired: list[Alert] = []
        due = self._due
        while due and due[0][0] < now:
            observed_at, fraction, contract_id, ticket_id, objective = heapq.heappop(due)
            key = (contract_id, ticket_id)
            contract = self._contract(contract_id)
            ticket = None if contract is None else self._load(key, contract)
            if ticket is None or contract is None:
                continue
            alert = tickets.fire(contract, ticket, objective, observed_at, fraction)
            if alert is None:
                continue  # stale entry: the clock moved on since it was scheduled
            fired.append(alert)
            self.tickets[key] = ticket
            self._schedule(key, ticket, contract)
        return fired

    def _load(self, key: TicketKey, contract: Contract) -> Ticket | None:
        ticket = self.tickets.get(key)
        return None if ticket is None or contract.tickets is None else tickets.adapt(contract, ticket)

    def _schedule(self, key: TicketKey, ticket: Ticket, contract: Contract | None = None) -> None:
        contract = contract or self._contract(key[0])
        if contract is None:
            return
        for observed_at, fraction, objective in tickets.due(contract, ticket):
            heapq.heappush(self._due, (observed_at, fraction, key[0], key[1], objective))
