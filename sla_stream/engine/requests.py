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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.events import Rejected, RequestEvent
from sla_stream.engine.model import (
    AVAILABILITY,
    CALENDAR_MONTH,
    MONTH_WINDOW,
    BurnRateRule,
    Contract,
    RequestObjective,
    RequestPolicy,
)
from sla_stream.engine.penalties import REQUESTS, Ledger
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
    sums: dict[int | str, list[int]] = field(default_factory=dict)
    """Window (minutes, or ``month``) -> counts over it, as of minute ``as_of`` (derived)."""
    as_of: int | None = None
    month_start: int = 0
    """First minute of the month ``sums[month]`` covers."""

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
    if not contract.versions:
        return policy_of(contract).reach
    return max(policy_of(version).reach for version in (contract, *contract.versions))


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
    if version.exclusions.overlap(event.at, event.at + 1):
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
    bucket = service.buckets.get(minute)
    if bucket is None:
        bucket = service.buckets[minute] = [0, 0, 0, 0]
        if service.latest is not None and minute > service.latest:
            service.latest = minute
    for index, count in enumerate(delta):
        bucket[index] += count
    service.dirty.add(minute)
    if service.as_of is not None and minute < service.as_of:
        # A late event for a minute already inside the windows: keep their sums right.
        for window, sums in service.sums.items():
            first = service.month_start if window == _MONTH else service.as_of - int(window)
            if minute >= first:
                for index, count in enumerate(delta):
                    sums[index] += count
    return True


def next_boundary(contract: Contract, service: Service) -> int | None:
    """The next minute boundary (ms) to evaluate, or ``None`` while nothing is left to say:
    past its last bucket's reach every window is empty, and every burn rate 0."""
    if not service.buckets:
        return None
    if service.latest is None:
        service.latest = max(service.buckets)
    following = service.evaluated + MINUTE_MS
    return following if following <= (service.latest + reach(contract) + 1) * MINUTE_MS else None


def evaluate(
    contract: Contract, service_id: str, service: Service, boundary: int, keep_ms: int = 0
) -> list[Alert]:
    """Evaluate every objective at a minute ``boundary`` (ms) over the buckets before it, by the
    version of ``contract`` in force at the boundary."""
    version = contract.at(boundary)
    policy = policy_of(version)
    service.evaluated = boundary
    _slide(version, service, boundary // MINUTE_MS)
    alerts: list[Alert] = []
    for objective in policy.objectives.values():
        good_at, total_at = counted(objective)
        budget = 1 - objective.target
        for rule in policy.burn_rates:
            long = burn_rate(service.sums[rule.long // MINUTE_MS], good_at, total_at, budget)
            short = burn_rate(service.sums[rule.short // MINUTE_MS], good_at, total_at, budget)
            key = f"{objective.name}|{rule.long}|{rule.short}"
            hot = long > rule.factor and short > rule.factor
            if hot and key not in service.firing:
                service.firing[key] = boundary
                alerts.append(
                    _burn_alert(NEAR_BREACH, contract, service_id, objective, rule, long, short, boundary)
                )
            elif not hot and key in service.firing:
                fired = service.firing.pop(key)
                alerts.append(
                    _burn_alert(
                        RECOVERED, contract, service_id, objective, rule, long, short, boundary, fired
                    )
                )
        sums = service.sums[objective.window_key]
        if sums[total_at] == 0:
            continue
        attained = round(sums[good_at] / sums[total_at], _DIGITS)
        if attained < objective.target and objective.name not in service.breached:
            service.breached[objective.name] = boundary
            alerts.append(
                _breach_alert(BREACH, contract, service_id, objective, sums, good_at, total_at, boundary)
            )
        elif attained >= objective.target and objective.name in service.breached:
            fell = service.breached.pop(objective.name)
            alerts.append(
                _breach_alert(
                    RECOVERED, contract, service_id, objective, sums, good_at, total_at, boundary, fell
                )
            )
    if boundary // MINUTE_MS % 60 == 0:
        _forget(contract, service, boundary, keep_ms)
    return alerts


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


def _slide(contract: Contract, service: Service, minute: int) -> None:
    """Bring every window's sums to cover the minutes before ``minute``."""
    month = month_start_minute(contract, minute - 1) if _MONTH in windows(contract) else minute
    if (
        service.as_of is None
        or minute - service.as_of > 24 * 60
        or minute < service.as_of
        or service.sums.keys() != set(windows(contract))  # summed for another version's windows
    ):
        service.sums = {}
        for window in windows(contract):
            first = month if window == _MONTH else minute - int(window)
            service.sums[window] = _total(service.buckets, first, minute)
    else:
        buckets = service.buckets
        for step in range(service.as_of, minute):
            entering = buckets.get(step)
            for window, sums in service.sums.items():
                if window == _MONTH:
                    continue
                leaving = buckets.get(step - int(window))
                for index in range(4):
                    sums[index] += (entering[index] if entering else 0) - (leaving[index] if leaving else 0)
        if _MONTH in service.sums:
            if month != service.month_start:
                service.sums[_MONTH] = _total(buckets, month, minute)
            else:
                added = _total(buckets, service.as_of, minute)
                service.sums[_MONTH] = [a + b for a, b in zip(service.sums[_MONTH], added, strict=True)]
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
    for minute in [m for m in service.buckets if m < oldest]:
        del service.buckets[minute]
        service.through.pop(minute, None)
        service.dirty.add(minute)
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
