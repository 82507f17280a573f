"""The Faust app: topics, the state table, the agent, and the per-partition clock ticks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import faust
import faust.streams as faust_streams
import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from faust.types import TP
from mode.types.signals import BaseSignalT
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sla_stream.engine.model import Contract
from sla_stream.kafka_client import client_kwargs, ssl_context
from sla_stream.metrics.collector import registry_for
from sla_stream.runtime.contract_topic import ContractTopicFollower
from sla_stream.runtime.gaps import GapReader
from sla_stream.runtime.pipeline import Output, Pipeline, tick_record, wall_ms
from sla_stream.runtime.reload import ContractSource, ContractWatcher
from sla_stream.runtime.transport import App, Fetch
from sla_stream.settings import Settings

log = logging.getLogger("sla_stream.worker")

# At most this many messages a tick waits for are read from Kafka at once (see _read_waiting).
_READ_AT_ONCE = 1_000
# Ticks sent sooner than the tick interval, for something due, are at least this far apart.
_TICK_GAP_MS = 50

_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def create_app(settings: Settings, contracts: Mapping[str, Contract], loaded: str | None = None) -> App:
    """A Faust app running the engine for ``contracts`` with ``settings``; ``loaded``: the
    fingerprint of the contract files taken before ``contracts`` were read from them."""
    app = App(
        settings.app_id,
        client_kwargs=client_kwargs(settings),
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=settings.data_dir,
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # The agent commits itself, between messages (see process below); Faust's own
        # periodic commit could split one message's state and alerts over two transactions.
        broker_commit_interval=86_400.0,
        broker_commit_every=1_000_000_000,
        # A fetch is handled whole (transport._Consumer): this many messages at most.
        broker_max_poll_records=settings.batch_size,
        # A worker that dies without leaving its group holds its partitions this long.
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_ms / 3000),
        # Static membership: a restarted worker with the same id takes its partitions straight back.
        consumer_group_instance_id=settings.group_instance_id or None,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        loghandlers=[],
    )
    topics = settings.topics
    source = app.topic(*settings.source_topics, topics.ticks, partitions=settings.partitions, **_RAW)
    table = app.Table(
        "state",
        partitions=settings.partitions,
        default=None,
        key_type=bytes,
        value_type=bytes,
        # Compacted (Faust's default for a changelog), in segments short enough to be compacted
        # while the worker runs: a restart reads back the live state, not its history.
        extra_topic_configs={"segment.ms": str(settings.changelog_segment_ms)},
    )
    pipeline = Pipeline(settings, contracts, table)
    contract_source = ContractSource(settings.contracts_dir, contracts, loaded)
    pipeline.highwater = lambda topic, partition: app.consumer.highwater(TP(topic, partition))
    registry = registry_for(pipeline, contract_source)

    commit_every = settings.commit_interval_ms / 1000
    gaps = GapReader(settings)
    deliveries = app.deliveries
    # With at-least-once nothing ties an alert to the state that records it: the alert
    # must be on Kafka first. With exactly-once both are in one transaction.
    exactly_once = settings.processing_guarantee == "exactly_once"
    alerts_first = not exactly_once
    source_topic = settings.source_topics[0]  # the table's partitions are the input's

    async def apply(
        tp: TP, records: Sequence[ConsumerRecord[bytes, bytes]], sent: list[Awaitable[Any]]
    ) -> None:
        """One partition's records of a fetch: the engine's outputs handed to the producer (their
        deliveries added to ``sent``), state left for ``write``."""
        topic, partition = tp.topic, tp.partition
        await _seed_positions(app, pipeline, gaps, settings, partition)
        try:
            for _ in pipeline.preparing(partition):  # a large state is read back a slice at a time
                await asyncio.sleep(0)
        except Exception:  # a defect must not stop the worker: each message is dead-lettered why
            log.exception("the state of partition %d could not be read back", partition)
        sends: list[Output] = []
        if topic == topics.ticks:
            for record in records:
                sends += await _read_waiting(pipeline, gaps, partition, record.value)
                sends += pipeline.on_tick(partition, record.value, record.offset)
        else:
            # Nothing of what the state has already (a redelivery after a restart or a
            # rebalance: its outputs were sent); what the consumer skipped before the first.
            for offset, key, value in await _to_apply(pipeline, gaps, topic, partition, records):
                sends += pipeline.on_event(topic, partition, offset, key, value)
        transaction = _transaction(app, topic, partition) if exactly_once else None
        for out in sends:
            delivery = await _send(app, out, transaction)
            deliveries.add(delivery)
            sent.append(delivery)

    async def handle(fetch: Fetch) -> None:
        """A fetch taken whole: every output sent, then each partition's state written once (a
        ticket changed by ten messages is one changelog record, not ten).

        Partitions are independent (an engine per input topic partition), so the order that
        matters is within a partition, and it is kept. Input before ticks: a tick applies once
        the input before its marks is, so one fetched with that input moves the clock at once.
        """
        reloaded = contract_source.take()
        if reloaded is not None:
            pipeline.use_contracts(reloaded)  # every partition's state is written by now
        async with deliveries.handling:
            if not app.flow_control.is_active() or fetch.generation != app.consumer_generation_id:
                # Fetched before a rebalance (Faust's streams drop their messages too): the
                # partitions' new owner reads them from the committed offsets.
                return
            ordered = sorted(fetch.records.items(), key=lambda item: item[0].topic == topics.ticks)
            sent: list[Awaitable[Any]] = []
            try:
                for tp, records in ordered:
                    with _in_partition(source_topic, tp.partition):
                        await apply(tp, records, sent)
                    await asyncio.sleep(0)  # a large fetch lets the web server and the ticks in
                if alerts_first and sent:
                    # This fetch's outputs on Kafka before the state that records them. Not the
                    # earlier fetches' changelog writes, still draining from Faust's producer
                    # buffer: the commit waits for those (transport._Consumer.force_commit).
                    await asyncio.gather(*sent)
                for partition in {tp.partition for tp in fetch.records}:
                    with _in_partition(source_topic, partition):
                        pipeline.write(partition)
            except BaseException as exc:
                # Nothing of a fetch that failed part-way may be committed, so every later commit
                # fails. Nor may the worker carry on (Faust's supervisor would restart the agent
                # on what follows): the process stops, with a failure status, and its local state
                # counts as unclean.
                deliveries.fail(exc)
                if not isinstance(exc, asyncio.CancelledError):
                    log.critical("a fetch of messages failed part-way; stopping: %r", exc)
                    app.failed = exc
                    app.add_future(app.crash(exc))
                raise

    @app.agent(source, name="process")
    async def process(stream: faust.StreamT[bytes]) -> None:
        # The agent's topics make Faust subscribe to them, assign them with the table's
        # partitions and recover the table for them; their records come in whole fetches
        # (transport._Consumer), not through the stream.
        committed = -commit_every  # the first fetch is committed at once, then every interval
        while True:
            fetch = await app.fetches.get()
            # Shielded: a worker told to stop finishes the fetch it is on, so a commit never
            # takes part of one (its alerts without its state).
            await asyncio.shield(handle(fetch))
            if time.monotonic() - committed >= commit_every:
                # Waits for every send to be acknowledged (transport.py), then commits the
                # offsets together with them: one transaction under exactly-once.
                try:
                    await app.consumer.commit()
                except Exception as exc:
                    # Faust's supervisor would restart the agent over uncommittable work (a
                    # fenced producer, say) until the broker aborts it; stop as a failed fetch does.
                    log.critical("committing failed; stopping: %r", exc)
                    app.failed = exc
                    app.add_future(app.crash(exc))
                    raise
                committed = time.monotonic()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.ticks}
        stale = pipeline.stale(owned)
        ready = bool(owned) and not stale
        body = {
            "ready": ready,
            "partitions": sorted(owned),
            "clocks_running": sorted(owned - stale),
        }
        return web.json(body, status=200 if ready else 503)

    async def on_revoked(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        pipeline.forget({tp.partition for tp in revoked if tp.topic == topics.ticks})

    app.on_partitions_revoked.connect(on_revoked)

    app.add_dependency(TickSender(app, settings, pipeline))
    app.add_dependency(gaps)
    watcher = ContractWatcher(contract_source, settings.contracts_poll_ms / 1000)
    app.add_dependency(watcher)
    if settings.contracts_from == "topic":
        app.add_dependency(ContractTopicFollower(settings, Path(settings.contracts_dir), watcher.ask))
    app.pipeline = pipeline  # type: ignore[attr-defined]
    app.bulk_topics = frozenset([*settings.source_topics, topics.ticks])
    # aiokafka's kind of key: Faust hands the offsets to aiokafka's commit as they are.
    app.applied = lambda: {
        TopicPartition(topic, number): offset for (topic, number), offset in pipeline.applied().items()
    }
    return app


def _credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of the security settings (it hands them to its own Kafka clients)."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # load_settings requires one with SASL
        # With a TLS context Faust's aiokafka driver makes this SASL_SSL, without one SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.value,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


class _Event:
    """What Faust's tables and stores read of the event being handled: its topic and partition."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = TP(topic, partition)


