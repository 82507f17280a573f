"""Instants as integer epoch milliseconds, and their RFC 3339 rendering."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


_EPOCH_DAY = _EPOCH.toordinal()


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond parts are floored)."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime: an offset or zone is required")
    # Integer arithmetic on the fields: exact, and cheaper than datetime subtraction.
    local = (
        (moment.toordinal() - _EPOCH_DAY) * 86_400 + moment.hour * 3_600 + moment.minute * 60 + moment.second
    )
    utc = local - offset.days * 86_400 - offset.seconds
    return utc * 1000 + (moment.microsecond - offset.microseconds) // 1000


def from_ms(ms: int, zone: tzinfo = UTC) -> datetime:
    """The aware datetime of an epoch-millisecond instant, in ``zone``."""
    # Exact: a float of seconds holds milliseconds well below the microsecond rounding step.
    return datetime.fromtimestamp(ms / 1000, zone)


def format_ts(ms: int, zone: tzinfo) -> str:
    """RFC 3339 in ``zone``, with milliseconds only when they are not zero, and ``Z`` for offset zero."""
    moment = from_ms(ms, zone)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def format_utc(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``, as used for ``emitted_at``."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(ms: int) -> int | float:
    """Milliseconds as seconds: an int when whole, else a float to the millisecond."""
    whole, rest = divmod(ms, 1000)
    return whole if rest == 0 else ms / 1000


_UNITS = {"ms": 1, "s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """``45s``, ``30m``, ``4h``, ``3d``, ``250ms`` (or combinations like ``1h30m``) as milliseconds."""
    compact = text.strip()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration like 45s, 30m, 4h or 3d: {text!r}")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def format_duration(ms: int) -> str:
    """Milliseconds as the contract notation, largest units first: ``1h``, ``30m``, ``1h30m``, ``3d``."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
