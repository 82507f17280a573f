"""What a contract's request objectives ask, worked out once per contract object: where each
objective's counts are in a minute bucket, its error budget and burn-rate rules, and the
arithmetic of burn rates and budgets."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from sla_stream.engine.events import Rejected
from sla_stream.engine.model import (
    AVAILABILITY,
    MONTH_WINDOW,
    BurnRateRule,
    Contract,
    RequestObjective,
    RequestPolicy,
)
from sla_stream.engine.time import MINUTE_MS

# Bucket fields: requests, good for availability, counted for latency, good for latency.
TOTAL, GOOD, LATENCY_TOTAL, LATENCY_GOOD = range(4)
#: Burn rates and ratios are compared after rounding away float noise: a steady 1.44%
#: error rate on a 99.9% target is a burn rate of exactly 14.4, which does not exceed 14.4.
_DIGITS = 9


def policy_of(contract: Contract) -> RequestPolicy:
    if contract.requests is None:
        raise Rejected("invalid", f"contract {contract.id!r} has no request objectives")
    return contract.requests


def counted(objective: RequestObjective) -> tuple[int, int]:
    """Where an objective's good and total counts are in a bucket."""
    return (GOOD, TOTAL) if objective.name == AVAILABILITY else (LATENCY_GOOD, LATENCY_TOTAL)


@dataclass(frozen=True, slots=True)
class PlannedRule:
    """A burn-rate rule as one objective evaluates it: windows in minutes, its key in
    ``Service.firing``."""

    rule: BurnRateRule
    key: str
    long: int
    short: int


@dataclass(frozen=True, slots=True)
class PlannedObjective:
    """An objective as an evaluation reads it."""

    objective: RequestObjective
    good_at: int
    total_at: int
    budget: float
    rules: tuple[PlannedRule, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What evaluating one version's policy needs: objectives with their rules, and the
    windows in minutes (the calendar month apart)."""

    objectives: tuple[PlannedObjective, ...]
    minutes: tuple[int, ...]
    month: bool


def plan(policy: RequestPolicy) -> Plan:
    objectives = []
    for objective in policy.objectives.values():
        good_at, total_at = counted(objective)
        rules = tuple(
            PlannedRule(
                rule,
                f"{objective.name}|{rule.long}|{rule.short}",
                rule.long // MINUTE_MS,
                rule.short // MINUTE_MS,
            )
            for rule in policy.burn_rates
        )
        objectives.append(PlannedObjective(objective, good_at, total_at, 1 - objective.target, rules))
    return Plan(
        tuple(objectives),
        tuple(int(window) for window in policy.windows if window != MONTH_WINDOW),
        MONTH_WINDOW in policy.windows,
    )


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Terms:
    """What one contract object (every version of it) asks of its services' requests, worked
    out once: contracts are immutable. Held by the services measured against it (see
    :func:`~sla_stream.engine.request_state.terms`), so it goes, and its contract with it,
    when they no longer are."""

    contract: Contract
    reach: int
    """How many minutes a bucket stays inside some window of any version."""
    plans: Mapping[int, Plan]
    """By ``id`` of each version (``contract`` holds them, so the ids stay theirs)."""

    def plan(self, version: Contract) -> Plan:
        """The plan of ``version`` (of this contract)."""
        return self.plans[id(version)]


#: The terms some service holds, by ``id`` of their contract, so that the services of one
#: contract share them; an entry goes with the last service holding it. While it is here it
#: holds its contract, so no other object can have that id.
_shared: weakref.WeakValueDictionary[int, Terms] = weakref.WeakValueDictionary()


def terms_of(contract: Contract) -> Terms:
    """The terms of ``contract``, shared with the other services measured against it."""
    found = _shared.get(id(contract))
    if found is None or found.contract is not contract:
        versions = (contract, *contract.versions)
        policies = [policy_of(version) for version in versions]
        plans = {id(version): plan(policy) for version, policy in zip(versions, policies, strict=True)}
        found = _shared[id(contract)] = Terms(contract, max(p.reach for p in policies), plans)
    return found


def burn_rate(sums: list[int], good_at: int, total_at: int, budget: float) -> float:
    """How fast the window spends the error budget: 1 spends it exactly over the objective's window."""
    total = sums[total_at]
    if total == 0:
        return 0.0
    return round((total - sums[good_at]) / total / budget, _DIGITS)


def budget_remaining(sums: list[int], good_at: int, total_at: int, target: float) -> float | None:
    """Share of the window's error budget left: 1 untouched, 0 spent, below 0 overspent."""
    total = sums[total_at]
    if total == 0:
        return None
    allowed = total * (1 - target)
    return round(1 - (total - sums[good_at]) / allowed, _DIGITS)


#: Rounding to ``_DIGITS`` moves a value by at most half of 10**-_DIGITS: outside this margin of
#: a threshold the comparison of the unrounded value gives the same answer, without rounding.
_MARGIN = 1e-6


def above(value: float, threshold: float) -> bool:
    """``round(value, _DIGITS) > threshold``, rounding only near the threshold."""
    if value > threshold + _MARGIN:
        return True
    if value < threshold - _MARGIN:
        return False
    return round(value, _DIGITS) > threshold


def below(value: float, threshold: float) -> bool:
    """``round(value, _DIGITS) < threshold``, rounding only near the threshold."""
    if value < threshold - _MARGIN:
        return True
    if value > threshold + _MARGIN:
        return False
    return round(value, _DIGITS) < threshold
