"""Mapping a validated contract spec once onto the engine's immutable model."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from datetime import time
from decimal import Decimal
from importlib import resources
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays as holiday_data
import yaml
from pydantic import TypeAdapter

from sla_stream.contracts.spec import (
    DAYS,
    BurnRateSpec,
    CalendarSpec,
    CallsSpec,
    ContractSpec,
    MatchSpec,
    PenaltiesSpec,
    RequestsSpec,
    TicketsSpec,
    expand_days,
)
from sla_stream.engine import model
from sla_stream.engine.calendar import AlwaysOpen, Business, Calendar, Exclusions, Holidays
from sla_stream.engine.ledger import CALLS, REQUESTS
from sla_stream.engine.model import Contract, TicketObjective, TicketPolicy
from sla_stream.engine.time import DAY_MS, MINUTE_MS, parse_duration, to_ms


def build(spec: ContractSpec, problems: list[str]) -> Contract | None:
    """The engine model of ``spec``; adds a line to ``problems`` for each cross-field error."""
    zone = ZoneInfo(spec.timezone)
    exclusions = Exclusions.of((to_ms(x.start), to_ms(x.end)) for x in spec.exclusions)
    for index, window in enumerate(spec.exclusions):
        if window.end <= window.start:
            problems.append(f"exclusions[{index}]: end must be after start")
    calendars: dict[str, Calendar] = {"24x7": AlwaysOpen(exclusions)}
    for name, calendar in spec.calendars.items():
        if name == "24x7":
            problems.append("calendars.24x7: is built in and cannot be redefined")
            continue
        built = _calendar(name, calendar, zone, exclusions, problems)
        if built is not None:
            calendars[name] = built
    tickets = _tickets(spec.tickets, calendars, problems) if spec.tickets else None
    calls = _calls(spec.calls, problems) if spec.calls else None
    requests = _requests(spec.requests, problems) if spec.requests else None
    items = _items(spec, calendars, problems) if spec.items else None
    objectives = {
        *(tickets.objectives if tickets else ()),
        *(calls.objectives if calls else ()),
        *(requests.objectives if requests else ()),
    }
    for name in items.objectives if items else ():
        if name in objectives or name in (CALLS, REQUESTS):
            problems.append(f"items.objectives.{name}: the contract has another objective of this name")
        objectives.add(name)
    penalties = None
    if spec.penalties:
        penalties = _penalties(spec.penalties, objectives, problems)
        penalties, items = _compensation(spec.penalties, penalties, items, tickets, problems)
    if problems:
        return None
    return Contract(
        id=spec.id,
        zone=zone,
        customer=spec.customer,
        exclusions=exclusions,
        calendars=MappingProxyType(calendars),
        tickets=tickets,
        calls=calls,
        requests=requests,
        penalties=penalties,
        items=items,
    )


def _calendar(
    name: str, spec: CalendarSpec, zone: ZoneInfo, exclusions: Exclusions, problems: list[str]
) -> Calendar | None:
    weekly: list[list[tuple[time, time]]] = [[] for _ in range(7)]
    for days, spans in spec.weekly.items():
        for day in expand_days(days):
            for span in spans:
                opens, closes = span.split("-")
                weekly[day].append((time.fromisoformat(opens), _closing(closes)))
    for day, hours in enumerate(weekly):
        hours.sort()
        if any(a[1] > b[0] for a, b in itertools.pairwise(hours)):
            problems.append(f"calendars.{name}.weekly: opening hours overlap on {DAYS[day]}")
    if not any(weekly):
        problems.append(f"calendars.{name}.weekly: has no opening hours at all")
        return None
    lookup = None
    if spec.holidays and spec.holidays.country:
        try:
            lookup = holiday_data.country_holidays(spec.holidays.country, subdiv=spec.holidays.subdivision)
        except NotImplementedError:
            problems.append(
                f"calendars.{name}.holidays: no holiday data for country "
                f"{spec.holidays.country!r} / subdivision {spec.holidays.subdivision!r}"
                " (expected an ISO 3166 code such as US, DE or ID)"
            )
            return None
    dates = frozenset(spec.holidays.dates) if spec.holidays else frozenset()
    return Business(
        zone=zone,
        weekly=tuple(tuple(day) for day in weekly),
        holidays=Holidays(
            spec.holidays.country if spec.holidays else None,
            spec.holidays.subdivision if spec.holidays else None,
            dates,
            lookup,
        ),
        exclusions=exclusions,
    )


def _closing(text: str) -> time:
    return time.max if text == "24:00" else time.fromisoformat(text)


def _tickets(spec: TicketsSpec, calendars: dict[str, Calendar], problems: list[str]) -> TicketPolicy | None:
    if len(set(spec.priorities)) != len(spec.priorities):
        problems.append("tickets.priorities: lists a priority twice")
    objectives: dict[str, TicketObjective] = {}
    for name, objective in spec.objectives.items():
        where = f"tickets.objectives.{name}"
        if objective.calendar not in calendars:
            problems.append(
                f"{where}.calendar: no calendar named {objective.calendar!r}"
                f" (expected one of {', '.join(sorted(calendars))})"
            )
            continue
        missing = [p for p in spec.priorities if p not in objective.targets]
        unknown = [p for p in objective.targets if p not in spec.priorities]
        if missing:
            problems.append(f"{where}.targets: no target for priority {', '.join(missing)}")
        if unknown:
            problems.append(f"{where}.targets: {', '.join(unknown)} is not in tickets.priorities")
        if objective.pause_on and {"solved", "closed"} & set(objective.pause_on):
            problems.append(f"{where}.pause_on: solved and closed stop clocks; they cannot pause them")
        objectives[name] = TicketObjective(
            name=name,
            calendar=calendars[objective.calendar],
            targets=MappingProxyType(dict(objective.targets)),
            pause_on=frozenset(objective.pause_on),
        )
    return TicketPolicy(
        priorities=tuple(spec.priorities),
        near_breach=tuple(sorted(set(spec.near_breach))),
        objectives=MappingProxyType(objectives),
        compliance_target=spec.compliance_target,
        retention=spec.retention,
    )


def _calls(spec: CallsSpec, problems: list[str]) -> model.CallPolicy:
    objectives: dict[str, model.CallObjective] = {}
    level, abandon, speed = spec.service_level, spec.abandon_rate, spec.speed_of_answer
    if level is not None:
        objectives[model.SERVICE_LEVEL] = model.CallObjective(
            model.SERVICE_LEVEL, level.interval, level.target
        )
        if level.short_abandon is not None and level.short_abandon >= level.answer_within:
            problems.append("calls.service_level.short_abandon: must be shorter than answer_within")
    if abandon is not None:
        objectives[model.ABANDON_RATE] = model.CallObjective(
            model.ABANDON_RATE, abandon.interval, abandon.max
        )
    if speed is not None:
        objectives[model.SPEED_OF_ANSWER] = model.CallObjective(
            model.SPEED_OF_ANSWER, speed.interval, speed.max
        )
    for objective in objectives.values():
        if objective.interval <= 0 or DAY_MS % objective.interval:
            problems.append(
                f"calls.{objective.name}.interval: must divide a day evenly (like 15m or 30m),"
                f" got {objective.interval // 1000}s"
            )
    return model.CallPolicy(
        objectives=MappingProxyType(objectives),
        answer_within=level.answer_within if level else None,
        short_abandon=level.short_abandon if level else None,
    )


def _requests(spec: RequestsSpec, problems: list[str]) -> model.RequestPolicy:
    objectives: dict[str, model.RequestObjective] = {}
    if spec.availability is not None:
        objectives[model.AVAILABILITY] = model.RequestObjective(
            model.AVAILABILITY, spec.availability.target, spec.availability.window
        )
    if spec.latency is not None:
        objectives[model.LATENCY] = model.RequestObjective(
            model.LATENCY, spec.latency.target, spec.latency.window, spec.latency.threshold_ms
        )
    for objective in objectives.values():
        if objective.target >= 1:
            problems.append(
                f"requests.{objective.name}.target: must be below 1 (there is no error budget at 1)"
            )
        if isinstance(objective.window, int) and (objective.window <= 0 or objective.window % MINUTE_MS):
            problems.append(f"requests.{objective.name}.window: must be whole minutes")
    rules: tuple[model.BurnRateRule, ...]
    if spec.burn_rate_alerts == "default":
        rules = default_burn_rates()
    elif spec.burn_rate_alerts == "none":
        rules = ()
    else:
        rules = tuple(
            model.BurnRateRule(rule.long, rule.short, rule.factor, rule.severity)
            for rule in spec.burn_rate_alerts
        )
    for index, rule in enumerate(rules):
        if rule.long % MINUTE_MS or rule.short % MINUTE_MS or rule.short <= 0:
            problems.append(f"requests.burn_rate_alerts[{index}]: windows must be whole minutes")
        elif rule.short >= rule.long:
            problems.append(f"requests.burn_rate_alerts[{index}].short: must be shorter than long")
    windows: set[int | str] = {objective.window_key for objective in objectives.values()}
    for rule in rules:
        windows.update((rule.long // MINUTE_MS, rule.short // MINUTE_MS))
    reach = max((32 * 24 * 60 if w == model.MONTH_WINDOW else int(w) for w in windows), default=0)
    return model.RequestPolicy(
        objectives=MappingProxyType(objectives),
        burn_rates=rules,
        windows=tuple(sorted(windows, key=str)),
        reach=reach,
    )


def _items(spec: ContractSpec, calendars: dict[str, Calendar], problems: list[str]) -> model.ItemPolicy:
    items = spec.items
    assert items is not None
    objectives: dict[str, model.ClockObjective] = {}
    for name, clock in items.objectives.items():
        where = f"items.objectives.{name}"
        if clock.calendar not in calendars:
            problems.append(
                f"{where}.calendar: no calendar named {clock.calendar!r}"
                f" (expected one of {', '.join(sorted(calendars))})"
            )
            continue
        rules = {
            part: tuple(
                _match(rule, items.kind, f"{where}.{part}[{index}]", problems)
                for index, rule in enumerate(rules)
            )
            for part, rules in (
                ("start", clock.start),
                ("stop", clock.stop),
                ("pause", clock.pause),
                ("resume", clock.resume),
            )
        }
        if clock.resume and not clock.pause:
            problems.append(f"{where}.resume: resumes a clock that nothing pauses (add pause rules)")
        objectives[name] = model.ClockObjective(
            name=name,
            calendar=calendars[clock.calendar],
            targets=MappingProxyType(
                dict(clock.targets) if clock.targets is not None else {"": clock.target or 0}
            ),
            target_by=clock.target_by,
            start=rules["start"],
            stop=rules["stop"],
            pause=rules["pause"],
            resume=rules["resume"],
        )
    return model.ItemPolicy(
        kind=items.kind,
        key=items.key,
        near_breach=tuple(sorted(set(items.near_breach))),
        objectives=MappingProxyType(objectives),
        compliance_target=items.compliance_target,
        retention=items.retention,
    )


def _match(rule: MatchSpec, kind: str, where: str, problems: list[str]) -> model.Match:
    if rule.event.split(".", 1)[0] != kind:
        problems.append(f"{where}.event: {rule.event} is not a {kind} event (items.kind is {kind})")
    values = {name: frozenset([v] if isinstance(v, str) else v) for name, v in rule.where.items()}
    return model.Match(rule.event, MappingProxyType(values))


def _compensation(
    spec: PenaltiesSpec,
    penalties: model.PenaltyPolicy,
    items: model.ItemPolicy | None,
    tickets: TicketPolicy | None,
    problems: list[str],
) -> tuple[model.PenaltyPolicy, model.ItemPolicy | None]:
    """Amounts per late or flagged item; the flags are given to the items policy, which decides them."""
    paid: list[model.Compensation] = []
    flags: dict[str, model.Match] = {}
    clocks = {*(items.objectives if items else ()), *(tickets.objectives if tickets else ())}
    for index, rule in enumerate(spec.compensation):
        where = f"penalties.compensation[{index}]"
        amount = Decimal(str(rule.amount))
        if rule.objective is not None:
            if rule.objective not in clocks:
                known = ", ".join(sorted(clocks)) or "none"
                problems.append(
                    f"{where}.objective: no ticket or item objective {rule.objective!r} (clocks: {known})"
                )
            paid.append(
                model.Compensation(rule.reason or f"{rule.objective}_breached", amount, rule.objective)
            )
            continue
        assert rule.event is not None and rule.reason is not None
        if items is None:
            problems.append(f"{where}.event: flags items, but the contract has no items section")
            continue
        if rule.reason in flags:
            problems.append(f"{where}.reason: {rule.reason} is flagged by another rule already")
        flag = MatchSpec(event=rule.event, where=rule.where)
        flags[rule.reason] = _match(flag, items.kind, where, problems)
        paid.append(model.Compensation(rule.reason, amount))
    if not paid:
        return penalties, items
    if items is not None:
        items = dataclasses.replace(items, flags=MappingProxyType(flags))
    return dataclasses.replace(penalties, compensation=tuple(paid)), items


def _penalties(spec: PenaltiesSpec, objectives: set[str], problems: list[str]) -> model.PenaltyPolicy:
    tiers = []
    for index, tier in enumerate(spec.tiers):
        where = f"penalties.tiers[{index}]"
        name = tier.objective
        if name not in objectives:
            known = ", ".join(sorted(objectives)) or "none"
            problems.append(f"{where}.objective: the contract has no objective {name!r} (it has: {known})")
            continue
        limit = _tier_limit(name, tier.below, tier.above, f"{where}", problems)
        if limit is not None:
            tiers.append(model.Tier(name, limit, Decimal(str(tier.credit_percent))))
    return model.PenaltyPolicy(
        fee=Decimal(str(spec.monthly_fee.amount)), currency=spec.monthly_fee.currency, tiers=tuple(tiers)
    )


def _tier_limit(
    name: str, below: float | None, above: float | str | None, where: str, problems: list[str]
) -> float | None:
    """A tier's limit in the objective's own measure; ``None`` after adding a problem."""
    if name not in model.LOWER_IS_BETTER:
        if below is None:
            problems.append(f"{where}: {name} credits a shortfall, so its tiers say below, not above")
        return below
    if above is None:
        problems.append(f"{where}: {name} must stay under a maximum, so its tiers say above, not below")
        return None
    if name == model.SPEED_OF_ANSWER:
        seconds = _seconds(above)
        if seconds is None:
            problems.append(f"{where}.above: expected a duration like 45s, got {above!r}")
        return seconds
    if isinstance(above, str) or not 0 < above < 1:
        problems.append(f"{where}.above: expected a ratio between 0 and 1, got {above!r}")
        return None
    return above


def _seconds(value: float | str) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_duration(value) / 1000
    except ValueError:
        return None


@functools.cache
def default_burn_rates() -> tuple[model.BurnRateRule, ...]:
    """The SRE Workbook's burn-rate alerts for a 30-day budget, from ``windows/google-30d.yaml``."""
    text = resources.files(__package__).joinpath("windows", "google-30d.yaml").read_text()
    rows = TypeAdapter(list[BurnRateSpec]).validate_python(yaml.safe_load(text))
    return tuple(model.BurnRateRule(row.long, row.short, row.factor, row.severity) for row in rows)
