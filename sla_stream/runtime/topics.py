"""Creating the worker's topics before it starts: Faust declares only its own internal ones."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from sla_stream.kafka_client import client_kwargs
from sla_stream.runtime.errors import TopicError
from sla_stream.settings import Settings

# Ticks only need to live until they are processed.
_TICKS_CONFIG = {"retention.ms": str(3_600_000), "cleanup.policy": "delete"}


def wanted_topics(settings: Settings) -> dict[str, int]:
    """Every topic the worker reads or writes, with its partition count.

    Input, tick and output topics share one partition count: a contract's
    events, its clock ticks and its state changelog land on the same
    partition number, which Faust requires of co-partitioned topics.
    """
    topics = settings.topics
    names = (*settings.source_topics, topics.ticks, topics.alerts, topics.deadletter, topics.penalties)
    return {name: settings.partitions for name in names}


@contextlib.contextmanager
def quiet_kafka() -> Iterator[list[str]]:
    """aiokafka's own log lines off, for a call whose failure the caller reports in one line.

    Its error lines are kept, in the list yielded: aiokafka's exception for a failed
    connection says only that it failed; the line it logs says why (refused, or the
    broker turned the credentials down).
    """
    logger = logging.getLogger("aiokafka")
    level, propagate = logger.level, logger.propagate
    errors: list[str] = []
    keep = _Keep(errors)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    logger.addHandler(keep)
    try:
        yield errors
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
        logger.propagate = propagate


class _Keep(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; raise :class:`TopicError` on a partition-count mismatch."""
    wanted = wanted_topics(settings)
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=30_000)
    try:
        with quiet_kafka() as errors:  # the one-line error below says it all
            await admin.start()
    except KafkaError as exc:
        why = f" ({errors[-1]})" if errors else ""
        raise TopicError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}{why}") from None
    try:
        existing = set(await admin.list_topics())
        present = [name for name in wanted if name in existing]
        if present:
            for description in await admin.describe_topics(present):
                name = description["topic"]
                count = len(description["partitions"])
                if count != wanted[name]:
                    raise TopicError(
                        f"topic {name} has {count} partitions but the worker is set to "
                        f"{wanted[name]} (set SLA_STREAM_PARTITIONS={count}, or recreate the topic)"
                    )
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=wanted[name],
                        replication_factor=settings.replication_factor,
                        topic_configs=_TICKS_CONFIG if name == settings.topics.ticks else {},
                    )
                    for name in missing
                ]
            )
        return missing
    finally:
        await admin.close()
