"""Per-message work of the worker: decode, run the engine, encode what to send.

Nothing here knows Faust: the agent hands in each message and sends the
outputs it gets back, so the same code is testable without a broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial

import orjson

from sla_stream.engine.alerts import Alert
from sla_stream.engine.closer import Closer
from sla_stream.engine.events import Rejected, source_of
from sla_stream.engine.model import SOURCES, Contract
from sla_stream.engine.processor import Engine
from sla_stream.engine.sources import NEVER
from sla_stream.engine.time import seconds
from sla_stream.runtime.store import (
    Store,
    TableCentres,
    TableItems,
    TableLedgers,
    TableMarks,
    TableServices,
    TableTickets,
    load_clock,
    load_position,
    load_ticks,
    save_clock,
    save_position,
    save_ticks,
)
from sla_stream.settings import Settings
from sla_stream.wire.alerts import encode_alert
from sla_stream.wire.deadletter import deadletter_record, encode_deadletter
from sla_stream.wire.events import decode_event
from sla_stream.wire.statements import encode_statement


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce.

    ``partition`` is the partition of the input it came from: output topics have the
    same partition count, so a contract's alerts stay on its partition number, and
    with exactly-once they belong to the same transaction as the input offsets.
    """

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass(slots=True)
class Counts:
    """Running totals the metrics layer reads."""

    events: dict[tuple[str, str], int] = field(default_factory=dict)
    alerts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=dict)
    """Penalty statements sent, per contract."""

    def event(self, topic: str, outcome: str) -> None:
        self.events[topic, outcome] = self.events.get((topic, outcome), 0) + 1


log = logging.getLogger("sla_stream.worker")
#: One line per alert emitted, with contract, objective and kind as fields in JSON logs.
alert_log = logging.getLogger("sla_stream.alerts")
#: One line per penalty statement sent.
statement_log = logging.getLogger("sla_stream.statements")

