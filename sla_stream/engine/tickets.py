"""Ticket clocks: first response, next-reply cycles and resolution (docs/reference/events.md#tickets).

A ticket event costs the same however long the ticket's history is, but for the duplicate
check (a scan of the history's event ids: a set per ticket would cost more memory than the scan
costs time); the latest event time is kept, and a clock's next threshold costs a bisection over
the dates its calendar covers, however many days its target spans. Only a late event (one that lands
before something already applied or sent) costs more: the ticket is decided again from its
history, at a cost that grows with the history's length and the version changes it spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sla_stream.engine import events as ev
from sla_stream.engine import tracked
from sla_stream.engine.alerts import Alert
from sla_stream.engine.clock import Clock
from sla_stream.engine.events import Rejected, TicketEvent
from sla_stream.engine.model import Contract, TicketObjective, TicketPolicy

DONE_STATUSES = frozenset({"solved", "closed"})
FIRST_RESPONSE, NEXT_REPLY, RESOLUTION = "first_response", "next_reply", "resolution"


@dataclass(slots=True)
class Ticket(tracked.Subject[TicketEvent]):
    """What the engine remembers of one ticket (its history and revisions: see ``tracked.Subject``)."""

    ticket_id: str
    priority: str
    status: str
    clocks: dict[str, Clock] = field(default_factory=dict)
    history: list[TicketEvent] = field(default_factory=list)
    """Every event applied, in the order applied (added with :meth:`record`): duplicates are
    found in it, and a late event is put in its place among them when the ticket is decided
    again."""
    next_reply_cycles: int = 0
    revisions: dict[str, int] = field(default_factory=dict)
    """Retractions per ``objective|cycle|fraction``: an alert that comes back gets a new id."""
    outcomes: dict[str, list[list[int]]] = field(default_factory=dict)
    """Per ``objective|cycle``, its outcomes as ``[met, decided at]``: one per period at most,
    a new one only when the outcome changed (met, then breached after a reopen)."""
    version: str | None = None
    """Of a versioned contract: the name of the version the clocks were last given targets from
    (``None``, as in tickets stored before the contract had versions: the one at its creation)."""
    retired: dict[str, Clock] = field(default_factory=dict)
    """Clocks of objectives the contract dropped since they started (see ``tracked.retire``)."""
    booked: list[tuple[str, int, int, int]] = field(default_factory=list)
    """``(objective, met, decided at, +1 or -1)`` of outcomes added or taken back since the
    engine last moved them to the period ledger (in memory only)."""
    decoded: bool = field(default=False, compare=False)
    """Read back from its state: what its clocks last handed to the scheduler is not known
    (in memory only)."""
    gone: int | None = None
    """Set on what is left of a finished ticket once it left the state (see :func:`leaves_at`):
    the time it left. Such a marker keeps only the ticket's id and ``ids``, so that an event for
    it is rejected as ``expired`` rather than taken for a ticket never created."""
    ids: tuple[tuple[str, int], ...] = ()
    """Of a marker: the id and time of each event the ticket had applied, so that one processed
    again (after a stop, under at-least-once) is recognised as a repeat."""
    below: int = field(default=-1, compare=False)
    """The worker's: the input offset below which every message was processed when the ticket
    was last stored (-1: not known, as in replay). A message below it processed again after a
    stop (at-least-once) whose event the ticket has not applied was rejected the first time,
    for this ticket as it was then (see ``TicketSource.accept``)."""

    def about(self, contract: Contract, clock: Clock) -> tuple[str, str, int]:
        """A ticket's alerts are about the ticket, in its clock's cycle."""
        return "ticket", self.ticket_id, clock.cycle

    def to_state(self) -> dict[str, Any]:
        if self.gone is not None:
            return {"id": self.ticket_id, "gone": self.gone, "ids": [list(pair) for pair in self.ids]}
        state = {
            "id": self.ticket_id,
            "p": self.priority,
            "s": self.status,
            "c": {name: clock.to_state() for name, clock in self.clocks.items()},
            "h": [list(event) for event in self.history],
            "n": self.next_reply_cycles,
            "r": self.revisions,
            "o": self.outcomes,
        }
        if self.version is not None:
            state["v"] = self.version
        if self.retired:
            state["x"] = {name: clock.to_state() for name, clock in self.retired.items()}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ticket:
        if "gone" in state:
            return cls(state["id"], "", "", gone=state["gone"], ids=tuple((i, at) for i, at in state["ids"]))
        return cls(
            state["id"],
            state["p"],
            state["s"],
            {name: Clock.from_state(c) for name, c in state["c"].items()},
            [TicketEvent(*event) for event in state["h"]],
            state["n"],
            dict(state["r"]),
            state.get("o", {}),
            state.get("v"),
            {name: Clock.from_state(c) for name, c in state.get("x", {}).items()},
            decoded=True,
        )


def leaves_at(contract: Contract, ticket: Ticket, lateness: int) -> int | None:
    """When the ticket leaves the state, if it is finished: a closed ticket once the allowed
    ``lateness`` has passed since its last event (no event the engine still accepts can then
    land before it, and a closed ticket is final); a solved one the policy's ``retention``
    after its last event (helpdesks close solved tickets after a few days; until then a
    customer's reply may reopen it). What is left, a marker of its id (``gone``), goes the
    retention after that. ``None``: the ticket is open.

    An event for the ticket after that time is ``expired``; the ticket itself leaves the state
    (a marker replaces it) one allowed lateness later, when no event the engine accepts can
    land at or before it, so that the outcome of an event depends on its own time, not on how
    far the clock has moved (live, ticks move it)."""
    if ticket.gone is not None:
        return ticket.gone + policy_of(contract.at(ticket.gone)).retention
    if ticket.status == "closed":
        return ticket.last_at + lateness
    if ticket.status == "solved":
        return ticket.last_at + max(policy_of(measured(contract, ticket)).retention, lateness)
    return None


def marker(ticket: Ticket, at: int) -> Ticket:
    """What is left of a finished ticket once it left the state at ``at``: its id, and those of
    its events."""
    ids = tuple((event.event_id, event.at) for event in ticket.history)
    return Ticket(ticket.ticket_id, "", "", gone=at, ids=ids)


def policy_of(contract: Contract) -> TicketPolicy:
    if contract.tickets is None:
        raise Rejected("invalid", f"contract {contract.id} has no ticket objectives")
    return contract.tickets


def _check_priority(policy: TicketPolicy, contract: Contract, priority: str | None) -> str:
    if priority not in policy.priorities:
        raise Rejected(
            "invalid",
            f"priority {priority!r} is not one of {', '.join(policy.priorities)} "
            f"defined by contract {contract.id}",
        )
    return priority


def adapt(contract: Contract, ticket: Ticket) -> Ticket:
    """Fit a stored ticket to the contract as loaded now: clocks of objectives the
    contract no longer has are dropped (their alerts were already decided)."""
    return tracked.adapt(policy_of(measured(contract, ticket)), ticket)


def check(contract: Contract, ticket: Ticket | None, event: TicketEvent) -> None:
    """Raise :class:`Rejected` if ``event`` cannot be applied to ``ticket`` (``None``: not created)."""
    contract = contract.at(event.at)
    policy = policy_of(contract)
    if event.type == ev.TICKET_CREATED:
        if ticket is not None:
            raise Rejected("invalid", f"ticket {event.ticket_id!r} was already created")
        _check_priority(policy, contract, event.priority)
    elif ticket is None:
        raise Rejected("invalid", f"{event.type} for ticket {event.ticket_id!r}, which was never created")
    elif event.at < ticket.history[0].at:
        raise Rejected("invalid", f"{event.type} occurred before ticket {event.ticket_id!r} was created")
    elif event.type == ev.TICKET_PRIORITY_CHANGED:
        _check_priority(policy, contract, event.priority)


def create(contract: Contract, event: TicketEvent) -> Ticket:
    """A new ticket: starts its first-response and resolution clocks."""
    contract = contract.at(event.at)
    policy = policy_of(contract)
    priority = event.priority or ""  # checked by check()
    ticket = Ticket(event.ticket_id, priority, event.status or "new", history=[event])
    if contract.versioned:
        ticket.version = contract.version
    for name in (FIRST_RESPONSE, RESOLUTION):
        objective = policy.objectives.get(name)
        if objective is not None:
            ticket.clocks[name] = _start(objective, priority, ticket.status, event.at, cycle=0)
    if ticket.status in DONE_STATUSES:
        for name, clock in ticket.clocks.items():
            tracked.stop(contract, policy, ticket, name, clock, event.at)
    return ticket


def apply(contract: Contract, ticket: Ticket, event: TicketEvent) -> list[Alert]:
    """Apply one event (already known not to be a duplicate) to an existing ticket, measured
    against the version in force at its time (a change at the same instant comes first)."""
    alerts = catch_up(contract, ticket, event.at)
    contract = measured(contract, ticket)
    return alerts + _apply(contract, policy_of(contract), ticket, event)


def _apply(contract: Contract, policy: TicketPolicy, ticket: Ticket, event: TicketEvent) -> list[Alert]:
    ticket.record(event)
    at = event.at
    if event.type == ev.TICKET_AGENT_REPLIED:
        for name in (FIRST_RESPONSE, NEXT_REPLY):
            clock = ticket.clocks.get(name)
            if clock is not None and not clock.stopped:
                tracked.stop(contract, policy, ticket, name, clock, at)
        return []
    if event.type == ev.TICKET_CUSTOMER_REPLIED:
        first = ticket.clocks.get(FIRST_RESPONSE)
        current = ticket.clocks.get(NEXT_REPLY)
        objective = policy.objectives.get(NEXT_REPLY)
        if (
            objective
            and ticket.priority in objective.targets  # a contract changed since may have dropped it
            and ticket.status not in DONE_STATUSES
            and (first is None or first.stopped)
            and (current is None or current.stopped)
        ):
            ticket.next_reply_cycles += 1
            ticket.clocks[NEXT_REPLY] = _start(
                objective, ticket.priority, ticket.status, at, ticket.next_reply_cycles
            )
        return []
    if event.type == ev.TICKET_STATUS_CHANGED:
        return _change_status(contract, policy, ticket, event)
    if event.type == ev.TICKET_PRIORITY_CHANGED:
        ticket.priority = event.priority or ticket.priority  # checked by check()
        alerts: list[Alert] = []
        for name, clock in ticket.clocks.items():
            if not clock.stopped:
                alerts += _retarget(contract, policy, ticket, name, clock, at)
        return alerts
    raise AssertionError(f"unhandled ticket event type {event.type!r}")  # decoder admits no others


def _start(objective: TicketObjective, priority: str, status: str, at: int, cycle: int) -> Clock:
    clock = Clock(target=objective.targets.get(priority, 0), cycle=cycle)
    if status not in objective.pause_on:
        clock.since = at
    return clock


def _change_status(
    contract: Contract, policy: TicketPolicy, ticket: Ticket, event: TicketEvent
) -> list[Alert]:
    at, old, new = event.at, ticket.status, event.status or ""
    ticket.status = new
    if new in DONE_STATUSES:
        for name, clock in ticket.clocks.items():
            if not clock.stopped:
                tracked.stop(contract, policy, ticket, name, clock, at)
        return []
    alerts: list[Alert] = []
    resolution = ticket.clocks.get(RESOLUTION)
    if old in DONE_STATUSES and resolution is not None and resolution.stopped:
        # A reopen: resolution runs on from where it stopped, same cycle.
        resolution.stopped = False
        alerts += _retarget(contract, policy, ticket, RESOLUTION, resolution, at)
    for name, clock in ticket.clocks.items():
        if clock.stopped:
            continue
        objective = policy.objectives[name]
        if new in objective.pause_on:
            clock.pause(objective.calendar, at)
        else:
            clock.resume(at)
    return alerts


def _retarget(
    contract: Contract, policy: TicketPolicy, ticket: Ticket, name: str, clock: Clock, at: int
) -> list[Alert]:
    """Give a clock its current priority's target; thresholds now in the past fire at once."""
    target = policy.objectives[name].targets.get(ticket.priority, clock.target)
    fractions, elapsed, deadline = tracked.retarget(contract, policy, ticket, name, clock, target, at)
    return [
        tracked.alert(contract, ticket, name, clock, f, elapsed, deadline, at, _details(ticket, name, clock))
        for f in fractions
    ]


measured = tracked.measured
change_due = tracked.change_due
needs_rebuild = tracked.needs_rebuild


def catch_up(contract: Contract, ticket: Ticket, until: int) -> list[Alert]:
    """Switch the ticket to each version that took effect by ``until`` (see ``tracked``)."""
    return tracked.catch_up(contract, ticket, until, _switch)


def _switch(was: Contract, now: Contract, ticket: Ticket, at: int) -> list[Alert]:
    """The change to version ``now`` at ``at``, as a priority change re-targets: each clock not
    stopped gets the new version's target for the ticket's priority (kept when it has none), its
    calendar and fractions, and runs or is paused by the ticket's status as the new version's
    ``pause_on`` says (see ``tracked.switch``)."""
    policy = policy_of(now)

    def runs_on(name: str, running: bool) -> bool:
        return ticket.status not in policy.objectives[name].pause_on

    def retarget(name: str, clock: Clock) -> list[Alert]:
        return _retarget(now, policy, ticket, name, clock, at)

    return tracked.switch(policy_of(was), policy, ticket, at, runs_on, retarget)


def due(contract: Contract, ticket: Ticket) -> Iterator[tuple[int, float, str]]:
    """The ticket's next thresholds not handed out yet (see ``tracked.due``)."""
    return tracked.due(policy_of(measured(contract, ticket)), ticket)


def scheduled_before(contract: Contract, ticket: Ticket) -> None:
    """Note the thresholds a decoded ticket handed out when it last changed."""
    tracked.scheduled_before(policy_of(measured(contract, ticket)), ticket)
    ticket.decoded = False


def fire(contract: Contract, ticket: Ticket, name: str, observed_at: int, fraction: float) -> Alert | None:
    """Fire a threshold that came due, if it is still the clock's next one."""
    contract = measured(contract, ticket)
    found = tracked.fire(contract, policy_of(contract), ticket, name, observed_at, fraction)
    if found is None:
        return None
    clock, elapsed, deadline = found
    details = _details(ticket, name, clock)
    return tracked.alert(contract, ticket, name, clock, fraction, elapsed, deadline, observed_at, details)


def rebuild(contract: Contract, old: Ticket, late: TicketEvent, now: int) -> tuple[Ticket, list[Alert]]:
    """Decide the ticket again with a late event in its place by time, up to ``now``.

    Alerts the new history gives that were not sent before are returned; alerts sent
    before that it no longer gives are retracted, and come back with a new id if ever.
    """
    history = sorted([*old.history, late], key=lambda event: event.at)  # stable: arrival order on ties
    assert history[0].type == ev.TICKET_CREATED, "check() rejects events before the creation"
    ticket = create(contract, history[0])
    ticket.revisions = dict(old.revisions)
    decided: list[Alert] = []
    for event in history[1:]:
        decided += fire_due(contract, ticket, event.at)
        decided += apply(contract, ticket, event)
    decided += fire_due(contract, ticket, now)
    was = measured(contract, old)
    was_policy = policy_of(was)

    def retraction(original: str, name: str, clock: Clock, fraction: float) -> Alert:
        details = {"priority": ticket.priority}
        return tracked.retraction(was, was_policy, ticket, name, clock, fraction, original, late.at, details)

    return ticket, tracked.settle(contract, old, ticket, decided, retraction)


def fire_due(contract: Contract, ticket: Ticket, before: int) -> list[Alert]:
    """Fire, in order, every threshold observed before ``before`` and every version change."""
    return tracked.fire_due(contract, ticket, before, policy_of, fire, _switch)


def _details(ticket: Ticket, name: str, clock: Clock) -> dict[str, Any]:
    """What a ticket's near-breach or breach says besides its fraction: the priority, and the
    cycle of a next reply."""
    details: dict[str, Any] = {"priority": ticket.priority}
    if name == NEXT_REPLY:
        details["cycle"] = clock.cycle
    return details
