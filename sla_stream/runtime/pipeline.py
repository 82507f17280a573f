"""Per-message work of the worker: decode, run the engine, encode what to send.

Nothing here knows Faust: the agent hands in each message and sends the
outputs it gets back, so the same code is testable without a broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field

import orjson

from sla_stream.engine.alerts import Alert
from sla_stream.engine.events import Rejected
from sla_stream.engine.model import Contract
from sla_stream.engine.processor import Engine
from sla_stream.engine.time import seconds
from sla_stream.runtime.store import TableTickets, load_clock, save_clock
from sla_stream.settings import Settings
from sla_stream.wire.alerts import encode_alert
from sla_stream.wire.deadletter import deadletter_record, encode_deadletter
from sla_stream.wire.events import decode_ticket


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

    def event(self, topic: str, outcome: str) -> None:
        self.events[topic, outcome] = self.events.get((topic, outcome), 0) + 1


log = logging.getLogger("sla_stream.worker")

# How long a gap in an input partition's offsets may hold its clock back with nothing arriving.
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
        self.engines: dict[int, Engine] = {}
        self.processed: dict[tuple[str, int], int] = {}
        self.progress: dict[tuple[str, int], int] = {}
        self.ticked: set[int] = set()

    def engine(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = Engine(
                self.contracts,
                TableTickets(self.table, partition),
                clock=load_clock(self.table, partition),
                allowed_lateness=self.settings.allowed_lateness_ms,
            )
            self.engines[partition] = engine
        return engine

    def forget(self, partitions: set[int]) -> None:
        """Drop in-memory schedules of partitions this worker no longer owns."""
        for partition in partitions:
            self.engines.pop(partition, None)
            self.ticked.discard(partition)
            for key in [k for k in self.processed if k[1] == partition]:
                del self.processed[key]
                self.progress.pop(key, None)

    def seed(self, topic: str, partition: int, position: int) -> None:
        """Input before ``position`` was processed by this partition's earlier owner."""
        if (topic, partition) not in self.processed:
            self.processed[topic, partition] = position
            self.progress[topic, partition] = self.clock()

    def on_event(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[Output]:
        """One message from an input topic: alerts to send, or a dead-letter record."""
        self.processed[topic, partition] = offset + 1
        self.progress[topic, partition] = self.clock()
        try:
            event = decode_ticket(value)
            too_far = event.at - self.clock() - self.settings.max_future_ms
            if too_far > 0:
                raise Rejected(
                    "invalid",
                    f"occurred_at is {seconds(too_far + self.settings.max_future_ms)}s ahead of this"
                    f" worker's clock; at most {seconds(self.settings.max_future_ms)}s is accepted",
                )
            engine = self.engine(partition)
            before = engine.clock
            applied = engine.apply(event)
        except Rejected as rejected:
            return self._reject(rejected.reason, rejected.detail, topic, partition, offset, key, value)
        except Exception as exc:  # a defect must not stop the partition: keep the input, say why
            log.exception("event at %s[%d]@%d could not be processed", topic, partition, offset)
            return self._reject("error", f"{type(exc).__name__}: {exc}", topic, partition, offset, key, value)
        self.counts.event(topic, applied.outcome)
        self._save_clock(partition, before, engine.clock)
        return self._alerts(applied.alerts, partition)

    def on_tick(self, partition: int, value: bytes | None, offset: int = -1) -> list[Output]:
        """A clock tick for one partition: thresholds that came due fire."""
        topic = self.settings.topics.ticks
        try:
            tick = orjson.loads(value or b"")
            at = int(tick["at"])
            marks = {str(t): int(h or 0) for t, h in dict(tick.get("hw") or {}).items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return self._reject("invalid", f"not a clock tick: {exc}", topic, partition, offset, None, value)
        if not self._caught_up(partition, marks):
            return []
        try:
            engine = self.engine(partition)
            before = engine.clock
            alerts = engine.advance(at)
        except Exception as exc:
            log.exception("tick for partition %d could not be processed", partition)
            return self._reject(
                "error", f"{type(exc).__name__}: {exc}", topic, partition, offset, None, value
            )
        self.ticked.add(partition)
        self._save_clock(partition, before, engine.clock)
        return self._alerts(alerts, partition)

    def _caught_up(self, partition: int, marks: Mapping[str, int]) -> bool:
        """Events already in Kafka when the tick was made come first: the clock waits for them.

        One offset of slack allows for the commit marker that ends a producer's
        transaction; any other gap (aborted transactions) is waited out for a
        while, as long as nothing arrives from that partition.
        """
        now = self.clock()
        for topic, highwater in marks.items():
            done = self.processed.get((topic, partition), 0)
            if done < highwater - 1 and now - self.progress.get((topic, partition), now) < _STALL_MS:
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

    def _save_clock(self, partition: int, before: int | None, after: int | None) -> None:
        if after is not None and after != before:
            save_clock(self.table, partition, after)

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
            outputs.append(Output(topic, alert.contract_id.encode(), encode_alert(alert, now), partition))
        return outputs


def tick_record(at: int, highwaters: Mapping[str, int]) -> bytes:
    """A tick: move partition clocks to ``at`` once these input offsets are processed."""
    return orjson.dumps({"at": at, "hw": dict(highwaters)})
