"""Reading input the consumer skipped.

Faust's consumer can drop messages it fetched while a rebalance or a table
recovery suspended the flow, and then counts the offsets it jumped over as
done. The worker notices, because the state records the next input offset it
has applied (see ``Pipeline.position``); this reads what lies in between,
straight from Kafka, so it is applied before the message that showed the gap.

Offsets also jump over a producer's transaction markers and aborted records:
then the read finds nothing, at the cost of one fetch.
"""

from __future__ import annotations

from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from sla_stream.kafka_client import client_kwargs
from sla_stream.settings import Settings

# Records of the range that are not there (transaction markers, aborted or deleted
# records) leave the position past them; this many empty fetches in a row end the read.
_EMPTY_FETCHES = 3


class GapReader(mode.Service):
    """One consumer, outside the group, that reads offset ranges on request."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[ConsumerRecord]:
        """The committed records of ``topic``/``partition`` from offset ``start`` up to ``end``."""
        if self.consumer is None:
            self.consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings),
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
            )
            await self.consumer.start()
        consumer = self.consumer
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        empty = 0
        while await consumer.position(tp) < end and empty < _EMPTY_FETCHES:
            batch = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            empty = 0 if batch else empty + 1
            records += [record for record in batch if record.offset < end]
        return records

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
