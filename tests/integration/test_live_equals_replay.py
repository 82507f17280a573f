"""The golden histories through a real worker give, field for field apart from ``emitted_at``,
the alerts ``replay`` gives for the same events.

Event times are moved a whole number of weeks ahead (weekdays and local hours kept), beyond
the wall clock, so partition clocks move by event time alone, as in replay."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest
from broker_io import produce, read_topic
from helpers import REPO

from sla_stream.contracts import load_dir
from sla_stream.replay import encode_replay_alert, replay

pytestmark = pytest.mark.integration

GOLDEN = REPO / "tests" / "golden"
AHEAD = timedelta(weeks=52 * 3)


def shifted(text: str) -> str:
    return (datetime.fromisoformat(text) + AHEAD).isoformat()


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir() if (p / "events.jsonl").exists()))
def test_a_golden_history_live_gives_what_replay_gives(worker, case: str) -> None:
    folder = GOLDEN / case
    contracts = load_dir(folder / "contracts")
    records = []
    for line in (folder / "events.jsonl").read_bytes().splitlines():
        event = orjson.loads(line)
        event["occurred_at"] = shifted(event["occurred_at"])
        records.append((event["contract_id"].encode(), orjson.dumps(event)))
    until = shifted((folder / "until").read_text().strip())
    for n, contract_id in enumerate(sorted(contracts)):  # moves each partition's clock to the end
        closing = {
            "event_id": f"end-{n}",
            "type": "ticket.created",
            "contract_id": contract_id,
            "occurred_at": until,
            "ticket_id": "END",
            "priority": contracts[contract_id].tickets.priorities[0],
        }
        records.append((contract_id.encode(), orjson.dumps(closing)))
    lines = [("events", n, value) for n, (_, value) in enumerate(records, 1)]
    expected = [
        orjson.loads(encode_replay_alert(a)) for a in replay(contracts, lines, allowed_lateness=300_000)
    ]
    assert expected

    live = worker(folder / "contracts", max_future="3650d").start()
    produce(live.bootstrap, live.topics["tickets"], records)
    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: len(found) >= len(expected),
        timeout=90,
        settle=3,
    )
    got = [{k: v for k, v in a.items() if k != "emitted_at" and not k.startswith("_")} for a in alerts]
    assert got == expected  # one contract per case: one partition, so the order is replay's too
