"""Integration test: a real local Kafka broker survives a restart with its data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sla_stream.local_kafka import LocalBroker, create_topics, free_port

TOPIC = "local-broker-smoke"


async def _produce(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"hello", key=b"k1", partition=2)
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, group: str) -> tuple[int, bytes | None, bytes | None]:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=60)
        return msg.partition, msg.key, msg.value
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_broker_roundtrip_survives_restart(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    try:
        broker.start()
        assert broker.is_running()
        asyncio.run(create_topics(broker.bootstrap, {TOPIC: 3}))
        asyncio.run(create_topics(broker.bootstrap, {TOPIC: 3}))  # idempotent
        asyncio.run(_produce(broker.bootstrap))
        assert asyncio.run(_consume_one(broker.bootstrap, "g1")) == (2, b"k1", b"hello")

        broker.stop()
        assert not broker.is_running()
        broker.stop()  # idempotent

        broker.start()
        assert asyncio.run(_consume_one(broker.bootstrap, "g2")) == (2, b"k1", b"hello")
    finally:
        broker.stop()
    assert not broker.is_running()
    assert not broker.pid_file.exists()
