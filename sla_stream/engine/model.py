"""The immutable contract model the engine measures against (built from contract files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from sla_stream.engine.calendar import Calendar, Exclusions
from sla_stream.engine.events import ItemEvent

TICKET_OBJECTIVES = ("first_response", "next_reply", "resolution")
SOURCES = ("ticket", "call", "request", "item")
"""The kinds of input, in the order of the input topics: the part of an event ``type`` before the dot."""


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


RETENTION = 7 * 86_400_000
"""Seven days: the ``retention`` of a tickets or items section that names none."""


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
    retention: int = RETENTION
    """How long a solved ticket that is never closed stays in the state after its last event,
    and how long the id of a ticket removed from the state is remembered (milliseconds)."""


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
    calls: CallPolicy | None = None
    """Call-centre objectives, when the contract has any."""
    requests: RequestPolicy | None = None
    """Request objectives, when the contract has any."""
    penalties: PenaltyPolicy | None = None
    """Service credits per period, when the contract sets any."""
    items: ItemPolicy | None = None
    """Clocks the contract configures on items of its own kind (parcels, claims), when it has any."""
    version: str = "initial"
    """The name of this version of the contract's terms (``initial`` for the first, unless the
    file says otherwise in ``version_name``)."""
    effective_from: int | None = None
    """The instant this version took effect; ``None`` for the first."""
    versions: tuple[Contract, ...] = ()
    """On the first version (what the loader returns): every later version, by ``effective_from``
    ascending; each of them has none. Every version has the same id, zone and sections."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The kinds of input the contract measures, among :data:`SOURCES`."""
        policies = (self.tickets, self.calls, self.requests, self.items)
        return tuple(kind for kind, policy in zip(SOURCES, policies, strict=True) if policy is not None)

    @property
    def versioned(self) -> bool:
        """Whether the contract's file has more than one version (this one being any of them)."""
        return bool(self.versions) or self.effective_from is not None

    def at(self, instant: int) -> Contract:
        """The version in force at ``instant``: the last to take effect at or before it."""
        for version in reversed(self.versions):
            if version.effective_from is not None and version.effective_from <= instant:
                return version
        return self

    def changes_after(self, instant: int) -> int | None:
        """The next instant after ``instant`` at which another version takes effect."""
        for version in self.versions:
            if version.effective_from is not None and version.effective_from > instant:
                return version.effective_from
        return None


SERVICE_LEVEL, ABANDON_RATE, SPEED_OF_ANSWER = "service_level", "abandon_rate", "speed_of_answer"


@dataclass(frozen=True, slots=True)
class CallObjective:
    """One call-centre objective, judged per queue and interval."""

    name: str
    """``service_level``, ``abandon_rate`` or ``speed_of_answer``."""
    interval: int
    """Interval length in milliseconds; intervals are aligned to local midnight."""
    target: float
    """Service level: the least share answered in time; abandon rate: the largest share
    abandoned; speed of answer: the longest average wait, in milliseconds."""


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """The ``calls`` section of a contract."""

    objectives: Mapping[str, CallObjective]
    answer_within: int | None = None
    """A call answered within this many milliseconds counts as answered in time."""
    short_abandon: int | None = None
    """A call abandoned within this many milliseconds counts neither way."""


AVAILABILITY, LATENCY = "availability", "latency"
CALENDAR_MONTH = "calendar_month"
MONTH_WINDOW = "month"
"""The calendar-month window among a policy's windows (the others are in minutes)."""


@dataclass(frozen=True, slots=True)
class BurnRateRule:
    """One multiwindow burn-rate alert: both windows' burn rates must exceed ``factor``."""

    long: int
    short: int
    factor: float
    severity: str


