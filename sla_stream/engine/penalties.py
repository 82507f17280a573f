"""Service credits: what each period counted per contract, and the statement billing gets.

Periods are calendar months in the contract's time zone, named ``YYYY-MM``.
Every engine keeps a :class:`Ledger` per contract with what it counted in
each period: ticket outcomes (booked to the period in which they were
decided), calls handled, and requests outside exclusion windows. When the
event-time clock of every engine measuring a contract reaches the end of a
period plus the allowed lateness, nothing more can be counted in it: the
:class:`Closer` adds the engines' ledgers up into one :class:`Statement`,
drops the period, and moves the contract's mark on to the next one. The mark
is state too, so a restarted worker neither skips a period nor settles it
twice.

Attainment per objective, from the period's counts:

- tickets: clocks that met their target ÷ clocks decided;
- calls: service level = answered in time ÷ handled, abandon rate = abandoned
  ÷ handled (short abandons left out of both), speed of answer = average wait
  of the answered calls, in seconds;
- requests: good ÷ total.

The highest credit among an objective's tiers whose condition holds applies
(``below``: the measure is under the limit; ``above``, for abandon rate and
speed of answer: over it); exactly at the limit earns nothing. Credits add up
over objectives, capped at 100%; the amount is that share of the monthly fee,
rounded half up to the cent. Targets, tiers and fee are those of the contract's
version in force at the period's last instant.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sla_stream.engine.model import (
    FLAG_PREFIX,
    LOWER_IS_BETTER,
    SERVICE_LEVEL,
    SPEED_OF_ANSWER,
    Compensation,
    Contract,
    Tier,
)
from sla_stream.engine.time import from_ms, to_ms

if TYPE_CHECKING:
    from sla_stream.engine.processor import Engine

log = logging.getLogger("sla_stream.statements")

CALLS, REQUESTS = "calls", "requests"
"""Ledger names of the call tally (answered, within, abandoned, short, wait ms) and of the
request counts (total, good, latency total, latency good); ticket objectives are booked
under their own names as (met, decided)."""
#: ``attained`` in a statement has six decimal places.
_SCALE = 1_000_000
_CENT = Decimal("0.01")


def period_of(zone: ZoneInfo, at: int) -> str:
    """The period (``YYYY-MM`` in ``zone``) holding instant ``at``."""
    local = from_ms(at, zone)
    return f"{local.year:04d}-{local.month:02d}"


def bounds(zone: ZoneInfo, period: str) -> tuple[int, int]:
    """Start and end instants of a period: local midnight of its first day and of the next month's."""
    year, month = int(period[:4]), int(period[5:7])
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return to_ms(datetime(year, month, 1, tzinfo=zone)), to_ms(datetime(*following, 1, tzinfo=zone))


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


@dataclass(slots=True)
class Ledger:
    """What one engine counted for one contract, per period and name."""

    periods: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    """Per input topic, the offset after the last message counted here: a message processed
    again after a crash (at-least-once) is not counted twice."""
    since: tuple[int, int] = (-1, -1)
    """The engine's ``epoch`` when ``recent`` began."""
    recent: set[tuple[int, str, str]] = field(default_factory=set)
    """``(observed_at, ticket, objective)`` of the breaches counted here that fell due by time
    since the state was last written in full: only those can fall due again after a crash."""
    _span: tuple[int, int, str] = (0, 0, "")
    """The period last looked up, with its bounds (in memory only)."""

    def period(self, zone: ZoneInfo, at: int) -> str:
        """:func:`period_of`, cheap for instants in the period last asked for."""
        start, end, period = self._span
        if not start <= at < end:
            period = period_of(zone, at)
            self._span = (*bounds(zone, period), period)
        return period

    def add(self, period: str, name: str, counts: Sequence[int]) -> None:
        """Add counts (negative ones take back) under ``name`` in ``period``."""
        counted = self.periods.get(period)
        if counted is None:
            counted = self.periods[period] = {}
        total = counted.get(name)
        if total is None:
            counted[name] = list(counts)
        else:
            for index, n in enumerate(counts):
                total[index] += n

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"p": self.periods, "c": self.counted}
        if self.recent:
            state["s"], state["r"] = list(self.since), sorted(self.recent)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ledger:
        periods = state["p"]
        return cls(
            {period: {name: list(c) for name, c in names.items()} for period, names in periods.items()},
            dict(state["c"]),
            (state["s"][0], state["s"][1]) if "s" in state else (-1, -1),
            {(at, ticket, objective) for at, ticket, objective in state.get("r", ())},
        )


@dataclass(frozen=True, slots=True)
class Attainment:
    """One objective's measure over a period, and the credit it earns."""

    objective: str
    measure: Fraction
    """A ratio, or seconds for speed of answer."""
    target: float | None
    counts: Mapping[str, int | float]
    tier: Tier | None

    @property
    def credit_percent(self) -> Decimal:
        return self.tier.credit_percent if self.tier is not None else Decimal(0)

    @property
    def attained(self) -> float:
        """The measure to six places, rounded toward the tier condition: a shortfall never
        shows as met (0.9989996 is 0.998999), nor an excess as within (0.0500001 is 0.050001)."""
        scaled = self.measure * _SCALE
        whole = math.ceil(scaled) if self.objective in LOWER_IS_BETTER else math.floor(scaled)
        return whole / _SCALE


