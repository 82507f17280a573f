"""Clocks a contract configures on items of its own kind: parcels, claims, orders.

An ``items`` section names the event type and field values that start, pause,
resume and stop each clock (``shipment.picked_up`` starts delivery,
``shipment.status_changed`` to ``customs_hold`` pauses it,
``shipment.delivered`` stops it), the calendar it counts on and its target, by
the value of a field (``service_class``) when targets differ. Near-breach and
breach alerts, late events, exclusions and period outcomes work as for ticket
clocks. An item has one cycle per clock: a clock that stopped does not start
again. Events may also flag an item for a compensation reason (``damaged``),
booked once per item.

An item event costs what a ticket event costs (see ``tickets``): the same however long the
item's history is, unless it is late (the item is decided again from its history), or it starts
a clock whose target depends on a field it does not carry (the value is looked up in the
history).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sla_stream.engine import tracked
from sla_stream.engine.alerts import Alert
from sla_stream.engine.clock import Clock
from sla_stream.engine.events import ItemEvent, Rejected
from sla_stream.engine.model import FLAG_PREFIX, ClockObjective, Contract, ItemPolicy


@dataclass(slots=True)
class Item(tracked.Subject[ItemEvent]):
    """What the engine remembers of one item (its history and revisions: see ``tracked.Subject``)."""

    item_id: str
    values: dict[str, str] = field(default_factory=dict)
    """The latest value of each field that picks a target (``service_class``)."""
    clocks: dict[str, Clock] = field(default_factory=dict)
    history: list[ItemEvent] = field(default_factory=list)
    """Every event applied, in the order applied, added with :meth:`record` (see
    ``Ticket.history``)."""
    revisions: dict[str, int] = field(default_factory=dict)
    """Retractions per ``objective|cycle|fraction``: an alert that comes back gets a new id."""
    outcomes: dict[str, list[list[int]]] = field(default_factory=dict)
    """Per ``objective|0`` (and ``flag:reason|0``), its outcomes as ``[met, decided at]``."""
    version: str | None = None
    """Of a versioned contract: the version the clocks were last given targets from."""
    retired: dict[str, Clock] = field(default_factory=dict)
    """Clocks of objectives the contract dropped since they started (see ``tracked.retire``);
    they do not start again."""
    booked: list[tuple[str, int, int, int]] = field(default_factory=list)
    """Outcomes added or taken back since the engine last moved them to the ledger (in memory)."""
    decoded: bool = field(default=False, compare=False)
    """Read back from its state (in memory only; see ``Ticket.decoded``)."""
    gone: int | None = None
    """Set on the marker left of a finished item once it left the state: the time it left
    (see :func:`leaves_at` and ``Ticket.gone``)."""
    ids: tuple[tuple[str, int], ...] = ()
    """Of a marker: the id and time of each event the item had applied (see ``Ticket.ids``)."""
    below: int = field(default=-1, compare=False)
    """The worker's: the input offset below which every message was processed when the item was
    last stored (see ``Ticket.below``)."""

    def about(self, contract: Contract, clock: Clock) -> tuple[str, str, int]:
        """An item's alerts are about an item of its contract's kind, in the one cycle (0)."""
        return policy_of(contract).kind, self.item_id, 0

    def to_state(self) -> dict[str, Any]:
        if self.gone is not None:
            return {"id": self.item_id, "gone": self.gone, "ids": [list(pair) for pair in self.ids]}
        return {
            "id": self.item_id,
            "v": self.values,
            "c": {name: clock.to_state() for name, clock in self.clocks.items()},
            "h": [[*event[:4], [list(pair) for pair in event.fields]] for event in self.history],
            "r": self.revisions,
            "o": self.outcomes,
            **({"ver": self.version} if self.version is not None else {}),
            **({"x": {n: c.to_state() for n, c in self.retired.items()}} if self.retired else {}),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Item:
        if "gone" in state:
            return cls(state["id"], gone=state["gone"], ids=tuple((i, at) for i, at in state["ids"]))
        return cls(
            state["id"],
            dict(state["v"]),
            {name: Clock.from_state(c) for name, c in state["c"].items()},
            [ItemEvent(e[0], e[1], e[2], e[3], tuple((k, v) for k, v in e[4])) for e in state["h"]],
            dict(state["r"]),
            state["o"],
            state.get("ver"),
            {name: Clock.from_state(c) for name, c in state.get("x", {}).items()},
            decoded=True,
        )


_D = TypeVar("_D", int, None)


def leaves_at(contract: Contract, item: Item, lateness: int) -> int | None:
    """When the item leaves the state, if it is finished: once every clock of its objectives
    has stopped (a stopped item clock does not start again), the allowed ``lateness`` after its
    last event; once no clock runs or is paused but some never started, or while a compensation
    reason the contract names could still flag it (reported after delivery, say), the policy's
    ``retention`` after its last event. What is left, a marker of its id (``gone``), goes the
    retention after that. ``None``: a clock of the item is running or paused."""
    if item.gone is not None:
        return item.gone + policy_of(contract.at(item.gone)).retention
    if not all(clock.stopped for clock in item.clocks.values()):
        return None
    policy = policy_of(measured(contract, item))
    done = policy.objectives.keys() <= item.clocks.keys() and all(
        f"{FLAG_PREFIX}{reason}|0" in item.outcomes for reason in policy.flags
    )
    return item.last_at + (lateness if done else max(policy.retention, lateness))


def marker(item: Item, at: int) -> Item:
    """What is left of a finished item once it left the state at ``at``: its id, and those of its
    events."""
    return Item(item.item_id, gone=at, ids=tuple((event.event_id, event.at) for event in item.history))


def policy_of(contract: Contract) -> ItemPolicy:
    if contract.items is None:
        raise Rejected("invalid", f"contract {contract.id} has no items section (no item objectives)")
    return contract.items


def item_id(contract: Contract, event: ItemEvent) -> str:
    """The id of the item ``event`` is about; raises :class:`Rejected` for an event the
    contract's items section cannot take."""
    policy = policy_of(contract.at(event.at))
    if event.type.split(".", 1)[0] != policy.kind:
        raise Rejected(
            "invalid",
            f"{event.type} is not a {policy.kind} event, the kind of item contract {contract.id} measures",
        )
    found = event.field(policy.key)
    if not found:
        raise Rejected(
            "invalid", f"`{policy.key}` is missing: contract {contract.id} names its {policy.kind}s by it"
        )
    return found


