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

What a service keeps and how its sums move on is :mod:`~sla_stream.engine.request_state`'s;
what a contract asks, worked out once per contract object, :mod:`~sla_stream.engine.request_plans`'s.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RECOVERED, Alert
from sla_stream.engine.events import RequestEvent
from sla_stream.engine.ledger import REQUESTS, Ledger
from sla_stream.engine.model import CALENDAR_MONTH, BurnRateRule, Contract, RequestObjective
from sla_stream.engine.request_plans import (
    LATENCY_GOOD,
    LATENCY_TOTAL,
    above,
    below,
    budget_remaining,
    burn_rate,
    counted,
    policy_of,
)
from sla_stream.engine.request_state import (
    Service,
    count_late,
    minus,
    month_start_minute,
    slide,
    terms,
    window_sums,
)
from sla_stream.engine.time import DAY_MS, MINUTE_MS, format_duration

__all__ = [
    "Service",
    "apply",
    "budget_remaining",
    "burn_rate",
    "counted",
    "evaluate",
    "next_boundary",
    "policy_of",
    "window_sums",
]


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
    count_late(service, minute, delta)  # a late event, for a minute already summed
    return True


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
    reach = terms(contract, service).reach
    return following * MINUTE_MS if following <= service.latest + reach + 1 else None


def evaluate(
    contract: Contract, service_id: str, service: Service, boundary: int, keep_ms: int = 0
) -> list[Alert]:
    """Evaluate every objective at a minute ``boundary`` (ms) over the buckets before it, by the
    version of ``contract`` in force at the boundary."""
    version = contract.at(boundary)
    policy = policy_of(version)
    plan = terms(contract, service).plan(version)
    service.evaluated, service.due = boundary, _UNKNOWN
    slide(version, policy, plan, service, boundary // MINUTE_MS)
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
            if requests and above((requests - good + long_left[good_at]) / requests / budget, factor):
                short_left = left[rule.short]
                requests = total - short_left[total_at]
                hot = bool(requests) and above(
                    (requests - good + short_left[good_at]) / requests / budget, factor
                )
            if hot == (rule.key in firing):
                continue
            long = burn_rate(minus(counted, long_left), good_at, total_at, budget)
            short = burn_rate(minus(counted, left[rule.short]), good_at, total_at, budget)
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
        under = below((good - window_left[good_at]) / requests, objective.target)
        if under == (objective.name in service.breached):
            continue
        sums = minus(counted, window_left)
        if under:
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


def _forget(contract: Contract, service: Service, boundary: int, keep_ms: int) -> None:
    """Drop buckets no window reaches any more, and batch ids older than the allowed lateness
    (anything older is rejected as late anyway; a day when none is set)."""
    oldest = boundary // MINUTE_MS - terms(contract, service).reach - 1
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
