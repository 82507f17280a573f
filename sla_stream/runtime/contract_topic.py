"""Contracts published on a compacted topic (``sla.contracts``): one record per contract file,
keyed by contract id, its value the file's YAML; a tombstone removes a contract.

``sla-stream contracts publish DIR`` makes the topic hold exactly the files of ``DIR``, once
they all load. A worker with ``contracts_from: topic`` reads the topic into a directory of its
own at start, and follows it: each change is written there, and the reload machinery of
:mod:`.reload` takes it (the last good contracts stay when the files do not load).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mode
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from sla_stream.contracts import load_dir
from sla_stream.kafka_client import client_kwargs
from sla_stream.runtime.errors import TopicError
from sla_stream.runtime.topics import quiet_kafka
from sla_stream.settings import Settings

log = logging.getLogger("sla_stream.contracts")

_COMPACTED = {"cleanup.policy": "compact"}


async def ensure_contract_topic(settings: Settings) -> bool:
    """Create the contracts topic (compacted, one partition) if it is missing; true if created."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=30_000)
    try:
        with quiet_kafka() as errors:
            await admin.start()
    except KafkaError as exc:
        why = f" ({errors[-1]})" if errors else ""
        raise TopicError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}{why}") from None
    try:
        name = settings.topics.contracts
        if name in set(await admin.list_topics()):
            return False
        topic = NewTopic(name, 1, settings.replication_factor, topic_configs=_COMPACTED)
        await admin.create_topics([topic])
        return True
    finally:
        await admin.close()


async def read_contracts(settings: Settings) -> dict[str, bytes]:
    """The contract files the topic holds now, by contract id."""
    found: dict[str, bytes] = {}
    await _follow(settings, lambda key, value: _apply(found, key, value), until_end=True)
    return found


def materialize(files: Mapping[str, bytes], directory: Path) -> bool:
    """Make ``directory`` hold exactly ``files`` (by contract id), each replaced whole; true if
    anything changed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {quote(contract_id, safe="") + ".yaml": text for contract_id, text in files.items()}
    changed = False
    for path in directory.glob("*.yaml"):
        if path.name not in wanted:
            path.unlink()
            changed = True
    for name, text in wanted.items():
        path = directory / name
        if path.exists() and path.read_bytes() == text:
            continue
        partial = directory / f".{name}.partial"
        partial.write_bytes(text)
        os.replace(partial, path)  # a reader sees the old file or the new one, never half of it
        changed = True
    return changed


def contract_files(directory: Path) -> dict[str, bytes]:
    """The contract files of ``directory`` by contract id, once they all load (else
    :class:`~sla_stream.contracts.ContractError`, one line per problem)."""
    load_dir(directory)
    files: dict[str, bytes] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
        text = path.read_bytes()
        files[str(yaml.safe_load(text)["id"])] = text
    return files


async def publish(settings: Settings, files: Mapping[str, bytes]) -> tuple[int, int]:
    """Make the topic hold ``files`` (see :func:`contract_files`): how many there are, and how
    many contracts were removed from the topic."""
    await ensure_contract_topic(settings)
    present = await read_contracts(settings)
    removed = sorted(present.keys() - files.keys())
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    await producer.start()
    try:
        sends = [
            await producer.send(settings.topics.contracts, text, key=contract_id.encode())
            for contract_id, text in files.items()
            if present.get(contract_id) != text
        ]
        sends += [
            await producer.send(settings.topics.contracts, None, key=contract_id.encode())
            for contract_id in removed
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return len(files), len(removed)


class ContractTopicFollower(mode.Service):
    """Keeps ``directory`` equal to the contracts topic, and asks for a reload on each change."""

    def __init__(
        self, settings: Settings, directory: Path, changed: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.directory = directory
        self.changed = changed

    @mode.Service.task
    async def _following(self) -> None:
        files: dict[str, bytes] = {}
        caught_up = False  # the topic is read from its start: the whole set first, then changes

        def update(key: bytes | None, value: bytes | None) -> None:
            _apply(files, key, value)
            if caught_up:
                write()

        def at_end() -> None:
            nonlocal caught_up
            caught_up = True
            write()

        def write() -> None:
            if materialize(files, self.directory):
                log.info("contracts changed on topic %s", self.settings.topics.contracts)
                self.changed()

        while not self.should_stop:
            files.clear()
            caught_up = False
            try:
                await _follow(
                    self.settings, update, until_end=False, stopping=lambda: self.should_stop, at_end=at_end
                )
            except (KafkaError, OSError) as exc:  # the broker away: the next round starts again
                log.warning("following topic %s: %s", self.settings.topics.contracts, exc)
                await self.sleep(5)


def _apply(files: dict[str, bytes], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return  # not a contract record: contracts are keyed by id
    contract_id = key.decode("utf-8", errors="replace")
    if value is None:
        files.pop(contract_id, None)
    else:
        files[contract_id] = value


async def _follow(
    settings: Settings,
    each: Callable[[bytes | None, bytes | None], None],
    until_end: bool,
    stopping: Callable[[], bool] = lambda: False,
    at_end: Callable[[], None] = lambda: None,
) -> None:
    """Every record of the contracts topic from the start, in order, to ``each``: up to the end
    as it is now, or on and on (``at_end`` is called once that end is reached)."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(settings.topics.contracts, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        reached = False
        while not stopping():
            if not reached and await consumer.position(partition) >= end:
                reached = True
                at_end()
                if until_end:
                    return
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    each(record.key, record.value)
    finally:
        await consumer.stop()