@contextlib.contextmanager
def _in_partition(topic: str, partition: int) -> Iterator[None]:
    """Table reads and writes from here on are ``topic``'s ``partition``'s: Faust's tables and
    stores take the partition from the event being handled (a context variable; RocksDB keeps
    a database per partition), and the worker handles whole fetches, not one event."""
    event = cast(faust.EventT[bytes], _Event(topic, partition))
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


async def _to_apply(
    pipeline: Pipeline,
    gaps: GapReader,
    topic: str,
    partition: int,
    records: Sequence[ConsumerRecord[bytes, bytes]],
) -> list[tuple[int, bytes | None, bytes | None]]:
    """The input records of one fetch to apply: none the state has already; any the consumer
    skipped before the first. (A fetch is one stretch of its partition: what it lacks between
    its records is transaction markers and aborted records, nothing to apply.)"""
    expected = pipeline.position(topic, partition)
    fresh = [(r.offset, r.key, r.value) for r in records if expected is None or r.offset >= expected]
    if not fresh or expected is None or fresh[0][0] == expected:
        return fresh
    offset = fresh[0][0]
    skipped, reached = await gaps.read(topic, partition, expected, offset)
    if reached < offset:
        # Applying the records without them would lose them for good: the fetch fails, and
        # the restarted worker reads them again.
        raise RuntimeError(f"{topic}[{partition}]: offsets {reached} to {offset - 1} could not be read")
    if skipped:
        log.warning(
            "%s[%d]: the consumer skipped offsets %d to %d; applying the %d messages there",
            *(topic, partition, expected, offset - 1, len(skipped)),
        )
    return [(r.offset, r.key, r.value) for r in skipped] + fresh


