"""What ticket and item clocks share: their history, schedule, thresholds, alerts, outcomes,
version changes, late events and the contract version they are measured against.

A *tracked* thing (a :class:`~sla_stream.engine.tickets.Ticket` or an
:class:`~sla_stream.engine.items.Item`) holds named clocks, the history of its
events, its outcomes per period and the version it was last measured against;
its policy (the contract's ``tickets`` or ``items`` section) gives each clock's
calendar and the near-breach fractions. The functions here take the policy of
the version the thing is measured against, worked out once by the caller.

What an event costs does not grow with the thing's history unless the event is
late (it lands before something already applied or sent): then the thing is
decided again from its whole history. It grows with the thing's clocks and the
contract's near-breach fractions and versions; a clock's next threshold or
deadline costs a bisection over the dates its calendar has covered (see
``calendar``), not a walk over the days its target spans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sla_stream.engine.alerts import BREACH, NEAR_BREACH, RETRACTED, Alert, alert_id
from sla_stream.engine.calendar import Calendar
from sla_stream.engine.clock import BREACH_FRACTION, Clock
from sla_stream.engine.model import Contract
from sla_stream.engine.periods import period_of


class _Timed(Protocol):
    @property
    def at(self) -> int: ...


class _Applied(_Timed, Protocol):
    @property
    def event_id(self) -> str: ...


E = TypeVar("E", bound=_Applied)


class Subject(Generic[E]):
    """What a ticket and an item keep alike: the history of the events applied to it (of type
    ``E``) and the retractions of its alerts. The dataclasses that derive from it declare
    ``history`` and ``revisions`` as their fields."""

    # A slot, as the subclasses' fields are (``dataclass(slots=True)``): no ``__dict__`` per
    # open ticket or item.
    __slots__ = ("_last_at",)

    history: list[E]
    revisions: dict[str, int]
    ids: tuple[tuple[str, int], ...]
    below: int
    _last_at: int

    def __post_init__(self) -> None:
        # Derived from the history (never stored): made again when a ticket or item is read back.
        self._last_at = max((event.at for event in self.history), default=0)

    def applied(self, event_id: str) -> bool:
        """Whether the event with this id was applied (a scan of the history: histories are
        short, and a set per ticket would cost more memory than the scan costs time); of a marker
        (what is left of one that left the state), whether it is among the ids it keeps."""
        return any(event.event_id == event_id for event in self.history) or any(
            applied == event_id for applied, _ in self.ids
        )

    @property
    def last_at(self) -> int:
        """The latest time among the events applied."""
        return self._last_at

    def record(self, event: E) -> None:
        """Add an event applied to the history."""
        self.history.append(event)
        self._last_at = max(self._last_at, event.at)

    def revision(self, name: str, cycle: int, fraction: float) -> int:
        """Retractions of the alert of clock ``name`` in ``cycle`` at ``fraction`` so far."""
        if not self.revisions:  # as for most: nothing was ever retracted
            return 0
        return self.revisions.get(_revision_key(name, cycle, fraction), 0)


def _revision_key(name: str, cycle: int, fraction: float) -> str:
    return f"{name}|{cycle}|{fraction!r}"


class Tracked(Protocol):
    clocks: dict[str, Clock]
    retired: dict[str, Clock]
    outcomes: dict[str, list[list[int]]]
    booked: list[tuple[str, int, int, int]]
    revisions: dict[str, int]
    version: str | None

    @property
    def history(self) -> Sequence[_Timed]: ...

    @property
    def last_at(self) -> int: ...

    def revision(self, name: str, cycle: int, fraction: float) -> int: ...

    def about(self, contract: Contract, clock: Clock) -> tuple[str, str, int]:
        """``(subject_kind, subject_id, cycle)`` of the alerts of ``clock``, measured against
        ``contract``."""
        ...


class _Objective(Protocol):
    @property
    def calendar(self) -> Calendar: ...


class Policy(Protocol):
    @property
    def near_breach(self) -> tuple[float, ...]: ...

    @property
    def objectives(self) -> Mapping[str, _Objective]: ...


T = TypeVar("T", bound=Tracked)


def due(policy: Policy, thing: Tracked) -> Iterator[tuple[int, float, str]]:
    """``(observed_at, fraction, objective)`` of each running clock's next threshold,
    when it differs from the one last handed out for that clock."""
    objectives, fractions = policy.objectives, policy.near_breach
    for name, clock in thing.clocks.items():
        found = clock.next_due(objectives[name].calendar, fractions)
        if found is None:
            clock.scheduled = None
        elif clock.scheduled != found[:2]:
            clock.scheduled = found[0], found[1]
            yield found[0], found[1], name


def scheduled_before(policy: Policy, thing: Tracked) -> None:
    """A thing read back from its state had its next thresholds handed out when it was last
    changed: note them, so :func:`due` does not hand them out again."""
    for name, clock in thing.clocks.items():
        found = clock.next_due(policy.objectives[name].calendar, policy.near_breach)
        clock.scheduled = None if found is None else (found[0], found[1])


def passing(policy: Policy, thing: Tracked, before: int) -> tuple[int, float, str] | None:
    """The first ``(observed_at, fraction, objective)`` among the clocks' next thresholds
    observed before ``before``."""
    due_now = [
        (found[0], found[1], name)
        for name, clock in thing.clocks.items()
        if (found := clock.next_due(policy.objectives[name].calendar, policy.near_breach)) is not None
        and found[0] < before
    ]
    return min(due_now, default=None)


def fire(
    contract: Contract, policy: Policy, thing: Tracked, name: str, observed_at: int, fraction: float
) -> tuple[Clock, int, int | None] | None:
    """Mark a threshold that came due fired, if it is still the clock's next one (a breach books
    the clock's outcome, missed): the clock, its elapsed time and the deadline for the alert."""
    clock = thing.clocks.get(name)
    if clock is None:
        return None
    calendar = policy.objectives[name].calendar
    found = clock.next_due(calendar, policy.near_breach)
    if found is None or found[0] != observed_at or found[1] != fraction:
        return None
    clock.fired[fraction] = observed_at
    if fraction == BREACH_FRACTION:
        book(contract, thing, name, clock.cycle, False, observed_at)
    return clock, found[2], clock.reached(calendar, clock.target)


