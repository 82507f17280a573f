"""Request objectives: availability and latency SLOs, error budgets and burn-rate alerts.

Requests are counted in one-minute buckets of event time (UTC minutes), per
contract and service, so memory per service is bounded by the longest
window whatever the request rate. Each time the clock passes a minute
boundary every objective is evaluated over the whole buckets before it:

- burn rate over a window = (bad ÷ total) ÷ (1 − target), 0 with no requests;
  a burn-rate rule raises ``near_breach`` when both its long and its short
  window exceed its factor, and ``recovered`` at the first boundary where they
  no longer both do;
- ``breach`` when good ÷ total over the objective's window (rolling, or since
  the start of the month in the contract's zone) falls below target, and
  ``recovered`` at the first boundary where it is back at or above it.

What it costs: every window's counts are running sums, moved on at each boundary by the
minute that enters and the minutes that leave (one running total of everything counted, and
per window the total of what has left it), so an evaluation costs the same whatever the
windows' lengths (a few operations per window and per burn-rate rule). A request event costs
one bucket update, plus one evaluation for each minute boundary it passes while the service
has requests inside some window.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.events import Rejected, RequestEvent
from sla_stream.engine.ledger import REQUESTS, Ledger
from sla_stream.engine.model import (
    AVAILABILITY,
    CALENDAR_MONTH,
    MONTH_WINDOW,
    BurnRateRule,
    Contract,
    RequestObjective,
    RequestPolicy,
)
from sla_stream.engine.time import DAY_MS, MINUTE_MS, format_duration, from_ms, to_ms

# Bucket fields: requests, good for availability, counted for latency, good for latency.
TOTAL, GOOD, LATENCY_TOTAL, LATENCY_GOOD = range(4)
#: Burn rates and ratios are compared after rounding away float noise: a steady 1.44%
#: error rate on a 99.9% target is a burn rate of exactly 14.4, which does not exceed 14.4.
_DIGITS = 9
_MONTH = MONTH_WINDOW


def policy_of(contract: Contract) -> RequestPolicy:
    if contract.requests is None:
        raise Rejected("invalid", f"contract {contract.id!r} has no request objectives")
    return contract.requests


@dataclass(slots=True)
class Service:
    """Everything the engine remembers of one contract's service."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    """Minute (epoch minutes) -> counts: see TOTAL, GOOD, LATENCY_TOTAL, LATENCY_GOOD."""
    firing: dict[str, int] = field(default_factory=dict)
    """``objective|long|short`` of burn-rate rules firing, with the boundary they fired at."""
    breached: dict[str, int] = field(default_factory=dict)
    """Objectives below target, with the boundary they fell at."""
    seen: dict[str, int] = field(default_factory=dict)
    """Ids of ``request.batch`` events applied, with their times (single requests are not
    kept: that would make memory grow with the request rate)."""
    evaluated: int = 0
    """The last minute boundary (ms) evaluated: each service keeps its own, so what it
    evaluates depends on its own events only, never on when the engine's clock moved."""
    latest: int | None = None
    """The latest minute with a bucket (derived)."""
    through: dict[int, int] = field(default_factory=dict)
    """Minute -> the input offset after the last message counted in its bucket, where the engine
    is told offsets (the worker): a message processed again after a stop that wrote the bucket
    but not the input position is recognised, and not counted twice (stored with the bucket)."""
    dirty: set[int] = field(default_factory=set)
    """Minutes changed or dropped since the store last wrote them (not part of the state)."""
    counted: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Counts of every minute before ``as_of`` (derived, with ``left``)."""
    left: dict[int | str, list[int]] = field(default_factory=dict)
    """Window (minutes, or ``month``) -> counts of the minutes before it, as of minute ``as_of``
    (derived): a window's counts are ``counted`` minus these (see :func:`window_sums`)."""
    as_of: int | None = None
    month_start: int = 0
    """First minute of the month the ``month`` window covers."""
    next_month: int = 0
    """First minute of the month after it."""
    summed: tuple[int | str, ...] = ()
    """The windows ``left`` holds (derived): another version's windows are summed again."""
    minutes: list[int] | None = None
    """The minutes with a bucket, in order (derived, built when first needed)."""
    due: int | None = -1
    """:func:`next_boundary` as last worked out, ``-1`` when it must be worked out again
    (derived: a new minute, an evaluation or a late event changes it)."""
    scheduled: int | None = None
    """The boundary the engine's schedule holds for the service (derived)."""

    def header(self) -> dict[str, Any]:
        """The state besides the buckets, which are stored one by one."""
        return {"f": self.firing, "b": self.breached, "s": self.seen, "e": self.evaluated}

    @classmethod
    def from_header(cls, header: dict[str, Any], buckets: dict[int, list[int]]) -> Service:
        return cls(
            buckets=buckets,
            firing=dict(header["f"]),
            breached=dict(header["b"]),
            seen=dict(header["s"]),
            evaluated=int(header["e"]),
        )


