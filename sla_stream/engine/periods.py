"""Periods: calendar months in a contract's time zone, named ``YYYY-MM``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sla_stream.engine.time import from_ms, to_ms


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
