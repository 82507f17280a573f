"""Open time: which instants a clock counts, and arithmetic over them.

A calendar is a sorted, endless sequence of half-open open intervals
``[start, end)`` in epoch milliseconds. Every objective's clock counts
elapsed time only inside its calendar's open intervals, which already have
the contract's exclusion windows cut out.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
    _open: _OpenDays = field(default_factory=lambda: _OpenDays(), compare=False, repr=False)

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

    def day_start(self, day: date) -> int:
        """The instant ``day`` begins in the calendar's zone (its intervals lie within it)."""
        return self._instant(day, time(0))

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

    # Open time by local date (see _OpenDays): the same answers as walking open_from, found by
    # bisection, so a clock's cost does not grow with the days its target spans.

    def between(self, start: int, end: int) -> int:
        if end <= start:
            return 0
        days = self._open
        days.cover(self, start)
        days.cover(self, end)
        return days.open_before(end) - days.open_before(start)

    def reach(self, start: int, amount: int) -> int:
        if amount <= 0:
            return start
        days = self._open
        days.cover(self, start)
        return days.used_up(self, days.open_before(start) + amount, at_closing=True)

    def passes(self, start: int, amount: int) -> int:
        days = self._open
        days.cover(self, start)
        return days.used_up(self, days.open_before(start) + amount, at_closing=False)


class _OpenDays:
    """A business calendar's open time per local date, over the dates asked about so far.

    For each date: its open intervals (exclusions cut out), when it begins, and the open time
    of the dates before it (a running sum). The open time before an instant is the sum before
    its date plus a part of that date; the instant a sum of open time is used up is found by
    bisecting the running sums. Each answer costs a bisection and one date's intervals, however
    many days lie in between; a date is worked out once, when first covered, and kept (a few
    kilobytes per year of dates covered).
    """

    __slots__ = ("before", "first", "spans", "starts")

    def __init__(self) -> None:
        self.first = date.min
        self.starts: list[int] = []
        """``starts[i]``: the instant date ``first + i`` begins; one more than there are dates."""
        self.spans: list[tuple[Interval, ...]] = []
        """``spans[i]``: the open intervals of date ``first + i``, within its day."""
        self.before: list[int] = [0]
        """``before[i]``: open milliseconds from the start of ``first`` to ``starts[i]``."""

    def cover(self, cal: Business, instant: int) -> None:
        """Work out the dates up to the one ``instant`` falls on. An instant before the first
        date covered starts again from a date at least as far back again as is covered, so that
        going back further and further costs no more than twice the dates covered."""
        if not self.starts or instant < self.starts[0]:
            day = datetime.fromtimestamp(instant / 1000, cal.zone).date() - timedelta(days=1)
            self._restart(cal, day if not self.starts else min(day, self.first - timedelta(len(self.spans))))
        while instant >= self.starts[-1]:
            self._add(cal)

    def _restart(self, cal: Business, first: date) -> None:
        until = self.first + timedelta(len(self.spans))
        self.first, self.starts, self.spans, self.before = first, [cal.day_start(first)], [], [0]
        while self.first + timedelta(len(self.spans)) < until:
            self._add(cal)

    def _add(self, cal: Business) -> int:
        """Add the next date; its open milliseconds."""
        day = self.first + timedelta(len(self.spans))
        spans = tuple(cal.exclusions.cut(cal.day_intervals(day)))
        open_ms = sum(hi - lo for lo, hi in spans)
        self.spans.append(spans)
        self.starts.append(cal.day_start(day + timedelta(days=1)))
        self.before.append(self.before[-1] + open_ms)
        return open_ms

    def open_before(self, instant: int) -> int:
        """Open milliseconds from the first date to ``instant`` (covered)."""
        index = bisect_right(self.starts, instant) - 1
        total = self.before[index]
        for lo, hi in self.spans[index]:
            if lo >= instant:
                break
            total += min(hi, instant) - lo
        return total

    def used_up(self, cal: Business, total: int, at_closing: bool) -> int:
        """The instant the open time from the first date reaches ``total`` (``at_closing``: the
        earliest, as :meth:`Calendar.reach`) or goes past it (as :meth:`Calendar.passes`)."""
        idle = 0
        while self.before[-1] < total or (not at_closing and self.before[-1] == total):
            idle = 0 if self._add(cal) else idle + 1
            if idle >= _SEARCH_LIMIT_DAYS:
                raise ValueError("calendar has no open time within three years")
        # The date whose running sum first reaches the total (goes past it).
        index = (bisect_left if at_closing else bisect_right)(self.before, total) - 1
        left = total - self.before[index]
        for lo, hi in self.spans[index]:
            if left < hi - lo or (at_closing and left == hi - lo):
                return lo + left
            left -= hi - lo
        raise AssertionError("unreachable: the date's running sum passes the total")
