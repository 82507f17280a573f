"""Producing to and reading from the test broker, and the worker process handle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sla_stream.engine.time import format_ts
from sla_stream.settings import Settings, Topics
from sla_stream.simulate_io import topic_for


def overdue_ticket(contract: str, ticket: str) -> tuple[bytes, bytes]:
    """``(key, value)`` of a P1 ticket of ``contract`` created 30 s ago (event id ``ticket``)."""
    created = {
        "event_id": ticket,
        "type": "ticket.created",
        "contract_id": contract,
        "occurred_at": format_ts(int(time.time() * 1000) - 30_000, UTC),
        "ticket_id": ticket,
        "priority": "P1",
    }
    return contract.encode(), orjson.dumps(created)


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes]],
    auth: Mapping[str, Any] | None = None,
) -> None:
    """``auth``: aiokafka security arguments (``LocalBroker.auth``), for a broker that wants them."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(auth or {}))
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())


def input_records(topics: Mapping[str, str], events: list[dict[str, Any]]) -> list[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` for each event: the worker's input topic for its type (``topics`` are
    the worker's names by role), keyed by contract id."""
    names = Settings(
        topics=Topics(
            tickets=topics["tickets"],
            calls=topics["calls"],
            requests=topics["requests"],
            items=topics["items"],
        )
    )
    return [(topic_for(names, e), e["contract_id"].encode(), orjson.dumps(e)) for e in events]


def produce_all(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Produce ``(topic, key, value)`` records in order, acknowledged at the end (one producer
    keeps the order within each partition)."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_paced(bootstrap: str, records: list[tuple[str, bytes | None, bytes]], per_second: float) -> None:
    """Produce ``(topic, key, value)`` records in order at about ``per_second``, waiting for
    every acknowledgement."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            started = time.monotonic()
            batch = max(1, int(per_second / 20))
            for first in range(0, len(records), batch):
                futures = [await producer.send(t, v, key=k) for t, k, v in records[first : first + batch]]
                await asyncio.gather(*futures)
                ahead = started + (first + batch) / per_second - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60,
    settle: float = 0.0,
    auth: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``topic`` from the start, read until ``until(records)`` holds (then ``settle``
    seconds more, to catch anything that should not be there) or ``timeout`` passes."""

    async def run() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            **(auth or {}),
        )
        await consumer.start()
        found: list[dict[str, Any]] = []

        async def more() -> None:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.extend(
                    {**orjson.loads(r.value), "_partition": r.partition, "_offset": r.offset, "_key": r.key}
                    for r in records
                )

        try:
            ends = time.monotonic() + timeout
            while not until(found) and time.monotonic() < ends:
                await more()
            quiet = time.monotonic() + settle
            while time.monotonic() < quiet:
                await more()
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())
