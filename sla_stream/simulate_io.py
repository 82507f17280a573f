"""Where simulated traffic goes (a file, or Kafka in real time) and reading a topic back."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from sla_stream.engine.model import Contract
from sla_stream.kafka_client import client_kwargs
from sla_stream.runtime.errors import TopicError
from sla_stream.runtime.topics import quiet_kafka
from sla_stream.settings import Settings
from sla_stream.simulate import Traffic, generate


def write_file(
    out: BinaryIO, contracts: Mapping[str, Contract], traffic: Traffic, start: int, duration: int | None
) -> int:
    """Write event time ``[start, start + duration)`` of traffic to ``out`` as JSON lines;
    returns the count."""
    end = start + (duration if duration is not None else 3_600_000)
    count = 0
    for at, event in generate(contracts, start, traffic):
        if at >= end:
            break
        out.write((event if isinstance(event, bytes) else orjson.dumps(event)) + b"\n")
        count += 1
    return count


async def produce_live(
    settings: Settings, contracts: Mapping[str, Contract], traffic: Traffic, duration: int | None
) -> None:
    """Produce traffic to the input topics as its event time comes, keyed by contract id."""
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=5)
    await start_client(producer, settings)
    start = int(time.time() * 1000)
    sent = 0
    try:
        # Sent to a missing topic, an event waits for metadata, warning each retry, then fails.
        present = (await producer.client.fetch_all_metadata()).topics()
        missing = [topic for topic in settings.source_topics if topic not in present]
        if missing:
            raise TopicError(
                f"no topic {', '.join(missing)} on {settings.bootstrap_servers}: start the worker once"
                f" (it creates its topics), or create them with {settings.partitions} partitions each"
            )
        for at, event in generate(contracts, start, traffic):
            if duration is not None and at >= start + duration:
                break
            wait = at / 1000 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if isinstance(event, bytes):
                key, value = next(iter(contracts)).encode(), event
            else:
                key, value = event["contract_id"].encode(), orjson.dumps(event)
            await producer.send(topic_for(settings, event), value, key=key)
            sent += 1
            if sent % 100 == 0:
                print(f"simulate: {sent} events produced", file=sys.stderr, flush=True)
    finally:
        await producer.stop()


def topic_for(settings: Settings, event: dict[str, object] | bytes) -> str:
    """The input topic of an event by its type (malformed bytes go to the ticket topic)."""
    kind = "" if isinstance(event, bytes) else str(event.get("type", ""))
    if kind.startswith("call."):
        return settings.topics.calls
    if kind.startswith("request"):
        return settings.topics.requests
    if kind and not kind.startswith("ticket."):
        return settings.topics.items
    return settings.topics.tickets


async def start_client(client: AIOKafkaConsumer | AIOKafkaProducer, settings: Settings) -> None:
    """Start ``client``; a broker out of reach is one line (:class:`TopicError`), as when the
    worker checks its topics, and the client is stopped, so nothing warns of it unclosed."""
    try:
        with quiet_kafka() as errors:
            await client.start()
    except KafkaError as exc:
        await client.stop()
        why = f" ({errors[-1]})" if errors else ""
        raise TopicError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}{why}") from None


async def tail(settings: Settings, topic: str, from_beginning: bool, lines: bool = False) -> None:
    """Print each record of ``topic`` as one line until interrupted: its value, or with
    ``lines`` an alert as :func:`~sla_stream.alert_lines.alert_line` says it."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await start_client(consumer, settings)
    colour = lines and sys.stdout.isatty()
    try:
        async for record in consumer:
            value = record.value or b""
            line = _readable(value, colour) if lines else None
            sys.stdout.write((line or value.decode("utf-8", "replace")) + "\n")
            sys.stdout.flush()
    finally:
        await consumer.stop()


def _readable(value: bytes, colour: bool) -> str | None:
    """An alert record's line, or ``None`` for anything else (printed as it is)."""
    from sla_stream.alert_lines import alert_line

    try:
        record = orjson.loads(value)
        return alert_line(record, colour) if isinstance(record, dict) else None
    except (KeyError, TypeError, ValueError):  # not an alert record (orjson's errors are ValueErrors)
        return None
