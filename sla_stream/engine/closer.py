"""Settling periods: when nothing more can be counted in a period, its statement.

When the event-time clock of every engine measuring a contract reaches the end of a
period plus the allowed lateness, nothing more can be counted in it: the
:class:`Closer` adds the engines' ledgers up into one
:class:`~sla_stream.engine.statements.Statement`, drops the period, and moves the
contract's mark on to the next one. The mark is state too, so a restarted worker neither
skips a period nor settles it twice. It sits above the engine (it reads engines' clocks
and ledgers); nothing in the engine imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping

from sla_stream.engine.model import Contract
from sla_stream.engine.periods import bounds, next_period
from sla_stream.engine.processor import Engine
from sla_stream.engine.statements import Statement, statement

log = logging.getLogger("sla_stream.statements")


class Closer:
    """Settles the periods of one partition's contracts.

    ``marks`` holds, per contract, the next period to settle; it is part of the
    partition's state. A contract's periods are settled from the first one in
    which any of its events was counted. Without an allowed lateness any late
    event is accepted, so nothing is final before the end: only ``final`` settles.
    """

    def __init__(
        self,
        contracts: Callable[[str], Contract | None],
        allowed_lateness: int | None,
        marks: MutableMapping[str, str],
    ) -> None:
        self._contract = contracts
        self.lateness = allowed_lateness
        self.marks = marks
        self._next = -1
        """The earliest instant some contract's period may close (-1: not worked out yet)."""
        self._opened = -1
        self._failed: set[str] = set()

    def close(self, engines: Mapping[str, Engine], final: int | None = None) -> list[Statement]:
        """Statements of every period whose end plus the allowed lateness the clocks reached.

        ``engines`` maps each source (``ticket``, ``call``, ``request``) to the engine counting
        it; a contract's period closes once the clock of every source it measures has reached
        the end. ``final`` stands for every clock at the end of a replay.
        """
        distinct = list({id(engine): engine for engine in engines.values()}.values())
        opened = sum(engine.opened for engine in distinct)
        clocks = [engine.clock for engine in distinct if engine.clock is not None]
        latest = final if final is not None else max(clocks, default=None)
        if final is None and self.lateness is None:
            return []
        if latest is None or (opened == self._opened and latest < self._next):
            return []
        self._opened = opened
        self._next = _NEVER
        contracts = set(self.marks)
        for engine in distinct:
            contracts.update(engine.ledgers)
        settled: list[Statement] = []
        for contract_id in sorted(contracts):
            contract = self._contract(contract_id)
            if contract is None:
                continue
            now = final if final is not None else _clock(engines, contract)
            try:
                settled += self._settle(contract, distinct, now)
            except Exception:  # a defect must not cost other contracts their statements
                if contract_id not in self._failed:
                    log.exception("periods of contract %s could not be settled; trying again", contract_id)
                self._failed.add(contract_id)
                self._next = -1
        return settled

    def _settle(self, contract: Contract, engines: list[Engine], now: int | None) -> list[Statement]:
        """Settle the contract's periods that closed by ``now``; note when the next one closes."""
        holders = [engine for engine in engines if contract.id in engine.ledgers]
        ledgers = [engine.ledgers[contract.id] for engine in holders]
        mark = self.marks.get(contract.id)
        if mark is None:  # nothing settled yet: start with the first period counted
            mark = min((period for ledger in ledgers for period in ledger.periods), default=None)
            if mark is None:
                return []
        period, settled = mark, []
        lateness = self.lateness or 0
        end = bounds(contract.zone, period)[1] + lateness
        while now is not None and end <= now:
            if contract.penalties is not None:
                settled.append(statement(contract, period, ledgers))
            period = next_period(period)
            end = bounds(contract.zone, period)[1] + lateness
        for engine, ledger in zip(holders, ledgers, strict=True):
            # Settled periods go; so would any a late event could not have counted in anyway.
            done = [p for p in ledger.periods if p < period]
            for old in done:
                del ledger.periods[old]
            if not ledger.periods:
                del engine.ledgers[contract.id]
            elif done:
                engine.ledgers[contract.id] = ledger  # changed: the store writes it
        if period != mark:
            self.marks[contract.id] = period
        self._next = min(self._next, end)
        return settled


def _clock(engines: Mapping[str, Engine], contract: Contract) -> int | None:
    """The earliest clock among the engines of the sources ``contract`` measures."""
    clocks = []
    for source in contract.sources:
        engine = engines.get(source)
        if engine is None or engine.clock is None:
            return None
        clocks.append(engine.clock)
    return min(clocks, default=None)


_NEVER = 2**63