@dataclass(frozen=True, slots=True)
class RequestObjective:
    """An availability or latency objective over a rolling or calendar-month window."""

    name: str
    """``availability`` or ``latency``."""
    target: float
    window: int | str
    """Milliseconds, or ``calendar_month`` (in the contract's zone)."""
    threshold_ms: float | None = None
    """Latency only: a request at or under this is good."""

    @property
    def window_key(self) -> int | str:
        """The window in minutes, or :data:`MONTH_WINDOW`."""
        return MONTH_WINDOW if self.window == CALENDAR_MONTH else int(self.window) // 60_000


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """The ``requests`` section of a contract."""

    objectives: Mapping[str, RequestObjective]
    burn_rates: tuple[BurnRateRule, ...] = ()
    windows: tuple[int | str, ...] = ()
    """Every window evaluated, in minutes, or ``month`` for the calendar month (derived)."""
    reach: int = 0
    """How many minutes a one-minute bucket stays inside some window (derived)."""


@dataclass(frozen=True, slots=True)
class Match:
    """An item event a clock rule reacts to: its type, and values some of its fields must have."""

    type: str
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Field -> the values that match (any one of them)."""

    def matches(self, event: ItemEvent) -> bool:
        if event.type != self.type:
            return False
        return all(event.field(name) in values for name, values in self.where.items())


@dataclass(frozen=True, slots=True)
class ClockObjective:
    """A clock a contract configures: started, paused, resumed and stopped by item events."""

    name: str
    calendar: Calendar
    """Open time the clock counts (exclusions already cut out)."""
    targets: Mapping[str, int]
    """Target in open milliseconds, by the value of ``target_by`` (``""`` when there is none)."""
    target_by: str | None
    """The item field whose value picks the target (``service_class``), if targets differ."""
    start: tuple[Match, ...]
    stop: tuple[Match, ...]
    pause: tuple[Match, ...] = ()
    resume: tuple[Match, ...] = ()
    """Empty: an event of a pause rule's type that matches no pause rule resumes the clock."""

    def resumes(self, event: ItemEvent) -> bool:
        if self.resume:
            return any(rule.matches(event) for rule in self.resume)
        return any(rule.type == event.type for rule in self.pause)


@dataclass(frozen=True, slots=True)
class ItemPolicy:
    """The ``items`` section of a contract."""

    kind: str
    """The part of the event types before the dot (``shipment``); alerts' ``subject.kind``."""
    key: str
    """The event field naming the item (``parcel_id``)."""
    near_breach: tuple[float, ...]
    objectives: Mapping[str, ClockObjective]
    compliance_target: float | None = None
    flags: Mapping[str, Match] = field(default_factory=dict)
    """Per-item compensation reasons decided by an event (``damaged``), by reason."""
    retention: int = RETENTION
    """How long an item with clocks left that never started stays in the state after its last
    event, and how long the id of an item removed from the state is remembered (milliseconds)."""

    def target_fields(self) -> frozenset[str]:
        return frozenset(o.target_by for o in self.objectives.values() if o.target_by is not None)


FLAG_PREFIX = "flag:"
"""Ledger names of per-item compensation reasons (``flag:damaged``) are counted as (1, 1)."""


@dataclass(frozen=True, slots=True)
class Compensation:
    """A fixed amount per item: per breach of ``objective``, or per item flagged ``reason``."""

    reason: str
    amount: Decimal
    objective: str | None = None


LOWER_IS_BETTER = frozenset({ABANDON_RATE, SPEED_OF_ANSWER})
"""Objectives whose measure must stay under a maximum (their tiers say ``above``)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A service credit earned when an objective's measure for a period is past ``limit``."""

    objective: str
    limit: float
    """``below`` (the measure must not fall under it), or for :data:`LOWER_IS_BETTER`
    objectives ``above`` (speed of answer in seconds)."""
    credit_percent: Decimal


@dataclass(frozen=True, slots=True)
class PenaltyPolicy:
    """The ``penalties`` section: per calendar month in the contract's zone."""

    fee: Decimal
    currency: str
    tiers: tuple[Tier, ...] = ()
    compensation: tuple[Compensation, ...] = ()
    """Amounts per late or flagged item, added to the credit."""
