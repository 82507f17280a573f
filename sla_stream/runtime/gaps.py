"""Reading input straight from Kafka: offset ranges the consumer skipped or has not brought,
and where a partition's input starts for the group.

Faust's consumer can drop messages it fetched while a rebalance or a table
recovery suspended the flow, and then counts the offsets it jumped over as
done. The worker notices, because the state records the next input offset it
has applied (see ``Pipeline.position``); this reads what lies in between,
straight from Kafka, so it is applied before the message that showed the gap.
A clock tick that waits for input nothing has come from for a while has it
read the same way (see ``Pipeline.waiting_for``).

Offsets also jump over a producer's transaction markers and aborted records:
then the read finds nothing there, and says it has read up to the end.
"""

from __future__ import annotations

import time
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sla_stream.kafka_client import client_kwargs
from sla_stream.settings import Settings

# A read that gets no further for this long gives up, short of the end it was asked for.
_READ_TIMEOUT_S = 30.0


class GapReader(mode.Service):
    """One consumer, outside the group, that reads offset ranges on request; it reads what the
    worker's own consumer would (committed records only, under exactly-once)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.admin: AIOKafkaAdminClient | None = None

    async def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            exactly_once = self.settings.processing_guarantee == "exactly_once"
            consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings),
                isolation_level="read_committed" if exactly_once else "read_uncommitted",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
            )
            await consumer.start()
            self.consumer = consumer
        return self.consumer

    async def read(
        self, topic: str, partition: int, start: int, end: int, limit: int | None = None
    ) -> tuple[list[ConsumerRecord], int]:
        """The records of ``topic``/``partition`` from offset ``start`` up to ``end`` (at most
        ``limit`` of them), and the offset read up to: there is no record before it that is
        not in the list. That is ``end`` unless ``limit`` cut the read short, or Kafka gave
        nothing more for a while."""
        consumer = await self._consumer()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        reached, moved = start, time.monotonic()
        while reached < end and (limit is None or len(records) < limit):
            if time.monotonic() - moved > _READ_TIMEOUT_S:
                break
            wanted = None if limit is None else limit - len(records)
            batch = (await consumer.getmany(tp, timeout_ms=500, max_records=wanted)).get(tp, [])
            records += [record for record in batch if record.offset < end]
            position = await consumer.position(tp)
            if position > reached:
                reached, moved = position, time.monotonic()
        return records, min(reached, end)

    async def starts(self, group: str, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Where ``group``'s input starts on each of ``partitions``: the offset it has committed,
        else the earliest offset Kafka still has."""
        if self.admin is None:
            admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
            await admin.start()
            self.admin = admin
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        found = {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        rest = [tp for tp in tps if (tp.topic, tp.partition) not in found]
        if rest:
            earliest = await (await self._consumer()).beginning_offsets(rest)
            found.update({(tp.topic, tp.partition): offset for tp, offset in earliest.items()})
        return found

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.admin is not None:
            await self.admin.close()