@dataclass(frozen=True, slots=True)
class Paid:
    """One compensation rule's amount for a period: ``count`` items at ``each``."""

    reason: str
    objective: str | None
    count: int
    each: Decimal

    @property
    def amount(self) -> Decimal:
        return self.each * self.count


@dataclass(frozen=True, slots=True)
class Statement:
    """A contract's statement for one closed period."""

    contract: Contract
    period: str
    start: int
    end: int
    objectives: tuple[Attainment, ...]
    credit_percent: Decimal
    """Summed over objectives, capped at 100."""
    credit: Decimal
    """That share of the monthly fee, to the cent."""
    currency: str
    excluded_ms: int
    """Time inside the period covered by exclusion windows."""
    compensation: tuple[Paid, ...] = ()
    """Amounts per late or flagged item (in ``credit`` too), one per compensation rule."""
    versions: tuple[tuple[Contract, int, int], ...] = ()
    """Of a versioned contract: each version in force for some part of the period, with the
    start and end of that part, in order."""

    @property
    def statement_id(self) -> str:
        return f"{self.contract.id}/{self.period}"


def statement(contract: Contract, period: str, ledgers: Collection[Ledger]) -> Statement:
    """The statement of ``period`` from what every engine counted for ``contract``."""
    start, end = bounds(contract.zone, period)
    parts = spans(contract, start, end)
    version = parts[-1][0]
    policy = version.penalties
    assert policy is not None, "only contracts with penalties get statements"
    counted = tally(ledgers, period)
    attained = []
    for objective, measure, target, counts in measures(version, counted):
        tiers = [t for t in policy.tiers if t.objective == objective and _holds(t, measure)]
        tier = max(tiers, key=lambda t: t.credit_percent, default=None)
        attained.append(Attainment(objective, measure, target, counts, tier))
    percent = min(Decimal(100), sum((a.credit_percent for a in attained), Decimal(0)))
    paid = tuple(
        Paid(rule.reason, rule.objective, _compensated(rule, counted), rule.amount)
        for rule in policy.compensation
    )
    credit = (policy.fee * percent / 100 + sum((p.amount for p in paid), Decimal(0))).quantize(
        _CENT, rounding=ROUND_HALF_UP
    )
    return Statement(
        contract=contract,
        period=period,
        start=start,
        end=end,
        objectives=tuple(attained),
        credit_percent=percent,
        credit=credit,
        currency=policy.currency,
        excluded_ms=sum(part.exclusions.overlap(lo, hi) for part, lo, hi in parts),
        versions=tuple(parts) if contract.versions else (),
        compensation=paid,
    )


def _compensated(rule: Compensation, counted: Mapping[str, Sequence[int]]) -> int:
    """Items a rule pays for: breaches of its objective, or items flagged with its reason."""
    if rule.objective is not None:
        met, total = counted.get(rule.objective, (0, 0))
        return total - met
    return counted.get(FLAG_PREFIX + rule.reason, (0, 0))[1]


def spans(contract: Contract, start: int, end: int) -> list[tuple[Contract, int, int]]:
    """``(version, from, to)`` for each version of ``contract`` in force during ``[start, end)``."""
    found = []
    while start < end:
        following = contract.changes_after(start)
        until = end if following is None else min(end, following)
        found.append((contract.at(start), start, until))
        start = until
    return found


def tally(ledgers: Iterable[Ledger], period: str) -> dict[str, list[int]]:
    """What several engines' ledgers counted in ``period``, added up per name."""
    counted: dict[str, list[int]] = {}
    for ledger in ledgers:
        for name, numbers in ledger.periods.get(period, {}).items():
            total = counted.setdefault(name, [0] * len(numbers))
            for index, n in enumerate(numbers):
                total[index] += n
    return counted