def adapt(contract: Contract, item: Item) -> Item:
    """Fit a stored item to the contract as loaded now: clocks of dropped objectives go."""
    return tracked.adapt(policy_of(measured(contract, item)), item)


def check(contract: Contract, item: Item | None, event: ItemEvent) -> None:
    """Raise :class:`Rejected` if ``event`` cannot be applied to ``item`` (``None``: first event).

    A value of a ``target_by`` field must be one the clocks it picks a target for list, for
    the clocks the item runs and those the event starts; a clock that the event starts needs
    the value, from the event or from an earlier one (by time, as a late event is applied).
    """
    policy = policy_of(contract.at(event.at))
    for objective in policy.objectives.values():
        by = objective.target_by
        if by is None:
            continue
        running = (
            item is not None and objective.name in item.clocks and not item.clocks[objective.name].stopped
        )
        starts = _starts(objective, item, event)
        if not (running or starts):
            continue
        value = event.field(by)
        if value is None and starts and item is not None:
            # The item's value at the event's time (a late event is applied in its place).
            known = [e.field(by) for e in sorted(item.history, key=lambda e: e.at) if e.at <= event.at]
            value = next((v for v in reversed(known) if v is not None), None)
        if value is not None and value not in objective.targets:
            raise Rejected(
                "invalid",
                f"{by} {value!r} is not one of {', '.join(objective.targets)}"
                f" defined by contract {contract.id} for {objective.name}",
            )
        if starts and value is None:
            raise Rejected(
                "invalid",
                f"{event.type} starts {objective.name}, whose target depends on `{by}`:"
                " this event or an earlier one of the item must carry it",
            )


def _starts(objective: ClockObjective, item: Item | None, event: ItemEvent) -> bool:
    """Whether ``event`` starts the clock of ``objective`` (one cycle per item)."""
    if item is not None and (objective.name in item.clocks or objective.name in item.retired):
        return False
    return any(rule.matches(event) for rule in objective.start)


def create(contract: Contract, event: ItemEvent) -> tuple[Item, list[Alert]]:
    """A new item from its first event."""
    item = _new(contract, item_id(contract, event), event.at)
    return item, apply(contract, item, event)


def _new(contract: Contract, name: str, at: int) -> Item:
    return Item(name, version=contract.at(at).version if contract.versioned else None)


def apply(contract: Contract, item: Item, event: ItemEvent) -> list[Alert]:
    """Apply one event (already known not to be a duplicate) to the item, measured against the
    version in force at its time (a change at the same instant comes first)."""
    alerts = catch_up(contract, item, event.at)
    version = measured(contract, item)
    return alerts + _apply(version, policy_of(version), _target_fields(contract), item, event)


def _target_fields(contract: Contract) -> set[str]:
    """The fields some version's clocks pick their targets by: kept from every event, so a later
    version that picks by one finds the item's value."""
    return {
        objective.target_by
        for version in (contract, *contract.versions)
        for objective in policy_of(version).objectives.values()
        if objective.target_by is not None
    }


