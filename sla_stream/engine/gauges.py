"""What an engine's state says right now, for live gauges: open clocks, the next deadline,
error budgets, burn rates and call service levels. Read when metrics are scraped, never
kept up per event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sla_stream.engine import calls, requests, tracked
from sla_stream.engine.clock import BREACH_FRACTION, Clock
from sla_stream.engine.items import Item
from sla_stream.engine.ledger import Ledger
from sla_stream.engine.model import (
    SERVICE_LEVEL,
    TICKET_OBJECTIVES,
    ClockObjective,
    Contract,
    TicketObjective,
)
from sla_stream.engine.periods import period_of
from sla_stream.engine.processor import Engine
from sla_stream.engine.statements import measures, statement, tally
from sla_stream.engine.tickets import Ticket
from sla_stream.engine.time import MINUTE_MS, format_duration


@dataclass(slots=True)
class Gauges:
    """Gauge values keyed by their label values; :meth:`add` gathers several engines."""

    open_clocks: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """``(contract, objective, state)`` -> clocks; state is ``running``, ``paused``,
    ``at_risk`` (a near-breach fired) or ``breached``."""
    next_deadline: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(contract, objective)`` -> seconds until the nearest deadline of a running clock."""
    compliance: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(contract, objective)`` -> attained so far: ticket clocks that met their target ÷ those
    decided this month (met when stopped in time, breached when the deadline passed), calls
    answered in time this month, good ÷ total over the objective's window (requests)."""
    budget: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(contract, objective)`` -> share of the window's error budget left."""
    burn: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """``(contract, objective, window)`` -> burn rate over the window."""
    credit: dict[str, float] = field(default_factory=dict)
    """Contract -> share of the monthly fee this period would credit if it closed now."""
    call_level: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(contract, queue)`` -> service level of the current interval, waiting calls past
    ``answer_within`` counted as missed."""
    _totals: dict[tuple[str, int | str], list[int]] = field(default_factory=dict)
    _contracts: dict[str, Contract] = field(default_factory=dict)
    _ledgers: dict[str, list[Ledger]] = field(default_factory=dict)
    """Contract -> its ledgers in every engine."""
    _month: dict[str, str] = field(default_factory=dict)
    """Contract -> the period it is in (by the first engine's clock that holds it)."""
    _versions: dict[str, Contract] = field(default_factory=dict)
    """Contract -> the version in force (by the first engine's clock that holds it)."""

    def add(self, engine: Engine) -> None:
        """Add what ``engine`` holds (engines of different partitions hold different contracts)."""
        now = engine.clock
        if now is None:
            return
        self._tickets(engine, now)
        self._calls(engine, now)
        self._requests(engine, now)
        for contract_id, ledger in list(engine.ledgers.items()):
            contract = engine.contract_or_none(contract_id)
            if contract is None:
                continue
            self._contracts[contract_id] = contract
            self._month.setdefault(contract_id, period_of(contract.zone, now))
            self._versions.setdefault(contract_id, contract.at(now))
            self._ledgers.setdefault(contract_id, []).append(ledger)

    def _tickets(self, engine: Engine, now: int) -> None:
        """Open ticket and item clocks, by state, and the nearest deadline of the running ones."""
        stores: tuple[Mapping[tuple[str, str], Ticket | Item], ...] = (engine.tickets, engine.items)
        for store in stores:
            # A store may read without keeping what it read (a scrape must not evict busy tickets).
            peek = getattr(store, "peek", store.get)
            for key in list(store):
                contract = engine.contract_or_none(key[0])
                if contract is None:
                    continue
                found = peek(key)
                if found is None or found.gone is not None:
                    continue  # a marker of one that left the state: no clocks
                # Each clock by the version it is measured against.
                if isinstance(found, Ticket) and (policy := tracked.measured(contract, found).tickets):
                    self._clocks(contract.id, policy.objectives, found.clocks, now)
                elif isinstance(found, Item) and (section := tracked.measured(contract, found).items):
                    self._clocks(contract.id, section.objectives, found.clocks, now)

    def _clocks(
        self,
        contract_id: str,
        objectives: Mapping[str, TicketObjective] | Mapping[str, ClockObjective],
        clocks: dict[str, Clock],
        now: int,
    ) -> None:
        for name, clock in clocks.items():
            objective = objectives.get(name)
            if objective is None or clock.stopped:
                continue
            if BREACH_FRACTION in clock.fired:
                state = "breached"
            elif clock.fired:
                state = "at_risk"
            else:
                state = clock.state
            counted = (contract_id, name, state)
            self.open_clocks[counted] = self.open_clocks.get(counted, 0) + 1
            if clock.since is None or BREACH_FRACTION in clock.fired:
                continue
            deadline = clock.reached(objective.calendar, clock.target)
            if deadline is not None:
                left = (deadline - now) / 1000
                where = (contract_id, name)
                self.next_deadline[where] = min(self.next_deadline.get(where, left), left)

    def _calls(self, engine: Engine, now: int) -> None:
        for contract_id, centre in list(engine.centres.items()):
            contract = engine.contract_or_none(contract_id)
            if contract is None or contract.calls is None:
                continue
            level = calls.policy_of(contract.at(now)).objectives.get(SERVICE_LEVEL)
            if level is None:
                continue
            start = calls.interval_start(contract, now, level.interval)
            queues = {queue for queue, _ in centre.days} | {w.queue for w in centre.waiting.values()}
            for queue in sorted(queues):
                interval = centre.intervals.get((queue, level.interval, start))
                tally = interval.tally if interval is not None else calls.Tally()
                value = tally.value(SERVICE_LEVEL, calls.missed(centre, queue))
                if value is not None:
                    self.call_level[contract_id, queue] = value

    def _requests(self, engine: Engine, now: int) -> None:
        for (contract_id, _service), service in list(engine.services.items()):
            contract = engine.contract_or_none(contract_id)
            if contract is None or contract.requests is None or not service.left:
                continue
            # Summed over the contract's services, as penalty statements count them.
            self._contracts[contract_id] = contract
            self._versions.setdefault(contract_id, contract.at(now))
            for window, sums in requests.window_sums(service).items():
                totals = self._totals.setdefault((contract_id, window), [0, 0, 0, 0])
                for index in range(4):
                    totals[index] += sums[index]

    def finish(self) -> Gauges:
        """Turn the counts gathered from every engine into ratios."""
        for contract_id, ledgers in self._ledgers.items():
            contract, month = self._contracts[contract_id], self._month[contract_id]
            # Ticket and item clocks and the call service level: this period so far, as its
            # statement counts them.
            version = self._versions[contract_id]
            item_objectives = version.items.objectives if version.items is not None else {}
            for name, measure, _, _ in measures(version, tally(ledgers, month)):
                if name in TICKET_OBJECTIVES or name == SERVICE_LEVEL or name in item_objectives:
                    self.compliance[contract_id, name] = float(measure)
            if contract.penalties is not None:
                so_far = statement(contract, month, ledgers)
                self.credit[contract_id] = float(so_far.credit_percent) / 100
        for contract_id, contract in sorted(self._contracts.items()):
            policy = self._versions.get(contract_id, contract).requests
            if policy is None:
                continue
            for objective in policy.objectives.values():
                good_at, total_at = requests.counted(objective)
                sums = self._totals.get((contract_id, objective.window_key), [0, 0, 0, 0])
                where = (contract_id, objective.name)
                if sums[total_at]:
                    self.compliance[where] = sums[good_at] / sums[total_at]
                    remaining = requests.budget_remaining(sums, good_at, total_at, objective.target)
                    if remaining is not None:
                        self.budget[where] = remaining
                for minutes in sorted(w for w in policy.windows if isinstance(w, int)):
                    counts = self._totals.get((contract_id, minutes), [0, 0, 0, 0])
                    rate = requests.burn_rate(counts, good_at, total_at, 1 - objective.target)
                    self.burn[contract_id, objective.name, format_duration(minutes * MINUTE_MS)] = rate
        return self


def read(engines: Iterable[Engine]) -> Gauges:
    """The gauges of every engine together."""
    gauges = Gauges()
    for engine in engines:
        gauges.add(engine)
    return gauges.finish()