def windows(contract: Contract) -> tuple[int | str, ...]:
    """Every window the contract evaluates: minutes, or ``month``."""
    return policy_of(contract).windows


def reach(contract: Contract) -> int:
    """How many minutes a bucket stays inside some window (of any version of ``contract``)."""
    return _shape(contract)[1]


_shapes: dict[int, tuple[Contract, tuple[int, ...], int]] = {}


def _shape(contract: Contract) -> tuple[tuple[int, ...], int]:
    """The windows in minutes of every version of ``contract``, shortest first, and their
    :func:`reach` (worked out once: contracts are immutable)."""
    found = _shapes.get(id(contract))
    if found is None or found[0] is not contract:
        policies = [policy_of(version) for version in (contract, *contract.versions)]
        minutes = sorted({int(w) for policy in policies for w in policy.windows if w != _MONTH})
        found = _shapes[id(contract)] = (contract, tuple(minutes), max(p.reach for p in policies))
    return found[1], found[2]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A burn-rate rule as one objective evaluates it: windows in minutes, its key in ``firing``."""

    rule: BurnRateRule
    key: str
    long: int
    short: int


@dataclass(frozen=True, slots=True)
class _Objective:
    """An objective as an evaluation reads it, worked out once per policy."""

    objective: RequestObjective
    good_at: int
    total_at: int
    budget: float
    rules: tuple[_Rule, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What evaluating a policy needs, worked out once: objectives with their rules, and the
    windows in minutes (the calendar month apart)."""

    objectives: tuple[_Objective, ...]
    minutes: tuple[int, ...]
    month: bool


_plans: dict[int, tuple[RequestPolicy, _Plan]] = {}


def _plan(policy: RequestPolicy) -> _Plan:
    """The plan of a policy (policies are immutable and live as long as their contract)."""
    found = _plans.get(id(policy))
    if found is not None and found[0] is policy:
        return found[1]
    objectives = []
    for objective in policy.objectives.values():
        good_at, total_at = counted(objective)
        rules = tuple(
            _Rule(
                rule,
                f"{objective.name}|{rule.long}|{rule.short}",
                rule.long // MINUTE_MS,
                rule.short // MINUTE_MS,
            )
            for rule in policy.burn_rates
        )
        objectives.append(_Objective(objective, good_at, total_at, 1 - objective.target, rules))
    plan = _Plan(
        tuple(objectives),
        tuple(int(window) for window in policy.windows if window != _MONTH),
        _MONTH in policy.windows,
    )
    _plans[id(policy)] = (policy, plan)
    return plan


