"""Finished tickets leave the worker's state on a real broker: their table entries become a marker,
then a deletion the changelog carries as a tombstone; a reopen after that is a dead letter
(docs/reference/contracts.md#retention)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from broker_io import produce, read_topic

from sla_stream.engine.time import format_ts

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: desk
timezone: UTC
tickets:
  priorities: [P1]
  objectives:
    first_response: {targets: {P1: 1h}}
    resolution:     {targets: {P1: 8h}}
  retention: 4s
"""


Records = dict[bytes, list[bytes | None]]


def changelog(bootstrap: str, topic: str, until: Callable[[Records], bool]) -> Records:
    """Every record of the changelog, by ticket id (values in order; ``None``: a tombstone), read
    until ``until(records)`` holds or 60 s passed."""

    async def run() -> Records:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        found: Records = {}
        try:
            ends = time.monotonic() + 60
            while time.monotonic() < ends:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        if record.key.startswith(b"t"):
                            found.setdefault(record.key.rsplit(b"\x1f", 1)[1], []).append(record.value)
                if until(found):
                    break
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())


def segment_ms(bootstrap: str, topic: str) -> str:
    async def run() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            entries = {name: value for name, value, *_ in described.resources[0][4]}
            return entries["segment.ms"]
        finally:
            await admin.close()

    return asyncio.run(run())


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_closed_and_solved_tickets_leave_the_changelog_and_a_late_reopen_is_expired(
    worker, tmp_path: Path, guarantee: str
) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "desk.yaml").write_text(CONTRACT)
    live = worker(contracts, processing_guarantee=guarantee, allowed_lateness="2s").start()
    now = int(time.time() * 1000)

    def event(n: int, ticket: str, at: int, **fields: str) -> tuple[bytes, bytes]:
        body = {
            "event_id": f"e{n}",
            "contract_id": "desk",
            "occurred_at": format_ts(at, UTC),
            "ticket_id": ticket,
            **fields,
        }
        return b"desk", orjson.dumps(body)

    produce(
        live.bootstrap,
        live.topics["tickets"],
        [
            event(1, "CLOSED", now, type="ticket.created", priority="P1"),
            event(2, "SOLVED", now, type="ticket.created", priority="P1"),
            event(3, "OPEN", now, type="ticket.created", priority="P1"),
            event(4, "CLOSED", now + 100, type="ticket.status_changed", status="closed"),
            event(5, "SOLVED", now + 100, type="ticket.status_changed", status="solved"),
        ],
    )
    topic = f"{live.env['SLA_STREAM_APP_ID']}-state-changelog"

    def marker(values: list[bytes | None]) -> bool:
        return values[-1] is not None and "gone" in orjson.loads(values[-1])

    # Closed: a marker once the lateness (2 s) has passed; a reopen then is `expired`.
    records = changelog(live.bootstrap, topic, lambda found: marker(found.get(b"CLOSED", [b"{}"])))
    assert marker(records[b"CLOSED"]), records.get(b"CLOSED")
    reopen = event(6, "CLOSED", int(time.time() * 1000), type="ticket.status_changed", status="open")
    produce(live.bootstrap, live.topics["tickets"], [reopen])
    # The marker is deleted the retention (4 s) later; the solved ticket leaves after the
    # retention and its marker after it again. The open ticket stays.
    gone = changelog(
        live.bootstrap,
        topic,
        lambda found: all(found.get(t, [b""])[-1] is None for t in (b"CLOSED", b"SOLVED")),
    )
    for ticket in (b"CLOSED", b"SOLVED"):
        assert marker(gone[ticket][:-1]) and gone[ticket][-1] is None, (ticket, gone[ticket])
    assert gone[b"OPEN"][-1] is not None and orjson.loads(gone[b"OPEN"][-1])["c"]
    # Once the marker is gone too, an event for the ticket is one for a ticket never created.
    late = event(7, "SOLVED", int(time.time() * 1000), type="ticket.status_changed", status="open")
    produce(live.bootstrap, live.topics["tickets"], [late])
    dead = read_topic(
        live.bootstrap, live.topics["deadletter"], until=lambda found: len(found) >= 2, settle=2
    )
    assert [(d["reason"], orjson.loads(d["value"])["event_id"]) for d in dead] == [
        ("expired", "e6"),
        ("invalid", "e7"),
    ]
    # The changelog was made with the segment length the worker sets, so the broker compacts it.
    assert segment_ms(live.bootstrap, topic) == "3600000"