# How long input a tick waits for may not arrive before the worker reads it from Kafka itself.
_STALL_MS = 2_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Pipeline:
    """Routes each consumed message through the engine of its partition."""

    def __init__(
        self,
        settings: Settings,
        contracts: Mapping[str, Contract],
        table: MutableMapping[bytes, bytes],
        clock: Callable[[], int] = wall_ms,
        on_alert: Callable[[Alert, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.contracts = contracts
        self.table = table
        self.clock = clock
        self.counts = Counts()
        self.on_alert = on_alert
        #: Called with (topic, occurred_at, now) for each event applied, for the lag histogram.
        self.on_event_time: Callable[[str, int, int], None] | None = None
        #: The high-water mark of an input partition, for the consumer-lag gauge (set by the app).
        self.highwater: Callable[[str, int], int | None] | None = None
        self.engines: dict[tuple[str, int], Engine] = {}
        self.stores: dict[tuple[str, int], Store] = {}
        self.ledgers: dict[tuple[str, int], TableLedgers] = {}
        #: Per partition: the closer settling its periods, with its engines by source.
        self.closers: dict[int, tuple[Closer, dict[str, Engine]]] = {}
        self.marks: dict[int, TableMarks] = {}
        self.saved_clocks: dict[tuple[str, int], int | None] = {}
        # Next input offset per (topic, partition): applied to the state before it, not from it.
        self.processed: dict[tuple[str, int], int] = {}
        # The same, as the table has it (written, or read back): what may be committed.
        self.written: dict[tuple[str, int], int] = {}
        self.progress: dict[tuple[str, int], int] = {}
        #: Next tick offset per (ticks topic, partition), once handled: how far their commits go,
        #: and, written with the input positions, which ticks a restarted worker has handled
        #: (a tick handled again would move the clock over things stored since, see ``on_tick``).
        self.ticks_handled: dict[tuple[str, int], int] = {}
        #: Per partition, the newest tick time handled: a tick below the handled offsets that is
        #: newer comes from a ticks topic made again, not from one processed again.
        self.ticks_newest: dict[int, int] = {}
        self.ticks_written: dict[tuple[str, int], tuple[int, int]] = {}
        self.moved: set[tuple[str, int]] = set()
        self.ticked: set[int] = set()
        #: Wall time a tick last came in, per partition: ticks go through Kafka, so a partition
        #: with none for a while is cut off from the broker (or its worker from the group).
        self.tick_seen: dict[int, int] = {}
        #: The kind of event each input topic carries (the part of ``type`` before the dot).
        self.sources = dict(zip(settings.source_topics, SOURCES, strict=True))
        #: Ids of contracts loaded before the ones in use (see ``use_contracts``).
        self._known: set[str] = set()

    def engine(self, topic: str, partition: int) -> Engine:
        """The engine of one input topic's partition.

        Each input topic has its own engine and clock: Kafka keeps the order within a
        partition but not across topics, so one clock over three topics would decide
        in whatever order the consumer happened to interleave them. One engine per
        topic partition sees its events in offset order, as replay does.
        """
        engine = self._made(topic, partition)
        engine.read_back()  # at once, unless ``preparing`` did it a slice at a time
        return engine

    def _made(self, topic: str, partition: int) -> Engine:
        """The engine of one input topic's partition, made if need be, its state perhaps not read
        back yet (see ``preparing``)."""
        engine = self.engines.get((topic, partition))
        if engine is None:
            clock = self.saved_clocks[topic, partition] = load_clock(self.table, topic, partition)
            store: Store
            lateness = self.settings.allowed_lateness_ms
            # Tickets and items stored past it are held until the messages before theirs are
            # processed again (``Ticket.below``).
            at = load_position(self.table, topic, partition) or 0
            ledgers = self.ledgers[topic, partition] = TableLedgers(self.table, topic, partition)
            made = partial(
                Engine, self.contract, clock=clock, allowed_lateness=lateness, ledgers=ledgers, position=at
            )
            if self.sources.get(topic) == "call":
                store = TableCentres(self.table, partition)
                engine = made(centres=store)
            elif self.sources.get(topic) == "request":
                store = TableServices(self.table, partition)
                engine = made(services=store)
            elif self.sources.get(topic) == "item":
                store = TableItems(self.table, partition, self.settings.ticket_cache)
                engine = made(items=store, lazy=True)
            else:
                store = TableTickets(self.table, partition, self.settings.ticket_cache)
                engine = made(store=store, lazy=True)
            # Under both guarantees: exactly-once never applies a message twice to state that has
            # it, but a worker switched to it after an at-least-once one stopped part-way starts
            # from a changelog whose ledgers ran ahead of the positions.
            engine.once = True
            self.engines[topic, partition] = engine
            self.stores[topic, partition] = store
        return engine

    def write(self, partition: int) -> None:
        """Put what the last messages of ``partition`` changed into the table.

        Called once their outputs are on their way (acknowledged, with
        at-least-once): the state that says an alert went out is never on Kafka
        before the alert.

        Order matters with at-least-once, where nothing ties the records together
        and a stop can cut them short. Every write of a partition goes to the same
        changelog partition through one producer, which keeps their order, so what
        reaches Kafka is always a prefix of it:

        - period marks, then ledgers: a ledger without a settled period is only right
          with the mark that says it was settled;
        - ledgers before the tickets, call centres and services whose changes they
          count: a ledger ahead of them says which call and request messages it has
          counted (see ``Books.counting``) and what it counted of each ticket and item
          (``Books.book``), so processing messages again, or a late event deciding a ticket
          again, does not count anything twice, while a ledger behind them would miss what
          a message already applied counted;
        - each ticket and item carries the position its write covers (``Ticket.below``): a
          message processed again below it was through that ticket already, also when the
          stop cut the write before the position;
        - how far the ticks are handled, after what they changed and before the input positions
          (a restarted worker skips the ticks handled before, see ``on_tick``, and holds back
          what was stored past the input positions);
        - input positions last: a position on Kafka means the state it covers is there
          too (a worker stopped while its producer buffer held tickets sent after the
          position left a state that counted those events as applied without them).
        """
        if partition in self.marks:
            self.marks[partition].write()
        for key, ledgers in self.ledgers.items():
            if key[1] == partition:
                ledgers.write()
        for (topic, number), engine in self.engines.items():
            if number != partition:
                continue
            self.stores[topic, number].write(self.processed.get((topic, number), -1))
            if engine.clock is not None and engine.clock != self.saved_clocks.get((topic, number)):
                save_clock(self.table, topic, number, engine.clock)
                self.saved_clocks[topic, number] = engine.clock
        ticks = (self.settings.topics.ticks, partition)
        handled = self.ticks_handled.get(ticks)
        if handled is not None:
            stored = (handled, self.ticks_newest.get(partition, -NEVER))
            if self.ticks_written.get(ticks) != stored:
                save_ticks(self.table, *ticks, *stored)
                self.ticks_written[ticks] = stored
        for topic, moved in [key for key in self.moved if key[1] == partition]:
            save_position(self.table, topic, moved, self.processed[topic, moved])
            self.written[topic, moved] = self.processed[topic, moved]
            self.moved.discard((topic, moved))
        for (_, number), engine in self.engines.items():
            if number == partition:
                engine.books.wrote()  # views of what it booked may go (see Books.book)

    def contract(self, contract_id: str) -> Contract | None:
        """The contract with this id as loaded now: engines and closers look contracts up here, so
        a reload reaches them without building them again."""
        return self.contracts.get(contract_id)

    def use_contracts(self, contracts: Mapping[str, Contract]) -> None:
        """``contracts`` from the next message on. Called between batches, when every partition's
        state is written.

        Contracts added or removed need nothing more: they are looked up when used. A contract
        that changed, or one added that has state here (read back while it was not loaded, or
        removed by an earlier reload), has stored tickets scheduled (or not) by what it was:
        engines are built again from the table, as a restarted worker's would be, so open
        tickets keep the targets they started with (see ``TicketSource.load``), and read their
        state back a slice at a time (``preparing``)."""
        before, self.contracts = self.contracts, contracts
        unmeasured = set().union(*(engine.unmeasured for engine in self.engines.values()))
        rebuild = any(
            contract != before.get(contract_id)
            and (contract_id in before or contract_id in self._known or contract_id in unmeasured)
            for contract_id, contract in contracts.items()
        )
        self._known.update(before)
        if not rebuild:
            return
        self.engines.clear()
        self.stores.clear()
        self.ledgers.clear()
        self.saved_clocks.clear()
        self.closers.clear()
        self.marks.clear()

    def preparing(self, partition: int, slice_seconds: float = 0.05) -> Iterator[None]:
        """Make ``partition``'s engines and read their state back, yielding every
        ``slice_seconds`` or so: the worker lets the event loop run at each yield, so reading a
        large state back (after a restart, a rebalance or a contract reload) never holds the loop
        long enough to miss heartbeats. (Used without it, an engine reads its state back at once.)"""
        started = time.monotonic()
        for topic in self.settings.source_topics:
            engine = self._made(topic, partition)  # each store looks its keys up in the table
            while True:
                if time.monotonic() - started >= slice_seconds:
                    yield
                    started = time.monotonic()
                if engine.read_back(256):
                    break
        self._closer(partition)

    def forget(self, partitions: set[int]) -> None:
        """Drop in-memory schedules of partitions this worker no longer owns."""
        for partition in partitions:
            for key in [k for k in self.engines if k[1] == partition]:
                del self.engines[key]
                self.stores.pop(key, None)
                self.ledgers.pop(key, None)
                self.saved_clocks.pop(key, None)
            self.closers.pop(partition, None)
            self.marks.pop(partition, None)
            self.ticked.discard(partition)
            self.tick_seen.pop(partition, None)
            self.ticks_handled.pop((self.settings.topics.ticks, partition), None)
            self.ticks_written.pop((self.settings.topics.ticks, partition), None)
            self.ticks_newest.pop(partition, None)
            for key in [k for k in self.processed if k[1] == partition]:
                del self.processed[key]
                self.written.pop(key, None)
                self.progress.pop(key, None)
                self.moved.discard(key)

    def seed(self, topic: str, partition: int, position: int) -> None:
        """Where ``topic``'s input starts for this partition's state, when the state does not say
        (no message of it applied yet): ``position``, the group's committed offset (or the
        earliest there is). Never the consumer's own position: that is how far it has fetched,
        ahead of what is applied."""
        if self.position(topic, partition) is None:
            self.processed[topic, partition] = position
            self.progress.setdefault((topic, partition), self.clock())

    def skip_to(self, topic: str, partition: int, offset: int) -> None:
        """Kafka holds nothing to apply before ``offset`` that is not applied (read from it up to
        there): only aborted records and transaction markers, or nothing at all."""
        if self.processed.get((topic, partition), -1) < offset:
            self.processed[topic, partition] = offset
            self.progress[topic, partition] = self.clock()
            self.moved.add((topic, partition))
            self._release(topic, partition)

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset of ``topic`` not yet applied to this partition's state, if known.

        Kept in the state itself, so it is exactly as far as the state: with
        exactly-once it commits in the same transaction as the state and the
        outputs. Input below it is a message applied before; input above it means
        messages in between were skipped.
        """
        known = self.processed.get((topic, partition))
        if known is None:
            known = load_position(self.table, topic, partition)
            if known is not None:
                self.processed[topic, partition] = self.written[topic, partition] = known
                self.progress.setdefault((topic, partition), self.clock())
        return known

    def applied(self) -> dict[tuple[str, int], int]:
        """Per input (topic, partition) this worker holds: the next offset not applied, as the
        state written to the table says (so on its way with the outputs), or read back from it;
        per tick partition, the next tick not handled.

        What the worker commits: everything below it is applied and its outputs sent, however
        the messages came (Faust's consumer, or the worker's own read of Kafka). Where the
        input starts for a state that has no position yet (``seed``) is not in it.
        """
        return {**self.written, **self.ticks_handled}

    def on_event(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Output]:
        """One message from an input topic: alerts to send, or a dead-letter record."""
        try:
            return self._on_event(topic, partition, offset, key, value)
        finally:
            self._release(topic, partition)

    def _release(self, topic: str, partition: int) -> None:
        """State stored up to the processed position takes deadlines again (``Engine.release``)."""
        engine = self.engines.get((topic, partition))
        if engine is not None:
            engine.release(self.processed[topic, partition])

    def _on_event(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Output]:
        self.processed[topic, partition] = offset + 1
        self.progress[topic, partition] = self.clock()
        self.moved.add((topic, partition))
        try:
            source = self.sources.get(topic)
            event = decode_event(value, self.settings.max_message_bytes, items=source == "item")
            if source is not None and source_of(event) != source:
                raise Rejected("invalid", f"a {event.type} event does not belong on {topic}")
            too_far = event.at - self.clock() - self.settings.max_future_ms
            if too_far > 0:
                raise Rejected(
                    "invalid",
                    f"occurred_at is {seconds(too_far + self.settings.max_future_ms)}s ahead of this"
                    f" worker's clock; at most {seconds(self.settings.max_future_ms)}s is accepted",
                )
            engine = self.engine(topic, partition)
            engine.source = (topic, offset)
            applied = engine.apply(event)
        except Rejected as rejected:
            return self._reject(rejected.reason, rejected.detail, topic, partition, offset, key, value)
        except Exception as exc:  # a defect must not stop the partition: keep the input, say why
            log.exception("event at %s[%d]@%d could not be processed", topic, partition, offset)
            return self._reject("error", f"{type(exc).__name__}: {exc}", topic, partition, offset, key, value)
        self.counts.event(topic, applied.outcome)
        if self.on_event_time is not None:
            self.on_event_time(topic, event.at, self.clock())
        return self._alerts(applied.alerts, partition) + self._settle(partition)

    def on_tick(self, partition: int, value: bytes | None, offset: int = -1) -> list[Output]:
        """A clock tick for one partition: thresholds that came due fire."""
        topic = self.settings.topics.ticks
        try:
            at, marks = _read_tick(value)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if offset >= 0:
                self._tick_handled(partition, offset, None)
            return self._reject("invalid", f"not a clock tick: {exc}", topic, partition, offset, None, value)
        if offset >= 0:
            done, newest = self._ticks_done(partition)
            if offset < done and at <= newest:
                # Handled before the state as stored (a restart commits ticks later than it
                # writes them): handled again it would move the clock over the tickets stored
                # since, as the first time it did not.
                return []
            if offset < done:  # a newer tick below: the ticks topic starts over
                log.warning(
                    "%s[%d]: a tick at offset %d after ticks up to %d (the topic was made again?);"
                    " taking ticks from there",
                    *(topic, partition, offset, done - 1),
                )
            self._tick_handled(partition, offset, at)
        self.tick_seen[partition] = self.clock()
        if at - self.clock() > self.settings.max_future_ms:
            # Workers make ticks from their wall clock; one from far ahead would fire every
            # deadline before it at once.
            return self._reject(
                "invalid",
                f"a clock tick {seconds(at - self.clock())}s ahead of this worker's clock",
                *(topic, partition, offset, None, value),
            )
        if not self._caught_up(partition, marks):
            return []
        try:
            alerts = []
            for source in self.settings.source_topics:
                alerts += self.engine(source, partition).advance(at)
            statements = self._settle(partition)
        except Exception as exc:
            log.exception("tick for partition %d could not be processed", partition)
            return self._reject(
                "error", f"{type(exc).__name__}: {exc}", topic, partition, offset, None, value
            )
        self.ticked.add(partition)
        return self._alerts(alerts, partition) + statements

    def _ticks_done(self, partition: int) -> tuple[int, int]:
        """The next tick offset of ``partition`` not handled and the newest tick time handled, as
        far as this worker or its state knows (``(0, NEVER)`` when neither does)."""
        key = (self.settings.topics.ticks, partition)
        done = self.ticks_handled.get(key)
        if done is None:
            stored = load_ticks(self.table, *key)
            if stored is None:
                return 0, NEVER
            done, self.ticks_newest[partition] = stored
            self.ticks_handled[key] = done
            self.ticks_written[key] = stored
        return done, self.ticks_newest.get(partition, -NEVER)

    def _tick_handled(self, partition: int, offset: int, at: int | None) -> None:
        self.ticks_handled[self.settings.topics.ticks, partition] = offset + 1
        if at is not None:
            self.ticks_newest[partition] = max(at, self.ticks_newest.get(partition, at))

    def next_due(self, partitions: set[int]) -> int | None:
        """The earliest event time a clock of ``partitions`` has something due at (``None``: none
        known), so ticks can be sent when it comes, not only every tick interval."""
        due = min((e.next_due() for (_, p), e in self.engines.items() if p in partitions), default=NEVER)
        return None if due == NEVER else due

    def stale(self, partitions: set[int]) -> set[int]:
        """Those of ``partitions`` whose clock has not run yet, or that have had no tick for a
        while (twenty tick intervals, at least 5 s): cut off from the broker. (A partition
        catching up on a backlog gets its ticks, and its clock moves once it has caught up.)"""
        limit = max(5_000, 20 * self.settings.tick_interval_ms)
        now = self.clock()
        return {
            p
            for p in partitions
            if p not in self.ticked or now - self.tick_seen.get(p, now - limit - 1) > limit
        }

    def _settle(self, partition: int) -> list[Output]:
        """Penalty statements of the periods the partition's clocks have closed."""
        try:
            return self._statements(partition)
        except Exception:  # the event or tick is applied; statements are settled on a later one
            log.exception("penalty statements of partition %d could not be settled", partition)
            return []

    def _closer(self, partition: int) -> tuple[Closer, dict[str, Engine]]:
        """The closer settling ``partition``'s periods, with its engines by source."""
        found = self.closers.get(partition)
        if found is None:
            marks = self.marks[partition] = TableMarks(self.table, partition)
            closer = Closer(self.contract, self.settings.allowed_lateness_ms, marks)
            engines = {self.sources[t]: self.engine(t, partition) for t in self.settings.source_topics}
            found = self.closers[partition] = (closer, engines)
        return found

    def _statements(self, partition: int) -> list[Output]:
        closer, engines = self._closer(partition)
        outputs = []
        for statement in closer.close(engines):
            contract_id = statement.contract.id
            self.counts.statements[contract_id] = self.counts.statements.get(contract_id, 0) + 1
            statement_log.info(
                "statement %s: credit %s%% = %s %s",
                *(statement.statement_id, statement.credit_percent, statement.credit, statement.currency),
                extra={"contract": contract_id, "statement_id": statement.statement_id},
            )
            value = encode_statement(statement)
            outputs.append(Output(self.settings.topics.penalties, contract_id.encode(), value, partition))
        return outputs

    def waiting_for(self, partition: int, value: bytes | None) -> list[tuple[str, int, int]]:
        """Input a tick for ``partition`` waits for that nothing has come from for a while:
        ``(topic, first, end)``, the offsets below the tick's mark not applied yet.

        The consumer may have dropped them (Faust does, around a rebalance or a table
        recovery, and nothing after them shows the gap), or there is nothing there to apply
        (aborted transactions, the marker that ends a transaction). The worker reads them
        from Kafka and applies what it finds (``skip_to`` past the rest); the clock never
        moves on without them.
        """
        try:
            marks = _read_tick(value)[1]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return []
        now = self.clock()
        waiting = []
        for topic in self.settings.source_topics:
            mark, done = marks.get(topic), self.position(topic, partition)
            if mark is None or done is None or done >= mark:
                continue
            if now - self.progress.get((topic, partition), now) >= _STALL_MS:
                waiting.append((topic, done, mark))
        return waiting

    def _caught_up(self, partition: int, marks: Mapping[str, int | None]) -> bool:
        """Events already in Kafka when the tick was made come first: the clock waits for all of
        them, on every input topic. A tick without a known mark for one never moves the clock."""
        for topic in self.settings.source_topics:
            mark = marks.get(topic)
            if mark is None or (self.position(topic, partition) or 0) < mark:
                return False
        return True

    def _reject(
        self,
        reason: str,
        detail: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> list[Output]:
        self.counts.event(topic, reason)
        record = deadletter_record(reason, detail, topic, partition, offset, key, value)
        return [Output(self.settings.topics.deadletter, key, encode_deadletter(record), partition)]

    def _alerts(self, alerts: list[Alert], partition: int) -> list[Output]:
        if not alerts:
            return []
        now = self.clock()
        topic = self.settings.topics.alerts
        outputs = []
        for alert in alerts:
            key = (alert.contract_id, alert.objective, alert.kind)
            self.counts.alerts[key] = self.counts.alerts.get(key, 0) + 1
            if self.on_alert is not None:
                self.on_alert(alert, now)
            alert_log.info(
                "%s %s %s %s %s",
                alert.kind,
                alert.contract_id,
                alert.objective,
                alert.subject_kind,
                alert.subject_id,
                extra={
                    "contract": alert.contract_id,
                    "objective": alert.objective,
                    "kind": alert.kind,
                    "subject": f"{alert.subject_kind}:{alert.subject_id}",
                    "alert_id": alert.alert_id,
                },
            )
            outputs.append(Output(topic, alert.contract_id.encode(), encode_alert(alert, now), partition))
        return outputs


def tick_record(at: int, highwaters: Mapping[str, int]) -> bytes:
    """A tick: move partition clocks to ``at`` once these input offsets are processed."""
    return orjson.dumps({"at": at, "hw": dict(highwaters)})


def _read_tick(value: bytes | None) -> tuple[int, dict[str, int | None]]:
    """A tick's time and its marks (``None``: a mark not known when the tick was made)."""
    tick = orjson.loads(value or b"")
    marks = {str(t): None if h is None else int(h) for t, h in dict(tick.get("hw") or {}).items()}
    return int(tick["at"]), marks