def apply(
    contract: Contract, service: Service, event: RequestEvent, ledger: Ledger, offset: int | None = None
) -> bool:
    """Count the requests of ``event`` in its minute and its period; false inside an exclusion
    window, where nothing counts.

    ``offset``, the input offset of the message, if known: a minute's bucket that has counted
    it already (see ``Service.through``) is left as it is; the ledger decides for itself.
    The version of ``contract`` in force at the event's time decides what counts.
    """
    version = contract.at(event.at)
    policy = policy_of(version)
    if event.type != "request":
        service.seen[event.event_id] = event.at
    if version.exclusions.windows and version.exclusions.overlap(event.at, event.at + 1):
        return False
    latency = policy.objectives.get("latency")
    delta = [event.total, event.good, 0, 0]
    if latency is not None:
        if event.latency_ms is not None:
            threshold = latency.threshold_ms if latency.threshold_ms is not None else float("inf")
            delta[LATENCY_TOTAL], delta[LATENCY_GOOD] = 1, int(event.latency_ms <= threshold)
        elif event.latency_good is not None:
            delta[LATENCY_TOTAL], delta[LATENCY_GOOD] = event.total, event.latency_good
    minute = event.at // MINUTE_MS
    ledger.add(ledger.period(contract.zone, event.at), REQUESTS, delta)
    if offset is not None:
        if service.through.get(minute, -1) > offset:
            return True
        service.through[minute] = offset + 1
    if next_boundary(contract, service) is None:
        # Idle until now: boundaries up to this minute's start have nothing to evaluate.
        service.evaluated = max(service.evaluated, minute * MINUTE_MS)
        service.due = _UNKNOWN
    bucket = service.buckets.get(minute)
    if bucket is None:
        due = service.due
        if due is None or due == _UNKNOWN or minute * MINUTE_MS < service.evaluated:
            service.due = _UNKNOWN
        else:  # the new minute enters at the boundary after it, if nothing changes before
            service.due = min(due, (minute + 1) * MINUTE_MS)
        bucket = service.buckets[minute] = [0, 0, 0, 0]
        if service.latest is not None and minute > service.latest:
            service.latest = minute
        if service.minutes is not None:
            if not service.minutes or minute > service.minutes[-1]:
                service.minutes.append(minute)
            else:
                insort(service.minutes, minute)
    bucket[0] += delta[0]
    bucket[1] += delta[1]
    bucket[2] += delta[2]
    bucket[3] += delta[3]
    service.dirty.add(minute)
    if service.as_of is not None and minute < service.as_of:
        # A late event for a minute already counted: keep the sums right. A window it is
        # before has it among what left the window; one it is inside changes.
        for index, count in enumerate(delta):
            service.counted[index] += count
        for window, left in service.left.items():
            first = service.month_start if window == _MONTH else service.as_of - int(window)
            if minute < first:
                for index, count in enumerate(delta):
                    left[index] += count
    return True


def window_sums(service: Service) -> dict[int | str, list[int]]:
    """Window (minutes, or ``month``) -> its counts as of the last boundary evaluated."""
    counted = service.counted
    return {
        window: [counted[0] - left[0], counted[1] - left[1], counted[2] - left[2], counted[3] - left[3]]
        for window, left in service.left.items()
    }


def next_boundary(contract: Contract, service: Service) -> int | None:
    """The next minute boundary (ms) to evaluate, or ``None`` while nothing is left to say:
    past its last bucket's reach every window is empty, and every burn rate 0."""
    if service.due != _UNKNOWN:
        return service.due
    service.due = _next_boundary(contract, service)
    return service.due


_UNKNOWN = -1


def _next_boundary(contract: Contract, service: Service) -> int | None:
    if not service.buckets:
        return None
    if service.latest is None:
        service.latest = max(service.buckets)
    following = service.evaluated // MINUTE_MS + 1
    return following * MINUTE_MS if following <= service.latest + reach(contract) + 1 else None


