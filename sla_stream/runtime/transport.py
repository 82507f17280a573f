"""Faust's aiokafka transport with a short fetch wait, so clock ticks are not held back,
and commits that wait for every send to be acknowledged (see :mod:`.delivery`).

It also asks the broker for high-water marks instead of trusting a cache that is empty
after a restart and stale after that (see ``_highwaters``), and commits each input
partition as far as the worker's state has applied it (see ``_Consumer``).

Faust fixes the consumer's ``fetch_max_wait_ms`` at 1500. aiokafka keeps one
fetch in flight per broker, and leaves partitions with buffered records out
of it, so a tick that lands while an idle partition's fetch is waiting sits
there for up to 1.5 s: breaches would be late by that much. A wait of a
tenth of a second keeps them within the "about a second" that
docs/reference/alerts.md promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT
from faust.types.transports import TPorTopicSet

from sla_stream.runtime.delivery import Deliveries, Table

FETCH_MAX_WAIT_MS = 100


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
    """Faust's consumer, committing input as far as it is applied.

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


class Transport(driver.Transport):
    Consumer = _Consumer


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

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