def _apply(
    contract: Contract, policy: ItemPolicy, fields: set[str], item: Item, event: ItemEvent
) -> list[Alert]:
    item.record(event)
    at = event.at
    changed = set()
    for by in sorted(fields):
        value = event.field(by)
        if value is not None and item.values.get(by) != value:
            item.values[by] = value
            changed.add(by)
    alerts: list[Alert] = []
    for name, objective in policy.objectives.items():
        clock = item.clocks.get(name)
        if clock is None:
            target = _target(objective, item, None)
            if target is not None and _starts(objective, item, event):
                item.clocks[name] = Clock(target=target, since=at)
            continue
        if clock.stopped:
            continue
        if objective.target_by in changed:
            alerts += _retarget(contract, policy, item, name, clock, at)
        if any(rule.matches(event) for rule in objective.stop):
            tracked.stop(contract, policy, item, name, clock, at)
        elif any(rule.matches(event) for rule in objective.pause):
            clock.pause(objective.calendar, at)
        elif objective.resumes(event):
            clock.resume(at)
    for reason, rule in policy.flags.items():
        if rule.matches(event):
            _book(contract, item, FLAG_PREFIX + reason, True, at)
    return alerts


def _target(objective: ClockObjective, item: Item, default: _D) -> int | _D:
    value = item.values.get(objective.target_by, "") if objective.target_by else ""
    return objective.targets.get(value, default)


def _retarget(
    contract: Contract, policy: ItemPolicy, item: Item, name: str, clock: Clock, at: int
) -> list[Alert]:
    """Give a clock the target of the item's field value now; thresholds passed fire at once."""
    target = _target(policy.objectives[name], item, clock.target)
    fractions, elapsed, deadline = tracked.retarget(contract, policy, item, name, clock, target, at)
    return [
        tracked.alert(contract, item, name, clock, f, elapsed, deadline, at, _values(policy, item, name))
        for f in fractions
    ]


def _book(contract: Contract, item: Item, name: str, met: bool, at: int) -> None:
    """Record an outcome decided at ``at`` (items have one cycle, 0)."""
    tracked.book(contract, item, name, 0, met, at)


measured = tracked.measured
change_due = tracked.change_due
needs_rebuild = tracked.needs_rebuild


def catch_up(contract: Contract, item: Item, until: int) -> list[Alert]:
    """Switch the item to each version that took effect by ``until`` (see ``tracked``)."""
    return tracked.catch_up(contract, item, until, _switch)


def _switch(was: Contract, now: Contract, item: Item, at: int) -> list[Alert]:
    """The change to version ``now`` at ``at``, as a change of the item's field value
    re-targets: each clock not stopped gets the new version's target for that value (kept when
    it has none) and calendar; running clocks keep running, paused ones stay paused (see
    ``tracked.switch``)."""
    policy = policy_of(now)

    def runs_on(name: str, running: bool) -> bool:
        return running

    def retarget(name: str, clock: Clock) -> list[Alert]:
        return _retarget(now, policy, item, name, clock, at)

    return tracked.switch(policy_of(was), policy, item, at, runs_on, retarget)


def due(contract: Contract, item: Item) -> Iterator[tuple[int, float, str]]:
    """The item's next thresholds not handed out yet (see ``tracked.due``)."""
    return tracked.due(policy_of(measured(contract, item)), item)


def scheduled_before(contract: Contract, item: Item) -> None:
    """Note the thresholds a decoded item handed out when it last changed."""
    tracked.scheduled_before(policy_of(measured(contract, item)), item)
    item.decoded = False


def fire(contract: Contract, item: Item, name: str, observed_at: int, fraction: float) -> Alert | None:
    """Fire a threshold that came due, if it is still the clock's next one."""
    contract = measured(contract, item)
    policy = policy_of(contract)
    found = tracked.fire(contract, policy, item, name, observed_at, fraction)
    if found is None:
        return None
    clock, elapsed, deadline = found
    details = _values(policy, item, name)
    return tracked.alert(contract, item, name, clock, fraction, elapsed, deadline, observed_at, details)


def fire_due(contract: Contract, item: Item, before: int) -> list[Alert]:
    """Fire, in order, every threshold observed before ``before`` and every version change."""
    return tracked.fire_due(contract, item, before, policy_of, fire, _switch)


def rebuild(contract: Contract, old: Item, late: ItemEvent, now: int) -> tuple[Item, list[Alert]]:
    """Decide the item again with a late event in its place by time, up to ``now``: alerts not
    sent before are returned, and those sent before that no longer follow are retracted."""
    history = sorted([*old.history, late], key=lambda event: event.at)  # stable on ties
    item = _new(contract, old.item_id, history[0].at)
    item.revisions = dict(old.revisions)
    decided: list[Alert] = []
    for event in history:
        decided += fire_due(contract, item, event.at)
        decided += apply(contract, item, event)
    decided += fire_due(contract, item, now)
    was = measured(contract, old)
    was_policy = policy_of(was)

    def retraction(original: str, name: str, clock: Clock, fraction: float) -> Alert:
        details = _values(was_policy, item, name)
        return tracked.retraction(was, was_policy, item, name, clock, fraction, original, late.at, details)

    return item, tracked.settle(contract, old, item, decided, retraction)


def _values(policy: ItemPolicy, item: Item, name: str) -> dict[str, str]:
    """The field that picked the clock's target, with its value, for the alert's details."""
    objective = policy.objectives.get(name)
    by = objective.target_by if objective else None
    return {by: item.values[by]} if by is not None and by in item.values else {}