def retarget(
    contract: Contract, policy: Policy, thing: Tracked, name: str, clock: Clock, target: int, at: int
) -> tuple[list[float], int, int | None]:
    """Give a clock a new target at ``at``: the fractions it has now passed without firing,
    marked fired (a breach alone when it passed one: it replaces the near-breaches, and books the
    clock's outcome, missed), with the elapsed time and the deadline for their alerts."""
    clock.target = target
    calendar = policy.objectives[name].calendar
    elapsed = clock.elapsed_at(calendar, at)
    fractions = [
        fraction
        for fraction, amount in clock.thresholds(policy.near_breach)
        if elapsed > amount and fraction not in clock.fired
    ]
    if not fractions:
        return [], elapsed, None
    clock.fired.update((f, at) for f in fractions)
    if fractions[-1] == BREACH_FRACTION:
        fractions = fractions[-1:]
        book(contract, thing, name, clock.cycle, False, at)
    return fractions, elapsed, clock.reached(calendar, clock.target)


def stop(contract: Contract, policy: Policy, thing: Tracked, name: str, clock: Clock, at: int) -> None:
    """Stop a clock at ``at`` and book its outcome: met when within its target, unless a breach
    was already sent (it stands, even if a lower priority's target has since been met)."""
    within = clock.stop(policy.objectives[name].calendar, at)
    book(contract, thing, name, clock.cycle, within and BREACH_FRACTION not in clock.fired, at)


def book(contract: Contract, thing: Tracked, name: str, cycle: int, met: bool, at: int) -> None:
    """Record a clock's outcome, decided at ``at``: in the period of ``at``, replacing an
    earlier different outcome of the same period (met, reopened, then breached)."""
    outcomes = thing.outcomes.setdefault(f"{name}|{cycle}", [])
    if outcomes and outcomes[-1][0] == met:
        return
    if outcomes and period_of(contract.zone, outcomes[-1][1]) == period_of(contract.zone, at):
        was, decided = outcomes.pop()
        thing.booked.append((name, was, decided, -1))
    outcomes.append([int(met), at])
    thing.booked.append((name, int(met), at, 1))


def retire(thing: Tracked, name: str) -> None:
    """Drop a clock whose objective the contract no longer has, keeping what it fired: a late
    event that decides the thing again must know which of its alerts were sent."""
    thing.retired[name] = thing.clocks.pop(name)


def adapt(policy: Policy, thing: T) -> T:
    """Fit a stored thing to its policy as loaded now: clocks of objectives it no longer has
    are retired (their alerts were already decided)."""
    objectives = policy.objectives
    if not thing.clocks.keys() <= objectives.keys():
        for name in [name for name in thing.clocks if name not in objectives]:
            retire(thing, name)
    return thing


