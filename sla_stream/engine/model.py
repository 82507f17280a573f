"""The immutable contract model the engine measures against (built from contract files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sla_stream.engine.calendar import Calendar, Exclusions

TICKET_OBJECTIVES = ("first_response", "next_reply", "resolution")


@dataclass(frozen=True, slots=True)
class TicketObjective:
    """One ticket clock: which calendar it counts on and its target per priority."""

    name: str
    """``first_response``, ``next_reply`` or ``resolution``."""
    calendar: Calendar
    """Open time the clock counts (exclusions already cut out)."""
    targets: Mapping[str, int]
    """Target in open milliseconds, by priority."""
    pause_on: frozenset[str] = frozenset()
    """Ticket statuses in which this clock is paused."""


@dataclass(frozen=True, slots=True)
class TicketPolicy:
    """The ``tickets`` section of a contract."""

    priorities: tuple[str, ...]
    """Priorities a ticket may have; any other is rejected."""
    near_breach: tuple[float, ...]
    """Fractions of the target at which near-breach alerts fire, ascending."""
    objectives: Mapping[str, TicketObjective]
    """The objectives the contract sets, by name."""
    compliance_target: float | None = None
    """Share of tickets per period that must meet each objective."""


@dataclass(frozen=True, slots=True)
class Contract:
    """One SLA contract, after ``extends`` is resolved and every field validated."""

    id: str
    """The contract id events name in ``contract_id``."""
    zone: ZoneInfo
    """Calendars, periods and alert timestamps are in this zone."""
    customer: str | None = None
    """Who the contract is with, for people reading alerts."""
    exclusions: Exclusions = field(default_factory=Exclusions)
    """Maintenance windows in which no clock runs and no request counts."""
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    """Named calendars, ``24x7`` always among them."""
    tickets: TicketPolicy | None = None
    """Ticket objectives, when the contract has any."""
