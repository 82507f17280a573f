"""Input events as the engine sees them: validated, with times in epoch milliseconds."""

from __future__ import annotations

from typing import NamedTuple

TICKET_CREATED = "ticket.created"
TICKET_AGENT_REPLIED = "ticket.agent_replied"
TICKET_CUSTOMER_REPLIED = "ticket.customer_replied"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_PRIORITY_CHANGED = "ticket.priority_changed"

TICKET_TYPES = frozenset(
    {
        TICKET_CREATED,
        TICKET_AGENT_REPLIED,
        TICKET_CUSTOMER_REPLIED,
        TICKET_STATUS_CHANGED,
        TICKET_PRIORITY_CHANGED,
    }
)


class TicketEvent(NamedTuple):
    """One ticket event; ``priority`` and ``status`` are set where the type carries them.

    A named tuple rather than a frozen dataclass: it is made once per input
    message, and building a tuple costs a fraction of a frozen dataclass.
    """

    event_id: str
    """Unique per event; a repeat for the same contract is a duplicate."""
    type: str
    """One of :data:`TICKET_TYPES`."""
    contract_id: str
    """The contract the ticket is measured against."""
    at: int
    """``occurred_at`` in epoch milliseconds."""
    ticket_id: str
    """The ticket the event is about."""
    priority: str | None = None
    """The priority (``ticket.created``, ``ticket.priority_changed``)."""
    status: str | None = None
    """The status (``ticket.created``, optional; ``ticket.status_changed``)."""


CALL_QUEUED = "call.queued"
CALL_ANSWERED = "call.answered"
CALL_ABANDONED = "call.abandoned"

CALL_TYPES = frozenset({CALL_QUEUED, CALL_ANSWERED, CALL_ABANDONED})

REQUEST = "request"
REQUEST_BATCH = "request.batch"

REQUEST_TYPES = frozenset({REQUEST, REQUEST_BATCH})


class CallEvent(NamedTuple):
    """One call event; ``queue`` and ``wait_ms`` are set where the record carries them."""

    event_id: str
    type: str
    """One of :data:`CALL_TYPES`."""
    contract_id: str
    at: int
    """``occurred_at`` in epoch milliseconds."""
    call_id: str
    queue: str | None = None
    wait_ms: int | None = None
    """``wait_seconds`` in milliseconds: the wait when no ``call.queued`` was seen."""


class RequestEvent(NamedTuple):
    """Served requests for one service: a single ``request`` is a batch of one.

    Latency is counted only when ``latency_total`` is not zero: for a single
    request the engine decides it against the contract's threshold from
    ``latency_ms``; a batch carries it as ``latency_good`` of ``total``.
    """

    event_id: str
    type: str
    """One of :data:`REQUEST_TYPES`."""
    contract_id: str
    at: int
    service: str
    total: int
    good: int
    """Requests that were good for availability."""
    latency_ms: float | None = None
    """A single request's latency."""
    latency_good: int | None = None
    """A batch's requests within the latency threshold, if it says."""


class ItemEvent(NamedTuple):
    """One event about a tracked item (a parcel, a claim, an order): any ``<kind>.<verb>`` type
    a contract's ``items`` section names, with the record's other fields as text."""

    event_id: str
    type: str
    """``<kind>.<verb>``, e.g. ``shipment.picked_up``; the kind is the contract's ``items.kind``."""
    contract_id: str
    at: int
    """``occurred_at`` in epoch milliseconds."""
    fields: tuple[tuple[str, str], ...]
    """The record's other fields (scalars as text: ``true``, ``3``), sorted by name; the contract
    says which one names the item (``items.key``) and which ones its rules look at."""

    def field(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None


Event = TicketEvent | CallEvent | RequestEvent | ItemEvent


class Rejected(Exception):
    """An event the engine cannot apply; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        """A short machine-readable reason (``invalid``, ``unknown_contract``, ...)."""
        self.detail = detail
        """What was wrong, for the person reading the dead-letter record."""


def source_of(event: Event) -> str:
    """The kind of input ``event`` is (``ticket``, ``call``, ``request`` or ``item``): which input
    topic it belongs on."""
    return "item" if isinstance(event, ItemEvent) else event.type.split(".", 1)[0]