def switch(
    was: Policy,
    now: Policy,
    thing: Tracked,
    at: int,
    runs_on: Callable[[str, bool], bool],
    retarget: Callable[[str, Clock], list[Alert]],
) -> list[Alert]:
    """Switch the thing's clocks at ``at`` from version policy ``was`` to ``now``: the alerts
    the change fires.

    Clocks of objectives ``now`` does not have are retired; objectives it adds start with the
    next thing (or start event). A stopped clock is left as it is: it takes the version in force
    when it runs again. Every other clock's open time before the change counts on the old
    calendar, from it on the new one; ``retarget(name, clock)`` then gives it the new version's
    target (thresholds now in the past fire at once).

    Whether a clock runs from the change on is the one thing tickets and items decide
    differently, so ``runs_on(name, was_running)`` decides it. A ticket clock runs unless the
    ticket's status is one the *new* version's ``pause_on`` names: a version may change
    ``pause_on``, so a clock paused under the old version can resume at the change, and a
    running one pause. An item clock is paused and resumed by events, not by a state the
    version judges: it keeps running, or stays paused.
    """
    before = was.objectives
    alerts: list[Alert] = []
    for name in list(thing.clocks):
        clock, objective = thing.clocks[name], now.objectives.get(name)
        if objective is None:
            retire(thing, name)
            continue
        if clock.stopped:
            continue
        if clock.since is None or clock.since <= at:
            running = clock.since is not None
            clock.pause((before.get(name) or objective).calendar, at)
            if runs_on(name, running):
                clock.resume(at)
        alerts += retarget(name, clock)
    return alerts


def fire_due(
    contract: Contract,
    thing: T,
    before: int,
    policy_of: Callable[[Contract], Policy],
    fire: Callable[[Contract, T, str, int, float], Alert | None],
    switch: Callable[[Contract, Contract, T, int], list[Alert]],
) -> list[Alert]:
    """Fire, in order, every threshold of ``thing`` observed before ``before``, and switch it to
    each version taking effect before then (a change first at the same instant)."""
    fired: list[Alert] = []
    while True:
        first = passing(policy_of(measured(contract, thing)), thing, before)
        change = change_due(contract, thing)
        if change is not None and change < before and (first is None or change <= first[0]):
            fired += catch_up(contract, thing, change, switch)
            continue
        if first is None:
            return fired
        alert = fire(contract, thing, first[2], first[0], first[1])
        assert alert is not None
        fired.append(alert)


def fired(thing: Tracked) -> Iterator[tuple[str, Clock, float]]:
    """``(objective, clock, fraction)`` of every threshold the thing's clocks fired, retired
    clocks included."""
    for name, clock in (*thing.retired.items(), *thing.clocks.items()):
        for fraction in clock.fired:
            yield name, clock, fraction


def rebooked(old: Tracked, new: Tracked) -> list[tuple[str, int, int, int]]:
    """What the ledger must do when ``new`` is decided again from ``old``'s history: take back
    every outcome the old one decided and book the new one's."""
    return [*bookings(old.outcomes, -1), *bookings(new.outcomes, 1)]


def bookings(outcomes: Mapping[str, list[list[int]]], sign: int) -> Iterator[tuple[str, int, int, int]]:
    """Every outcome of ``outcomes`` (by ``"objective|cycle"``) as a booking of ``sign``: 1 books
    it, -1 takes it back."""
    for key, decided in outcomes.items():
        name = key.split("|")[0]
        for met, at in decided:
            yield name, met, at, sign


def settle(
    contract: Contract,
    old: T,
    new: T,
    decided: list[Alert],
    retraction: Callable[[str, str, Clock, float], Alert],
) -> list[Alert]:
    """What ``new``, decided again from ``old``'s history and a late event, sends: the alerts
    ``decided`` that were not sent before, then a retraction of each alert sent before that no
    longer follows (``retraction(original_id, objective, clock, fraction)``, made after the
    alert's revision went up in ``new``, so that it comes back with a new id if ever). The
    ledger takes back every outcome ``old`` decided and books ``new``'s."""
    sent = {_alert_id(contract, old, name, clock, f): (name, clock, f) for name, clock, f in fired(old)}
    out = [alert for alert in decided if sent.pop(alert.alert_id, None) is None]
    new.booked = rebooked(old, new)
    for original, (name, clock, fraction) in sent.items():
        key = _revision_key(name, clock.cycle, fraction)
        new.revisions[key] = new.revisions.get(key, 0) + 1
        out.append(retraction(original, name, clock, fraction))
    return out


