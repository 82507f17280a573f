"""Open time: which instants a clock counts, and arithmetic over them.

A calendar is a sorted, endless sequence of half-open open intervals
``[start, end)`` in epoch milliseconds. Every objective's clock counts
elapsed time only inside its calendar's open intervals, which already have
the contract's exclusion windows cut out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sla_stream.engine.time import DAY_MS, to_ms

Interval = tuple[int, int]

# A calendar whose open time cannot be found within this span is treated as
# closed for good; contracts are validated so that this never happens.
_SEARCH_LIMIT_DAYS = 3 * 366
_FOREVER = 1000 * 365 * DAY_MS


class Calendar:
    """Open-time arithmetic over the intervals :meth:`open_from` yields."""

    def open_from(self, start: int) -> Iterator[Interval]:
        """Open intervals in order, clipped so that the first starts at or after ``start``."""
        raise NotImplementedError

    def between(self, start: int, end: int) -> int:
        """Open milliseconds in ``[start, end)``."""
        total = 0
        if end <= start:
            return 0
        for lo, hi in self.open_from(start):
            if lo >= end:
                break
            total += min(hi, end) - lo
        return total

    def reach(self, start: int, amount: int) -> int:
        """The earliest instant at which ``amount`` open milliseconds have passed since ``start``.

        A target used up exactly at closing time is reached at closing time.
        """
        if amount <= 0:
            return start
        for lo, hi in self.open_from(start):
            if amount <= hi - lo:
                return lo + amount
            amount -= hi - lo
        raise AssertionError("unreachable: open_from is endless")

    def passes(self, start: int, amount: int) -> int:
        """The instant open time since ``start`` goes past ``amount``.

        That is the reach instant when the calendar is open just after it,
        else the next opening: a target used up exactly at 17:00 is passed
        at 08:00 the next working day.
        """
        for lo, hi in self.open_from(start):
            if amount < hi - lo:
                return lo + amount
            amount -= hi - lo
        raise AssertionError("unreachable: open_from is endless")


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Sorted, merged windows in which no clock runs."""

    windows: tuple[Interval, ...] = ()

    @classmethod
    def of(cls, windows: Iterable[Interval]) -> Exclusions:
        merged: list[list[int]] = []
        for lo, hi in sorted(w for w in windows if w[1] > w[0]):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return cls(tuple((lo, hi) for lo, hi in merged))

    def cut(self, intervals: Iterable[Interval]) -> Iterator[Interval]:
        """The intervals with every exclusion window removed."""
        windows = self.windows
        if not windows:
            yield from intervals
            return
        index = 0
        for lo, hi in intervals:
            while index < len(windows) and windows[index][1] <= lo:
                index += 1
            probe = index
            while lo < hi:
                if probe >= len(windows) or windows[probe][0] >= hi:
                    yield lo, hi
                    break
                w_lo, w_hi = windows[probe]
                if w_lo > lo:
                    yield lo, w_lo
                lo = max(lo, w_hi)
                probe += 1

    def overlap(self, start: int, end: int) -> int:
        """Milliseconds of ``[start, end)`` inside exclusion windows."""
        return sum(max(0, min(hi, end) - max(lo, start)) for lo, hi in self.windows)


@dataclass(frozen=True, slots=True)
class AlwaysOpen(Calendar):
    """The ``24x7`` calendar: always open, except in exclusion windows."""

    exclusions: Exclusions = Exclusions()

    def open_from(self, start: int) -> Iterator[Interval]:
        lo = start
        for w_lo, w_hi in self.exclusions.windows:
            if w_hi <= lo:
                continue
            if w_lo > lo:
                yield lo, w_lo
            lo = w_hi
        while True:  # open for good past the last exclusion, in long pieces
            yield lo, lo + _FOREVER
            lo += _FOREVER

    def between(self, start: int, end: int) -> int:
        if end <= start:
            return 0
        if not self.exclusions.windows:
            return end - start
        return end - start - self.exclusions.overlap(start, end)

    def reach(self, start: int, amount: int) -> int:
        if not self.exclusions.windows:
            return start + max(amount, 0)
        return Calendar.reach(self, start, amount)

    def passes(self, start: int, amount: int) -> int:
        if not self.exclusions.windows:
            return start + amount
        return Calendar.passes(self, start, amount)


@dataclass(frozen=True, slots=True)
class Holidays:
    """Closed local dates: a country's public holidays plus explicit dates."""

    country: str | None = None
    subdivision: str | None = None
    dates: frozenset[date] = frozenset()
    # Public holidays by year, filled on first use (the holidays package is
    # passed in by the contract loader so the engine stays import-light).
    lookup: object = field(default=None, compare=False)

    def __contains__(self, day: object) -> bool:
        if day in self.dates:
            return True
        return self.lookup is not None and day in self.lookup  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class Business(Calendar):
    """Weekly opening hours in a time zone, minus holidays and exclusions.

    ``weekly[d]`` lists the local ``(open, close)`` times of weekday ``d``
    (Monday is 0); a close of 24:00 is written as ``time.max``.
    """

    zone: ZoneInfo
    weekly: tuple[tuple[tuple[time, time], ...], ...]
    holidays: Holidays = Holidays()
    exclusions: Exclusions = Exclusions()
    _days: dict[date, tuple[Interval, ...]] = field(default_factory=dict, compare=False, repr=False)

    def day_intervals(self, day: date) -> tuple[Interval, ...]:
        """The open intervals of one local date, in epoch milliseconds."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        found: tuple[Interval, ...] = ()
        if day not in self.holidays:
            spans = []
            for opens, closes in self.weekly[day.weekday()]:
                lo = self._instant(day, opens)
                hi = (
                    self._instant(day + timedelta(days=1), time(0))
                    if closes == time.max
                    else self._instant(day, closes)
                )
                if hi > lo:
                    spans.append((lo, hi))
            found = tuple(spans)
        if len(self._days) > 4096:
            self._days.clear()
        self._days[day] = found
        return found

    def _instant(self, day: date, at: time) -> int:
        """When the local clock first shows ``at`` on ``day``.

        A time repeated when clocks go back is its first occurrence; a time
        skipped when clocks go forward is the instant of the change.
        """
        naive = datetime.combine(day, at)
        first = to_ms(naive.replace(tzinfo=self.zone, fold=0))
        second = to_ms(naive.replace(tzinfo=self.zone, fold=1))
        if first <= second:
            return first
        # In a gap: fold=1 reads the time with the offset after the change (too early),
        # fold=0 with the offset before it (too late); the change lies in between.
        lo, hi = second, first
        after = datetime.fromtimestamp(first / 1000, self.zone).utcoffset()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid / 1000, self.zone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return hi

    def open_from(self, start: int) -> Iterator[Interval]:
        return self.exclusions.cut(self._raw_from(start))

    def _raw_from(self, start: int) -> Iterator[Interval]:
        day = datetime.fromtimestamp(start / 1000, self.zone).date() - timedelta(days=1)
        idle = 0
        while idle < _SEARCH_LIMIT_DAYS:
            spans = self.day_intervals(day)
            idle = 0 if spans else idle + 1
            for lo, hi in spans:
                if hi > start:
                    yield max(lo, start), hi
            day += timedelta(days=1)
        raise ValueError("calendar has no open time within three years")
