"""Contract files, version 1, as validated records (docs/reference/contracts.md)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sla_stream.engine.model import RETENTION
from sla_stream.engine.time import parse_duration

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _duration(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration like 45s, 30m, 4h or 3d, got {value!r}")
    try:
        ms = parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a duration like 45s, 30m, 4h or 3d, got {value!r}") from None
    if ms <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return ms


Duration = Annotated[int, BeforeValidator(_duration)]
"""A duration written ``45s``/``30m``/``4h``/``3d``, held as milliseconds."""
Fraction = Annotated[float, Field(gt=0, lt=1)]
Ratio = Annotated[float, Field(gt=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HolidaySpec(_Strict):
    country: str | None = None
    subdivision: str | None = None
    dates: list[date] = []


class CalendarSpec(_Strict):
    weekly: dict[str, list[str]]
    holidays: HolidaySpec | None = None

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, weekly: dict[str, list[str]]) -> dict[str, list[str]]:
        for days, spans in weekly.items():
            expand_days(days)
            for span in spans:
                match = _HOURS.match(span)
                if (
                    not match
                    or (match[3], match[4]) <= (match[1], match[2])
                    or (match[3] == "24" and match[4] != "00")
                ):
                    raise ValueError(f"expected opening hours like 08:00-12:00, got {span!r} for {days}")
        return weekly


def expand_days(days: str) -> list[int]:
    """``mon-fri`` / ``sat,sun`` / ``wed`` as weekday numbers (Monday is 0)."""
    found: list[int] = []
    for part in days.lower().split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or any(end not in DAYS for end in ends):
            raise ValueError(f"expected days like mon-fri, sat or mon,wed, got {days!r}")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        if last < first:
            raise ValueError(f"day range {part.strip()!r} runs backwards")
        found.extend(range(first, last + 1))
    return found


class ExclusionSpec(_Strict):
    start: AwareDatetime
    end: AwareDatetime
    reason: str | None = None


class TicketObjectiveSpec(_Strict):
    calendar: str = "24x7"
    targets: dict[str, Duration]
    pause_on: list[str] = []


class TicketsSpec(_Strict):
    priorities: list[str] = Field(min_length=1)
    near_breach: list[Fraction] = [0.75]
    objectives: dict[Literal["first_response", "next_reply", "resolution"], TicketObjectiveSpec]
    compliance_target: Ratio | None = None
    retention: Duration = RETENTION


class ServiceLevelSpec(_Strict):
    answer_within: Duration
    target: Ratio
    interval: Duration = 30 * 60_000
    short_abandon: Duration | None = None


class AbandonRateSpec(_Strict):
    max: Ratio
    interval: Duration = 30 * 60_000


class SpeedOfAnswerSpec(_Strict):
    max: Duration
    interval: Duration = 30 * 60_000


class CallsSpec(_Strict):
    service_level: ServiceLevelSpec | None = None
    abandon_rate: AbandonRateSpec | None = None
    speed_of_answer: SpeedOfAnswerSpec | None = None


def _window(value: object) -> object:
    return value if value == "calendar_month" else _duration(value)


Window = Annotated[int | Literal["calendar_month"], BeforeValidator(_window)]


class AvailabilitySpec(_Strict):
    target: Ratio
    window: Window = 30 * 86_400_000


class LatencySpec(_Strict):
    threshold_ms: float = Field(gt=0)
    target: Ratio
    window: Window = 30 * 86_400_000


class BurnRateSpec(_Strict):
    long: Duration
    short: Duration
    factor: float = Field(gt=0)
    severity: str = "page"


class RequestsSpec(_Strict):
    availability: AvailabilitySpec | None = None
    latency: LatencySpec | None = None
    burn_rate_alerts: Literal["default", "none"] | list[BurnRateSpec] = "default"


_TYPE = r"^[a-z][a-z0-9_]{0,63}\.[a-z0-9_.]{1,64}$"
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
#: Fields every event has: a rule, the item key or the target field cannot be one of them.
_ENVELOPE = frozenset({"event_id", "type", "contract_id", "occurred_at"})
#: Alert details the engine writes itself: the target field cannot take their place.
_DETAILS = frozenset({"fraction", "retracts", "priority", "cycle"})


def _rule_fields(where: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    for name in where:
        if name in _ENVELOPE:
            raise ValueError(f"{name} is part of every event; a rule looks at the event's other fields")
    return where


def _listed(value: object) -> object:
    return [value] if isinstance(value, dict) else value


class MatchSpec(_Strict):
    """``{event: shipment.status_changed, where: {status: [customs_hold, force_majeure]}}``."""

    event: str = Field(pattern=_TYPE)
    where: dict[str, str | list[str]] = {}

    @field_validator("where")
    @classmethod
    def _where(cls, where: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return _rule_fields(where)


Matches = Annotated[list[MatchSpec], BeforeValidator(_listed)]
"""One rule, or a list of rules any of which matches."""


class ClockSpec(_Strict):
    calendar: str = "24x7"
    target: Duration | None = None
    target_by: str | None = None
    targets: dict[str, Duration] | None = None
    start: Matches = Field(min_length=1)
    stop: Matches = Field(min_length=1)
    pause: Matches = []
    resume: Matches = []

    @model_validator(mode="after")
    def _one_target(self) -> ClockSpec:
        if (self.target is None) == (self.targets is None):
            raise ValueError("expected exactly one of target or targets")
        if (self.targets is None) != (self.target_by is None):
            raise ValueError("targets go with target_by, the field whose value picks one")
        if self.target_by in _ENVELOPE | _DETAILS:
            raise ValueError(f"target_by: {self.target_by} is taken (by the event or the alert details)")
        return self


class ItemsSpec(_Strict):
    kind: str = Field(pattern=_NAME)
    key: str = "item_id"
    near_breach: list[Fraction] = [0.75]
    objectives: dict[Annotated[str, Field(pattern=_NAME)], ClockSpec] = Field(min_length=1)
    compliance_target: Ratio | None = None
    retention: Duration = RETENTION

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str) -> str:
        if kind in ("ticket", "call", "request", "queue", "service"):
            raise ValueError(f"{kind} is built in; items are another kind, like shipment")
        return kind

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        if key in _ENVELOPE:
            raise ValueError(f"{key} is part of every event; the item key is another field, like parcel_id")
        return key


class CompensationSpec(_Strict):
    """A fixed amount per late item (``objective``) or per item an event flags (``event``)."""

    amount: float = Field(ge=0)
    objective: str | None = None
    reason: str | None = Field(default=None, pattern=_NAME)
    event: str | None = Field(default=None, pattern=_TYPE)
    where: dict[str, str | list[str]] = {}

    @field_validator("where")
    @classmethod
    def _where(cls, where: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return _rule_fields(where)

    @model_validator(mode="after")
    def _one_cause(self) -> CompensationSpec:
        if (self.objective is None) == (self.event is None):
            raise ValueError("expected exactly one of objective (per breach) or event (per flagged item)")
        if self.event is not None and self.reason is None:
            raise ValueError("an item flagged by an event needs a reason, like damaged")
        return self


class FeeSpec(_Strict):
    amount: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, like USD")


class TierSpec(_Strict):
    objective: str
    below: Ratio | None = None
    above: float | str | None = None
    """For objectives that must stay under a maximum: a ratio (abandon rate) or a duration
    (speed of answer); checked against the objective when the contract is built."""
    credit_percent: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _one_limit(self) -> TierSpec:
        if (self.below is None) == (self.above is None):
            raise ValueError("expected exactly one of below or above")
        return self


class PenaltiesSpec(_Strict):
    period: Literal["calendar_month"] = "calendar_month"
    monthly_fee: FeeSpec
    tiers: list[TierSpec] = []
    compensation: list[CompensationSpec] = []


class ContractSpec(_Strict):
    """A contract file after ``extends`` is merged in."""

    version: Literal[1]
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    extends: str | None = None
    abstract: bool = False
    customer: str | None = None
    timezone: str = "UTC"
    calendars: dict[str, CalendarSpec] = {}
    exclusions: list[ExclusionSpec] = []
    tickets: TicketsSpec | None = None
    calls: CallsSpec | None = None
    requests: RequestsSpec | None = None
    items: ItemsSpec | None = None
    penalties: PenaltiesSpec | None = None
    version_name: str | None = Field(default=None, min_length=1)
    """The name of the terms above, the first version (``initial`` when not given)."""
    versions: list[dict[str, Any]] | None = None
    """Later versions: each ``effective_from``, an optional ``name`` and the terms that change,
    deep-merged over the version before it (checked and merged by the loader)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone like Europe/Paris, got {name!r}") from None
        return name
