"""``sla-stream replay``: the engine over event files, with the event-time clock and no Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import orjson

from sla_stream.engine import tracked
from sla_stream.engine.alerts import Alert
from sla_stream.engine.clock import BREACH_FRACTION
from sla_stream.engine.closer import Closer
from sla_stream.engine.events import Event, Rejected, source_of
from sla_stream.engine.items import Item
from sla_stream.engine.model import SOURCES, Contract
from sla_stream.engine.processor import Engine
from sla_stream.engine.statements import Statement
from sla_stream.engine.tickets import Ticket
from sla_stream.wire.alerts import alert_record
from sla_stream.wire.deadletter import deadletter_record
from sla_stream.wire.events import decode_event


@dataclass(slots=True)
class ReplayStats:
    """What a replay did, for the summary line."""

    events: int = 0
    alerts: int = 0
    rejected: int = 0
    duplicates: int = 0
    last: int | None = None
    """The latest event time applied."""
    engines: list[Engine] = field(default_factory=list)
    """The engines as the replay left them (see :func:`still_open`)."""


@dataclass(frozen=True, slots=True)
class StillOpen:
    """Clocks a replay left open with a threshold still to come: what a later end would fire."""

    clocks: int
    """Ticket and item clocks open and not breached."""
    next_due: int
    """When the next alert of a running clock falls due (epoch ms): its next near-breach or
    breach threshold, never before the last event."""
    zone: ZoneInfo
    """The zone of the contract that clock belongs to."""


def still_open(stats: ReplayStats) -> StillOpen | None:
    """What the clocks of a replay that ended at its last event (no ``until``) still have due
    after it, if anything.

    Read from each clock's next threshold, as the engine schedules it, not from its deadline:
    on a business calendar a deadline used up at closing time is behind the clock until the
    breach is observed at the next opening.
    """
    if stats.last is None:
        return None
    clocks = 0
    nearest: tuple[int, ZoneInfo] | None = None
    for engine in stats.engines:
        stores: tuple[Mapping[tuple[str, str], Ticket | Item], ...] = (engine.tickets, engine.items)
        for store in stores:
            for (contract_id, _), thing in list(store.items()):
                contract = engine.contract_or_none(contract_id)
                if contract is None or thing.gone is not None:
                    continue  # a marker of one that left the state has no clocks
                version = tracked.measured(contract, thing)
                policy = version.tickets if isinstance(thing, Ticket) else version.items
                if policy is None:
                    continue
                for name, clock in thing.clocks.items():
                    objective = policy.objectives.get(name)
                    if objective is None or clock.stopped or BREACH_FRACTION in clock.fired:
                        continue
                    clocks += 1
                    due = clock.next_due(objective.calendar, policy.near_breach)
                    if due is not None and due[0] >= stats.last and (nearest is None or due[0] < nearest[0]):
                        nearest = due[0], contract.zone
    return None if nearest is None else StillOpen(clocks, *nearest)


def replay(
    contracts: Mapping[str, Contract],
    lines: Iterable[tuple[str, int, bytes]],
    until: int | None = None,
    allowed_lateness: int | None = None,
    rejected: BinaryIO | None = None,
    stats: ReplayStats | None = None,
    partitions: int | None = None,
    on_statement: Callable[[Statement], None] | None = None,
) -> Iterator[Alert]:
    """Alerts, in engine order, for ``(source, line number, bytes)`` event lines.

    At the end the clock moves to ``until`` (default: the last event's time).
    Rejected lines are written to ``rejected`` as dead-letter records.

    With ``partitions``, each of that many partitions of each input topic
    (tickets, calls, requests, items) has its own clock, as in the worker: events go to
    the partition Kafka's default partitioner gives their ``contract_id`` key.
    One clock for the whole file (the default) fires a threshold as soon as any
    contract's events pass it; per partition only that partition's events do.
    The two differ only when events arrive late: for tickets only in alerts that
    are later retracted; for calls and requests also in what a late event
    could still change before the clock moved on.

    ``on_statement`` gets each penalty statement as its period closes, and at the
    end those of every period closed by then.
    """
    engines: dict[tuple[str, int], Engine] = {}
    # Per partition: its engines by source, and the closer settling their periods.
    sources: dict[int, dict[str, Engine]] = {}
    closers: dict[int, Closer] = {}
    stats = stats if stats is not None else ReplayStats()
    last: int | None = None
    # Where events of a kind for a contract go, found once: the partitioner is pure Python.
    wheres: dict[tuple[type[Event], str, str], tuple[str, int]] = {}
    for source, number, line in lines:
        stats.events += 1
        try:
            event = decode_event(line, items=True)
            if partitions is None:
                where = _ONE_CLOCK
            else:
                key = (type(event), event.type, event.contract_id)
                found = wheres.get(key)
                if found is None:
                    if len(wheres) >= _WHERES_KEPT:
                        wheres.clear()
                    found = wheres[key] = (
                        source_of(event),
                        partition_for(event.contract_id.encode(), partitions),
                    )
                where = found
            engine = engines.get(where)
            if engine is None:
                engine = engines[where] = Engine(contracts, allowed_lateness=allowed_lateness)
                kinds = SOURCES if partitions is None else (where[0],)
                sources.setdefault(where[1], {}).update(dict.fromkeys(kinds, engine))
                if where[1] not in closers:
                    closers[where[1]] = Closer(contracts.get, allowed_lateness, {})
            applied = engine.apply(event)
        except Rejected as exc:
            stats.rejected += 1
            if rejected is not None:
                record = deadletter_record(exc.reason, exc.detail, source, None, number, None, line)
                rejected.write(orjson.dumps(record) + b"\n")
            continue
        if applied.outcome == "duplicate":
            stats.duplicates += 1
        if last is None or event.at > last:
            last = event.at
        if applied.alerts:
            stats.alerts += len(applied.alerts)
            yield from applied.alerts
        if on_statement is not None:
            for statement in closers[where[1]].close(sources[where[1]]):
                on_statement(statement)
    stats.last = last
    stats.engines = list(engines.values())
    end = until if until is not None else last
    if end is not None:
        for _, engine in sorted(engines.items()):
            final = engine.advance(end)
            stats.alerts += len(final)
            yield from final
        if on_statement is not None:
            for number, closer in sorted(closers.items()):
                for statement in closer.close(sources[number], final=end):
                    on_statement(statement)


_ONE_CLOCK = ("", 0)
_WHERES_KEPT = 65_536


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) gives ``key``."""
    # Here, not at the top: Kafka's client weighs about 4 MiB, and a replay without partitions
    # (the default) has no use for it.
    from aiokafka.partitioner import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def read_lines(paths: Iterable[Path]) -> Iterator[tuple[str, int, bytes]]:
    """Non-blank lines of each file in turn, with the file name and line number."""
    for path in paths:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if line:
                    yield str(path), number, line


def encode_replay_alert(alert: Alert) -> bytes:
    """An alert as replay prints it: no ``emitted_at``, so outputs compare byte for byte."""
    return orjson.dumps(alert_record(alert))
