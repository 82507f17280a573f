"""Service credits: the statement billing gets for one contract and period.

Attainment per objective, from the period's counts (the ledgers of every engine measuring
the contract added up):

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

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from sla_stream.engine.ledger import CALLS, REQUESTS, Ledger
from sla_stream.engine.model import (
    FLAG_PREFIX,
    LOWER_IS_BETTER,
    SERVICE_LEVEL,
    SPEED_OF_ANSWER,
    Compensation,
    Contract,
    Tier,
)
from sla_stream.engine.periods import bounds

#: ``attained`` in a statement has six decimal places.
_SCALE = 1_000_000
_CENT = Decimal("0.01")


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
