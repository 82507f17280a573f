"""Mapping a validated contract spec once onto the engine's immutable model."""

from __future__ import annotations

import itertools
from datetime import time
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays as holiday_data

from sla_stream.contracts.spec import DAYS, CalendarSpec, ContractSpec, TicketsSpec, expand_days
from sla_stream.engine.calendar import AlwaysOpen, Business, Calendar, Exclusions, Holidays
from sla_stream.engine.model import Contract, TicketObjective, TicketPolicy
from sla_stream.engine.time import to_ms


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
    if problems:
        return None
    return Contract(
        id=spec.id,
        zone=zone,
        customer=spec.customer,
        exclusions=exclusions,
        calendars=MappingProxyType(calendars),
        tickets=tickets,
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
    )