def evaluate(
    contract: Contract, service_id: str, service: Service, boundary: int, keep_ms: int = 0
) -> list[Alert]:
    """Evaluate every objective at a minute ``boundary`` (ms) over the buckets before it, by the
    version of ``contract`` in force at the boundary."""
    version = contract.at(boundary)
    policy = policy_of(version)
    plan = _plan(policy)
    service.evaluated, service.due = boundary, _UNKNOWN
    _slide(version, policy, plan, service, boundary // MINUTE_MS)
    alerts: list[Alert] = []
    counted, left, firing = service.counted, service.left, service.firing
    for planned in plan.objectives:
        objective, good_at, total_at = planned.objective, planned.good_at, planned.total_at
        good, total, budget = counted[good_at], counted[total_at], planned.budget
        for rule in planned.rules:
            # Hot when both windows burn faster than the factor: the short one is only
            # worked out when the long one does.
            factor, long_left = rule.rule.factor, left[rule.long]
            hot = False
            requests = total - long_left[total_at]
            if requests and _above((requests - good + long_left[good_at]) / requests / budget, factor):
                short_left = left[rule.short]
                requests = total - short_left[total_at]
                hot = bool(requests) and _above(
                    (requests - good + short_left[good_at]) / requests / budget, factor
                )
            if hot == (rule.key in firing):
                continue
            long = burn_rate(_minus(counted, long_left), good_at, total_at, budget)
            short = burn_rate(_minus(counted, left[rule.short]), good_at, total_at, budget)
            if hot:
                firing[rule.key] = boundary
                alerts.append(
                    _burn_alert(
                        NEAR_BREACH, contract, service_id, objective, rule.rule, long, short, boundary
                    )
                )
            else:
                fired = firing.pop(rule.key)
                alerts.append(
                    _burn_alert(
                        RECOVERED, contract, service_id, objective, rule.rule, long, short, boundary, fired
                    )
                )
        window_left = left[objective.window_key]
        requests = total - window_left[total_at]
        if requests == 0:
            continue
        below = _below((good - window_left[good_at]) / requests, objective.target)
        if below == (objective.name in service.breached):
            continue
        sums = _minus(counted, window_left)
        if below:
            service.breached[objective.name] = boundary
            alerts.append(
                _breach_alert(BREACH, contract, service_id, objective, sums, good_at, total_at, boundary)
            )
        else:
            fell = service.breached.pop(objective.name)
            alerts.append(
                _breach_alert(
                    RECOVERED, contract, service_id, objective, sums, good_at, total_at, boundary, fell
                )
            )
    if boundary // MINUTE_MS % 60 == 0:
        _forget(contract, service, boundary, keep_ms)
    return alerts


def _minus(counted: list[int], left: list[int]) -> list[int]:
    return [counted[0] - left[0], counted[1] - left[1], counted[2] - left[2], counted[3] - left[3]]


#: Rounding to ``_DIGITS`` moves a value by at most half of 10**-_DIGITS: outside this margin of
#: a threshold the comparison of the unrounded value gives the same answer, without rounding.
_MARGIN = 1e-6


def _above(value: float, threshold: float) -> bool:
    """``round(value, _DIGITS) > threshold``, rounding only near the threshold."""
    if value > threshold + _MARGIN:
        return True
    if value < threshold - _MARGIN:
        return False
    return round(value, _DIGITS) > threshold


def _below(value: float, threshold: float) -> bool:
    """``round(value, _DIGITS) < threshold``, rounding only near the threshold."""
    if value < threshold - _MARGIN:
        return True
    if value > threshold + _MARGIN:
        return False
    return round(value, _DIGITS) < threshold


def counted(objective: RequestObjective) -> tuple[int, int]:
    """Where an objective's good and total counts are in a bucket."""
    return (GOOD, TOTAL) if objective.name == AVAILABILITY else (LATENCY_GOOD, LATENCY_TOTAL)


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


def month_start_minute(contract: Contract, minute: int) -> int:
    """The first minute of the contract-local month holding ``minute`` (epoch minutes)."""
    local = from_ms(minute * MINUTE_MS, contract.zone)
    first = datetime.combine(local.date().replace(day=1), time(), contract.zone)
    return to_ms(first) // MINUTE_MS


def _slide(contract: Contract, policy: RequestPolicy, plan: _Plan, service: Service, minute: int) -> None:
    """Bring every window's sums to cover the minutes before ``minute``: count the minutes that
    entered since they were last brought, and for each window those that left it."""
    as_of = service.as_of
    if not plan.month:
        month, service.next_month = minute, 0
    elif service.month_start <= minute - 1 < service.next_month:
        month = service.month_start
    else:
        month = month_start_minute(contract, minute - 1)
        service.next_month = month_start_minute(contract, month + 32 * 24 * 60)
    buckets = service.buckets
    if (
        as_of is None
        or minute - as_of > 24 * 60
        or minute < as_of
        or service.summed != policy.windows  # summed for another version's windows
    ):
        counted = service.counted = _total(buckets, min(buckets, default=minute), minute)
        service.left = {}
        for window in policy.windows:
            first = month if window == _MONTH else minute - int(window)
            service.left[window] = _minus(counted, _total(buckets, first, minute))
        service.summed = policy.windows
    else:
        counted, left = service.counted, service.left
        for step in range(as_of, minute):
            entering = buckets.get(step)
            if entering is not None:
                counted[0] += entering[0]
                counted[1] += entering[1]
                counted[2] += entering[2]
                counted[3] += entering[3]
            for window in plan.minutes:
                leaving = buckets.get(step - window)
                if leaving is not None:
                    before = left[window]
                    before[0] += leaving[0]
                    before[1] += leaving[1]
                    before[2] += leaving[2]
                    before[3] += leaving[3]
        if plan.month and month != service.month_start:
            left[_MONTH] = _minus(counted, _total(buckets, month, minute))
    service.as_of, service.month_start = minute, month


def _total(buckets: dict[int, list[int]], first: int, end: int) -> list[int]:
    sums = [0, 0, 0, 0]
    if end - first < len(buckets):
        items = ((m, buckets.get(m)) for m in range(first, end))
    else:
        items = ((m, b) for m, b in buckets.items() if first <= m < end)
    for _, bucket in items:
        if bucket is not None:
            for index in range(4):
                sums[index] += bucket[index]
    return sums


def _forget(contract: Contract, service: Service, boundary: int, keep_ms: int) -> None:
    """Drop buckets no window reaches any more, and batch ids older than the allowed lateness
    (anything older is rejected as late anyway; a day when none is set)."""
    oldest = boundary // MINUTE_MS - reach(contract) - 1
    minutes = service.minutes
    if minutes is None:
        minutes = service.minutes = sorted(service.buckets)
    gone = bisect_left(minutes, oldest)
    for minute in minutes[:gone]:
        del service.buckets[minute]
        service.through.pop(minute, None)
        service.dirty.add(minute)
    del minutes[:gone]
    service.seen = {
        event_id: at for event_id, at in service.seen.items() if at >= boundary - (keep_ms or DAY_MS)
    }


def _burn_alert(
    kind: str,
    contract: Contract,
    service_id: str,
    objective: RequestObjective,
    rule: BurnRateRule,
    long: float,
    short: float,
    boundary: int,
    fired: int | None = None,
) -> Alert:
    details = {
        "long_window": format_duration(rule.long),
        "short_window": format_duration(rule.short),
        "factor": rule.factor,
        "burn_rate_long": long,
        "burn_rate_short": short,
        "target": objective.target,
    }
    cycle = f"{details['long_window']}/{details['short_window']}@{fired or boundary}"
    severity = rule.severity if kind == NEAR_BREACH else ""
    return _alert(kind, contract, service_id, objective, cycle, rule.long, boundary, details, severity)


def _breach_alert(
    kind: str,
    contract: Contract,
    service_id: str,
    objective: RequestObjective,
    sums: list[int],
    good_at: int,
    total_at: int,
    boundary: int,
    fell: int | None = None,
) -> Alert:
    if objective.window == CALENDAR_MONTH:
        window = month_start_minute(contract, boundary // MINUTE_MS - 1) * MINUTE_MS
        length, name = boundary - window, CALENDAR_MONTH
    else:
        length, name = int(objective.window), format_duration(int(objective.window))
    details = {
        "window": name,
        "target": objective.target,
        "attained": round(sums[good_at] / sums[total_at], 6),
        "good": sums[good_at],
        "total": sums[total_at],
        "error_budget_remaining": budget_remaining(sums, good_at, total_at, objective.target),
    }
    return _alert(kind, contract, service_id, objective, fell or boundary, length, boundary, details)


def _alert(
    kind: str,
    contract: Contract,
    service_id: str,
    objective: RequestObjective,
    cycle: int | str,
    window_ms: int,
    boundary: int,
    details: dict[str, Any],
    severity: str = "",
) -> Alert:
    """A service alert: ``target_seconds`` and ``elapsed_seconds`` are the window's length."""
    return Alert(
        kind=kind,
        contract_id=contract.id,
        objective=objective.name,
        subject_kind="service",
        subject_id=service_id,
        cycle=cycle,
        target_ms=window_ms,
        elapsed_ms=window_ms,
        deadline_ms=None,
        observed_at_ms=boundary,
        zone=contract.zone,
        severity=severity,
        details=details,
    )