def _transaction(app: faust.App, topic: str, partition: int) -> str:
    """The transactional id Faust commits ``topic``'s ``partition`` under."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(topic)}-{partition}"


async def _send(app: faust.App, out: Output, transaction: str | None) -> Awaitable[Any]:
    """Hands ``out`` to the producer, inside ``transaction`` if given; the result is its delivery.

    Straight to the producer: Faust's own topic send picks the transaction from the
    consumer's metadata, which knows only subscribed topics, so records for an output
    topic would silently go out with no transaction at all.
    """
    return await app.producer.send(
        out.topic, out.key, out.value, out.partition, None, None, transactional_id=transaction
    )


async def _seed_positions(
    app: faust.App, pipeline: Pipeline, gaps: GapReader, settings: Settings, partition: int
) -> None:
    """Before anything of ``partition`` is applied: where its input starts, for the input topics
    the state has no position of. Input the group committed was handled by earlier owners."""
    missing = [topic for topic in settings.source_topics if pipeline.position(topic, partition) is None]
    if missing:
        starts = await gaps.starts(app.conf.id, [(topic, partition) for topic in missing])
        for topic in missing:
            pipeline.seed(topic, partition, starts[topic, partition])


async def _read_waiting(
    pipeline: Pipeline, gaps: GapReader, partition: int, tick: bytes | None
) -> list[Output]:
    """Input the tick waits for that the consumer has not brought for a while, read from Kafka
    and applied (a batch's worth at a time), so the tick can move the clock on: the outputs.
    The commits follow the state's positions (``Pipeline.applied``), so they move on too."""
    sends = []
    for topic, first, end in pipeline.waiting_for(partition, tick):
        records, reached = await gaps.read(topic, partition, first, end, limit=_READ_AT_ONCE)
        if records:
            log.warning(
                "%s[%d]: offsets %d to %d did not arrive; applying the %d messages there",
                *(topic, partition, first, reached - 1, len(records)),
            )
        for record in records:
            sends += pipeline.on_event(topic, partition, record.offset, record.key, record.value)
        pipeline.skip_to(topic, partition, reached)
    return sends


class TickSender(mode.Service):
    """Sends a tick to every tick partition this worker owns, every tick interval, and sooner
    when one of their clocks has something due sooner (see ``until_next``).

    A tick carries the wall-clock time (less the grace) and the input topics'
    end offsets, asked of the broker after that time was taken, so a partition's
    clock only moves on by wall time once the events that were in Kafka for it
    by then are processed. Never a cached mark: the consumer's cache is empty
    after a restart and stale while a backlog drains or partitions are paused.
    Under exactly-once the end is the last stable offset, as far as the
    worker's read-committed consumer reads.
    """

    def __init__(self, app: faust.App, settings: Settings, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None

    @mode.Service.task
    async def _ticking(self) -> None:
        while not self.should_stop:
            await self.sleep(self.until_next())
            try:
                await self.tick()
            except Exception as exc:  # the broker may be away; the next tick tries again
                if not self.should_stop:
                    log.warning("tick failed: %s", exc)

    def until_next(self) -> float:
        """Seconds to the next tick: the tick interval, or less when a clock of this worker has
        something due sooner (a tick then comes as soon as its time, less the grace, is past it,
        so a deadline is not also late by part of an interval); never less than ``_TICK_GAP``."""
        settings = self.settings
        interval = settings.tick_interval_ms
        owned = self.owned()
        due = self.pipeline.next_due(set(owned)) if owned else None
        if due is not None:
            # A tick at ``due`` leaves it due (what is due at the clock's instant waits for it).
            interval = min(interval, max(_TICK_GAP_MS, due + 1 + settings.tick_grace_ms - wall_ms()))
        return interval / 1000

    def owned(self) -> list[int]:
        """The tick partitions this worker owns."""
        ticks = self.settings.topics.ticks
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == ticks)

    async def tick(self) -> None:
        settings = self.settings
        owned = self.owned()
        if not owned:
            return
        if self.producer is None:
            # A plain producer: ticks are input, never part of a worker transaction.
            producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=0)
            await producer.start()
            self.producer = producer
        if self.consumer is None:
            exactly_once = settings.processing_guarantee == "exactly_once"
            consumer = AIOKafkaConsumer(
                **client_kwargs(settings),
                isolation_level="read_committed" if exactly_once else "read_uncommitted",
                enable_auto_commit=False,
            )
            await consumer.start()
            self.consumer = consumer
        # The time first: whatever reached Kafka before it is below the marks.
        at = wall_ms() - settings.tick_grace_ms
        sources = [TopicPartition(topic, p) for topic in settings.source_topics for p in owned]
        ends: Mapping[TopicPartition, int] = await self.consumer.end_offsets(sources)
        for partition in owned:
            marks = {tp.topic: ends[tp] for tp in sources if tp.partition == partition}
            await self.producer.send(settings.topics.ticks, tick_record(at, marks), partition=partition)

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.consumer is not None:
            await self.consumer.stop()
