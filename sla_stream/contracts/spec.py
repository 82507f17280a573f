"""Contract files, version 1, as validated records (the SPEC's section 3)."""

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
