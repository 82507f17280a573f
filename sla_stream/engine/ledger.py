"""What one engine counted for one contract, per period.

Every engine keeps a :class:`Ledger` per contract with what it counted in each period
(:mod:`sla_stream.engine.periods`): ticket and item outcomes (booked to the period in which
they were decided), calls handled, and requests outside exclusion windows. Penalty statements
(:mod:`sla_stream.engine.statements`) are counted from the ledgers of every engine measuring
a contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sla_stream.engine.periods import bounds, period_of

CALLS, REQUESTS = "calls", "requests"
"""Ledger names of the call tally (answered, within, abandoned, short, wait ms) and of the
request counts (total, good, latency total, latency good); ticket objectives are booked
under their own names as (met, decided)."""


@dataclass(slots=True)
class Ledger:
    """What one engine counted for one contract, per period and name."""

    periods: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    """Per input topic, the offset after the last message counted here: a call or request
    message processed again after a crash (at-least-once) is not counted twice."""
    views: dict[str, dict[str, list[list[int]]]] = field(default_factory=dict)
    """Per ticket or item (the worker's, ``Books.once``), the outcomes counted here as the thing had them
    (``"objective|cycle"`` to ``[met, decided_at]`` pairs), kept until the thing itself is
    written: see :meth:`~sla_stream.engine.books.Books.book`."""
    made: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    """In memory only: the write each view was made before (``Books.writes``); a view read
    back from the state has none (see ``Books.confirm``)."""
    pruned: int = field(default=-1, compare=False, repr=False)
    """In memory only: the ``Books.writes`` at which the views were last pruned."""
    _span: tuple[int, int, str] = (0, 0, "")
    """The period last looked up, with its bounds (in memory only)."""

    def period(self, zone: ZoneInfo, at: int) -> str:
        """:func:`period_of`, cheap for instants in the period last asked for."""
        start, end, period = self._span
        if not start <= at < end:
            period = period_of(zone, at)
            self._span = (*bounds(zone, period), period)
        return period

    def add(self, period: str, name: str, counts: Sequence[int]) -> None:
        """Add counts (negative ones take back) under ``name`` in ``period``."""
        counted = self.periods.get(period)
        if counted is None:
            counted = self.periods[period] = {}
        total = counted.get(name)
        if total is None:
            counted[name] = list(counts)
        else:
            for index, n in enumerate(counts):
                total[index] += n

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"p": self.periods, "c": self.counted}
        if self.views:
            state["v"] = self.views
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ledger:
        periods, views = state["p"], state.get("v", {})
        return cls(
            {period: {name: list(c) for name, c in names.items()} for period, names in periods.items()},
            dict(state["c"]),
            {thing: copied(view) for thing, view in views.items()},
        )


def copied(outcomes: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """A copy of a ticket's or item's outcomes (``"objective|cycle"`` to ``[met, at]`` pairs)."""
    return {key: [list(o) for o in decided] for key, decided in outcomes.items()}
