"""Faust's aiokafka transport, handing whole fetches to the worker's agent (see ``_Consumer``).

It also waits only briefly for fetches, so clock ticks are not held back; commits once every
send is acknowledged (see :mod:`.delivery`), each input partition as far as the worker's
state has applied it; and asks the broker for high-water marks instead of trusting a cache
that is empty after a restart and stale after that (see ``_highwaters``).

Faust fixes the consumer's ``fetch_max_wait_ms`` at 1500. aiokafka keeps one
fetch in flight per broker, and leaves partitions with buffered records out
of it, so a tick that lands while an idle partition's fetch is waiting sits
there for up to 1.5 s: breaches would be late by that much. A wait of a
tenth of a second keeps them within the "about a second" that
docs/reference/alerts.md promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT
from faust.types.transports import TPorTopicSet
from mode import Service, ServiceT

from sla_stream.runtime.delivery import Deliveries, Table

FETCH_MAX_WAIT_MS = 100


@dataclass(frozen=True, slots=True)
class Fetch:
    """The records of one fetch from the partitions the agent handles, in offset order per
    partition, and the consumer generation they were fetched in."""

    records: Mapping[TP, Sequence[ConsumerRecord[bytes, bytes]]]
    generation: int


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # Table recovery reads each changelog partition up to these. Under transactions Faust
        # reads aiokafka's cached last stable offset instead: None until a fetch of that
        # partition has come back (Faust then took the changelog for empty and skipped the
        # whole recovery of a worker restarted soon enough), and as old as the last fetch
        # after that (a changelog partition is paused between recoveries while this worker
        # writes to it). So the broker is always asked, by a consumer of its own (the group's
        # consumer can hang on it mid-rebalance), as far as the worker's own consumer reads.
        app = cast(App, self.app)
        consumer = AIOKafkaConsumer(
            **app.client_kwargs,
            isolation_level="read_committed" if app.in_transaction else "read_uncommitted",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            asked: Mapping[TP, int] = await asyncio.wait_for(consumer.end_offsets(list(partitions)), 60)
        finally:
            await consumer.stop()
        return asked


class _Consumer(driver.Consumer):
    """Faust's consumer, handing whole fetches on, and committing input as far as it is applied.

    Faust sends each fetched message on by itself, through the consumer's callback, the
    topic's channel and the agent's stream: about 60 microseconds a message even tuned, more
    than the engine takes. The records of the topics in ``App.bulk_topics`` (the input and the
    ticks) go to ``App.fetches`` instead, one :class:`Fetch` per fetch, which the agent takes
    whole; everything else (changelogs being recovered) still goes through the callback.

    Faust commits a partition up to the first offset it never saw acknowledged. Messages it
    drops unacknowledged (fetched while a table recovery holds the flow, say), or input the
    worker read from Kafka itself, leave a hole there, and the partition's commits would stay
    behind it for good (seen after a kill -9 during a backlog: a worker applying everything
    while its committed offsets stood still). The state knows how far it has applied each
    input partition (``App.applied``); the commit takes that where it is further.
    """

    def _filter_tps_with_pending_acks(self, topics: TPorTopicSet | None = None) -> Iterator[TP]:
        applied = cast(App, self.app).applied()
        pending = set(super()._filter_tps_with_pending_acks(topics))
        pending.update(tp for tp in applied if topics is None or tp in topics or tp.topic in topics)
        return iter(pending)

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        tps = list(tps)
        offsets: dict[TP, int] = super()._filter_committable_offsets(tps)
        applied = cast(App, self.app).applied()
        for tp in tps:
            offset = applied.get(tp)
            if offset is not None and offset > offsets.get(tp, -1) and self._should_commit(tp, offset):
                offsets[tp] = offset
        return offsets

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        # Faust's loop (Consumer._drain_messages) without the message at a time: the same fetch,
        # flow and stop checks. Nothing is acknowledged: the commits follow ``App.applied``.
        app = cast(App, self.app)
        bulk, put = app.bulk_topics, app.fetches.put
        stopped, fetcher_stopped = cast(Service, self)._stopped.is_set, cast(Service, fetcher)._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(timeout=1.0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # As Faust does: the flow was stopped (a rebalance) while this was fetched.
                    await self.perform_seek()
                    continue
                generation = app.consumer_generation_id
                fetched: dict[TP, Sequence[ConsumerRecord[bytes, bytes]]] = {}
                for tp, of_tp in records.items():
                    if not of_tp or not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    if tp.topic in bulk:
                        fetched[tp] = of_tp
                    else:
                        for record in of_tp:
                            message = self._to_message(tp, record)
                            await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    self._read_offset[tp] = of_tp[-1].offset
                if fetched:
                    await put(Fetch(fetched, generation))
                else:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not app.should_stop:
                raise
        except self.consumer_stopped_errors:
            if not app.should_stop:
                raise

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def force_commit(
        self, topics: TPorTopicSet | None = None, start_new_transaction: bool = True
    ) -> bool:
        # Every commit, ours or Faust's own (on revocation, on stop), comes through here:
        # between messages, once everything sent is acknowledged.
        deliveries: Deliveries = self.app.deliveries  # type: ignore[attr-defined]
        async with deliveries.handling:
            await deliveries.acknowledged()
            committed: bool = await super().force_commit(topics, start_new_transaction=start_new_transaction)
            return committed


class _TransactionManager(TransactionManager):
    """Faust's, stopping the transactional producer of every partition this worker no longer
    owns actively.

    Faust stops only those of revoked partitions it does not keep as standbys. A producer left
    running is fenced by the new owner's; when the partition comes back, Faust begins a
    transaction on that same producer again (it warns "IN_TRANSACTION -> IN_TRANSACTION") and
    the worker's first send there fails with ProducerFenced, stopping it (seen with a second
    worker joining and then leaving during a drain).
    """

    _owned: frozenset[str] = frozenset()

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]) -> None:
        owned = frozenset(self._tps_to_transactional_ids(assigned))
        for transactional_id in sorted(self._owned - owned):
            await self.producer.stop_transaction(transactional_id)
        self._owned = owned
        await super().on_rebalance(assigned, revoked, newly_assigned)


class Transport(driver.Transport):
    Consumer = _Consumer
    TransactionManager = _TransactionManager


class App(faust.App):
    """A Faust app whose consumer uses :class:`Transport` and whose tables track their writes."""

    def __init__(self, *args: Any, client_kwargs: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, Table=Table, **kwargs)
        self.deliveries = Deliveries()
        #: Connection and security arguments for aiokafka clients of the app's own making.
        self.client_kwargs = dict(client_kwargs)
        #: Why the agent stopped the worker, if it did (its local state is then unclean).
        self.failed: BaseException | None = None
        #: Per input partition, the next offset its written state has not applied (set by
        #: ``create_app``): what the consumer commits.
        self.applied: Callable[[], Mapping[TP, int]] = dict
        #: Topics whose fetched records go to ``fetches`` whole (set by ``create_app``).
        self.bulk_topics: frozenset[str] = frozenset()
        #: Fetches of ``bulk_topics`` for the agent to take: one handled, one waiting at most,
        #: so the consumer fetches no further ahead than that.
        self.fetches: asyncio.Queue[Fetch] = asyncio.Queue(maxsize=1)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