def alert(
    contract: Contract,
    thing: Tracked,
    name: str,
    clock: Clock,
    fraction: float,
    elapsed: int,
    deadline: int | None,
    observed_at: int,
    details: dict[str, Any],
    retracts: str | None = None,
) -> Alert:
    """The near-breach (its ``fraction`` first in its details) or breach that clock ``name``
    fired, or with ``retracts`` the retraction of that alert (the id it retracts first in its
    details), measured against ``contract``; then the thing's own ``details``."""
    if retracts is not None:
        kind, details = RETRACTED, {"retracts": retracts, **details}
    elif fraction == BREACH_FRACTION:
        kind = BREACH
    else:
        kind, details = NEAR_BREACH, {"fraction": fraction, **details}
    subject_kind, subject_id, cycle = thing.about(contract, clock)
    return Alert(
        kind=kind,
        contract_id=contract.id,
        objective=name,
        subject_kind=subject_kind,
        subject_id=subject_id,
        cycle=cycle,
        target_ms=clock.target,
        elapsed_ms=elapsed,
        deadline_ms=deadline,
        observed_at_ms=observed_at,
        zone=contract.zone,
        # the breach has no fraction in its id; a retraction keeps the one it retracts
        fraction=None if kind == BREACH else fraction,
        details=details,
        revision=thing.revision(name, cycle, fraction),
    )


def retraction(
    contract: Contract,
    policy: Policy,
    thing: Tracked,
    name: str,
    clock: Clock,
    fraction: float,
    original: str,
    at: int,
    details: dict[str, Any],
) -> Alert:
    """The retraction at ``at`` of alert ``original`` (clock ``name``'s at ``fraction``), measured
    against ``contract`` and its ``policy`` (see :func:`alert`)."""
    objective = policy.objectives.get(name)  # None: an objective since dropped
    elapsed = clock.elapsed if objective is None else clock.elapsed_at(objective.calendar, at)
    deadline = None if objective is None else clock.reached(objective.calendar, clock.target)
    return alert(contract, thing, name, clock, fraction, elapsed, deadline, at, details, retracts=original)


def _alert_id(contract: Contract, thing: Tracked, name: str, clock: Clock, fraction: float) -> str:
    """The id of the near-breach or breach clock ``name`` fired at ``fraction``, as :func:`alert`
    gives it."""
    subject_kind, subject_id, cycle = thing.about(contract, clock)
    is_breach = fraction == BREACH_FRACTION
    return alert_id(
        contract.id,
        name,
        subject_kind,
        subject_id,
        cycle,
        BREACH if is_breach else NEAR_BREACH,
        None if is_breach else fraction,
        thing.revision(name, cycle, fraction),
    )


def needs_rebuild(contract: Contract, thing: Tracked, at: int) -> bool:
    """Whether an event at ``at`` lands before something already applied or sent for ``thing``
    (a version change among them)."""
    switched = measured(contract, thing).effective_from
    return (
        at < thing.last_at
        or (switched is not None and at < switched)
        or any(observed_at >= at for clock in thing.clocks.values() for observed_at in clock.fired.values())
    )


def measured(contract: Contract, thing: Tracked) -> Contract:
    """The version of ``contract`` the thing's clocks were last given targets from."""
    if not contract.versions:
        return contract
    if thing.version is None:
        return contract.at(thing.history[0].at)
    for version in (contract, *contract.versions):
        if version.version == thing.version:
            return version
    return contract.at(thing.last_at)  # a version renamed since: the thing was caught up to here


def change_due(contract: Contract, thing: Tracked) -> int | None:
    """When the next version change falls due for the thing, while it has a clock that is
    not stopped (stopped clocks take the version in force when they run again)."""
    if not contract.versions or all(clock.stopped for clock in thing.clocks.values()):
        return None
    switched = measured(contract, thing).effective_from
    return contract.changes_after(_BEFORE_ALL if switched is None else switched)


def catch_up(
    contract: Contract, thing: T, until: int, switch: Callable[[Contract, Contract, T, int], list[Alert]]
) -> list[Alert]:
    """Switch the thing, in order, to each version that took effect at or before ``until``
    after the one it was last measured against; the alerts the changes fire."""
    alerts: list[Alert] = []
    while contract.versions:
        version = measured(contract, thing)
        change = contract.changes_after(
            _BEFORE_ALL if version.effective_from is None else version.effective_from
        )
        if change is None or change > until:
            break
        thing.version = contract.at(change).version
        alerts += switch(version, contract.at(change), thing, change)
    return alerts


_BEFORE_ALL = -(2**63)
