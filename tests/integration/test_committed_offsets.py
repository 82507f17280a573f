"""The worker commits its input offsets: a restart resumes where it stopped instead of going
through the whole topic again (under exactly-once they are committed in the transaction)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from broker_io import produce

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: offsets
tickets:
  priorities: [P1]
  objectives:
    first_response: {targets: {P1: 1h}}
"""


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    async def run() -> dict[tuple[str, int], int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

    return asyncio.run(run())


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_input_offsets_are_committed_while_running(worker, tmp_path: Path, guarantee: str) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "offsets.yaml").write_text(CONTRACT)
    live = worker(contracts, partitions=1, processing_guarantee=guarantee).start()
    events = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "type": "ticket.created",
                "contract_id": "offsets",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "ticket_id": f"T-{n}",
                "priority": "P1",
            }
        )
        for n in range(20)
    ]
    produce(live.bootstrap, live.topics["tickets"], [(b"offsets", e) for e in events])
    group = live.env["SLA_STREAM_APP_ID"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if committed(live.bootstrap, group).get((live.topics["tickets"], 0)) == 20:
            break
        time.sleep(0.5)
    offsets = committed(live.bootstrap, group)
    assert offsets.get((live.topics["tickets"], 0)) == 20, offsets
    assert offsets.get((live.topics["ticks"], 0), 0) > 0, offsets
