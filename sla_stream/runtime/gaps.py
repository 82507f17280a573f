"""Reading input the consumer skipped.

Faust's consumer can drop messages it fetched while a rebalance or a table
recovery suspended the flow, and then counts the offsets it jumped over as
done. The worker notices, because the state records the next input offset it
has applied (see ``Pipeline.position``); this reads what lies in between,
straight from Kafka, so it is applied before the message that showed the gap.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from sla_stream.settings import Settings

# Records of the range that are not there (transaction markers, aborted or deleted
# records) leave the position past them; this many empty fetches in a row end the read.
_EMPTY_FETCHES = 3


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> list[ConsumerRecord]:
    """The committed records of ``topic``/``partition`` from offset ``start`` up to ``end``."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        empty = 0
        while await consumer.position(tp) < end and empty < _EMPTY_FETCHES:
            batch = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            empty = 0 if batch else empty + 1
            records += [record for record in batch if record.offset < end]
        return records
    finally:
        await consumer.stop()
