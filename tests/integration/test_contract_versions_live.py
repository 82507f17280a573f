"""A contract version taking effect while a real worker runs: a ticket clock running at the change
takes the new target at that instant, with no event after it, and its breach names the version."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from broker_io import produce, read_topic

from sla_stream.engine.time import format_ts, to_ms

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: renewing
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {{targets: {{P1: 40s}}}}
versions:
  - name: faster
    effective_from: {change}
    tickets: {{objectives: {{first_response: {{targets: {{P1: 15s}}}}}}}}
"""


def test_a_running_clock_takes_the_new_versions_target_at_the_change_with_no_event(worker, tmp_path: Path):
    # The change comes 40 s from now, after the worker has started; the ticket 10 s before it.
    change = (int(time.time()) + 40) * 1000
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "renewing.yaml").write_text(CONTRACT.format(change=format_ts(change, UTC)))
    live = worker(contracts, partitions=2).start()
    now = change - 10_000
    time.sleep(max(0.0, now / 1000 - time.time() + 2))
    created = {
        "event_id": "e1",
        "type": "ticket.created",
        "contract_id": "renewing",
        "occurred_at": format_ts(now, UTC),
        "ticket_id": "T-1",
        "priority": "P1",
    }
    produce(live.bootstrap, live.topics["tickets"], [(b"renewing", orjson.dumps(created))])
    alerts = read_topic(
        live.bootstrap, live.topics["alerts"], until=lambda found: len(found) >= 1, timeout=90, settle=2
    )
    # 10 s had run at the change; the 15 s target is reached 5 s after it, not 30 s.
    assert [(a["kind"], a["subject"]["id"], a["target_seconds"]) for a in alerts] == [("breach", "T-1", 15)]
    breach = alerts[0]
    assert _ms(breach["observed_at"]) == change + 5_000
    assert breach["details"]["contract_version"] == "faster"
    assert _ms(breach["emitted_at"]) - (change + 5_000) < 10_000


def _ms(text: str) -> int:
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