def measures(
    contract: Contract, counted: Mapping[str, Sequence[int]]
) -> list[tuple[str, Fraction, float | None, dict[str, int | float]]]:
    """``(objective, measure, target, counts)`` of every objective with something to count,
    tickets first, then calls, then requests."""
    found: list[tuple[str, Fraction, float | None, dict[str, int | float]]] = []
    if contract.tickets is not None:
        for name in contract.tickets.objectives:
            met, total = counted.get(name, (0, 0))
            if total:
                counts: dict[str, int | float] = {"met": met, "total": total}
                found.append((name, Fraction(met, total), contract.tickets.compliance_target, counts))
    if contract.items is not None:
        for name in contract.items.objectives:
            met, total = counted.get(name, (0, 0))
            if total:
                shares: dict[str, int | float] = {"met": met, "total": total}
                found.append((name, Fraction(met, total), contract.items.compliance_target, shares))
    if contract.calls is not None and CALLS in counted:
        answered, within, abandoned, short, wait_ms = counted[CALLS]
        handled = answered + abandoned - short
        for name, objective in contract.calls.objectives.items():
            if name == SPEED_OF_ANSWER:
                if answered:
                    waited = {"total": answered, "wait_seconds": wait_ms / 1000}
                    found.append((name, Fraction(wait_ms, answered * 1000), objective.target / 1000, waited))
            elif handled:
                kept = within if name == SERVICE_LEVEL else abandoned - short
                label = "met" if name == SERVICE_LEVEL else "abandoned"
                found.append(
                    (name, Fraction(kept, handled), objective.target, {label: kept, "total": handled})
                )
    if contract.requests is not None and REQUESTS in counted:
        total, good, latency_total, latency_good = counted[REQUESTS]
        for name, wanted in contract.requests.objectives.items():
            ok, of = (latency_good, latency_total) if name != "availability" else (good, total)
            if of:
                found.append((name, Fraction(ok, of), wanted.target, {"good": ok, "total": of}))
    return found


def _holds(tier: Tier, measure: Fraction) -> bool:
    limit = Fraction(str(tier.limit))
    return measure > limit if tier.objective in LOWER_IS_BETTER else measure < limit


class Closer:
    """Settles the periods of one partition's contracts.

    ``marks`` holds, per contract, the next period to settle; it is part of the
    partition's state. A contract's periods are settled from the first one in
    which any of its events was counted. Without an allowed lateness any late
    event is accepted, so nothing is final before the end: only ``final`` settles.
    """

    def __init__(
        self,
        contracts: Callable[[str], Contract | None],
        allowed_lateness: int | None,
        marks: MutableMapping[str, str],
    ) -> None:
        self._contract = contracts
        self.lateness = allowed_lateness
        self.marks = marks
        self._next = -1
        """The earliest instant some contract's period may close (-1: not worked out yet)."""
        self._opened = -1
        self._failed: set[str] = set()

    def close(self, engines: Mapping[str, Engine], final: int | None = None) -> list[Statement]:
        """Statements of every period whose end plus the allowed lateness the clocks reached.

        ``engines`` maps each source (``ticket``, ``call``, ``request``) to the engine counting
        it; a contract's period closes once the clock of every source it measures has reached
        the end. ``final`` stands for every clock at the end of a replay.
        """
        distinct = list({id(engine): engine for engine in engines.values()}.values())
        opened = sum(engine.opened for engine in distinct)
        clocks = [engine.clock for engine in distinct if engine.clock is not None]
        latest = final if final is not None else max(clocks, default=None)
        if final is None and self.lateness is None:
            return []
        if latest is None or (opened == self._opened and latest < self._next):
            return []
        self._opened = opened
        self._next = _NEVER
        contracts = set(self.marks)
        for engine in distinct:
            contracts.update(engine.ledgers)
        settled: list[Statement] = []
        for contract_id in sorted(contracts):
            contract = self._contract(contract_id)
            if contract is None:
                continue
            now = final if final is not None else _clock(engines, contract)
            try:
                settled += self._settle(contract, distinct, now)
            except Exception:  # a defect must not cost other contracts their statements
                if contract_id not in self._failed:
                    log.exception("periods of contract %s could not be settled; trying again", contract_id)
                self._failed.add(contract_id)
                self._next = -1
        return settled

    def _settle(self, contract: Contract, engines: list[Engine], now: int | None) -> list[Statement]:
        """Settle the contract's periods that closed by ``now``; note when the next one closes."""
        holders = [engine for engine in engines if contract.id in engine.ledgers]
        ledgers = [engine.ledgers[contract.id] for engine in holders]
        mark = self.marks.get(contract.id)
        if mark is None:  # nothing settled yet: start with the first period counted
            mark = min((period for ledger in ledgers for period in ledger.periods), default=None)
            if mark is None:
                return []
        period, settled = mark, []
        lateness = self.lateness or 0
        end = bounds(contract.zone, period)[1] + lateness
        while now is not None and end <= now:
            if contract.penalties is not None:
                settled.append(statement(contract, period, ledgers))
            period = next_period(period)
            end = bounds(contract.zone, period)[1] + lateness
        for engine, ledger in zip(holders, ledgers, strict=True):
            # Settled periods go; so would any a late event could not have counted in anyway.
            done = [p for p in ledger.periods if p < period]
            for old in done:
                del ledger.periods[old]
            if not ledger.periods:
                del engine.ledgers[contract.id]
            elif done:
                engine.ledgers[contract.id] = ledger  # changed: the store writes it
        if period != mark:
            self.marks[contract.id] = period
        self._next = min(self._next, end)
        return settled


def _clock(engines: Mapping[str, Engine], contract: Contract) -> int | None:
    """The earliest clock among the engines of the sources ``contract`` measures."""
    clocks = []
    for source in contract.sources:
        engine = engines.get(source)
        if engine is None or engine.clock is None:
            return None
        clocks.append(engine.clock)
    return min(clocks, default=None)


_NEVER = 2**63
