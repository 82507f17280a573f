"""The worker on a real broker: alerts for tickets, the unanswered breach with no further event,
bad input to the dead-letter topic, and the same alerts as ``replay`` gives for the same events."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from broker_io import produce, read_topic

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.replay import encode_replay_alert, replay

CONTRACT = """
version: 1
id: {id}
timezone: Europe/Paris
tickets:
  priorities: [P1, P2]
  near_breach: [0.5]
  objectives:
    first_response: {{targets: {{P1: 6s, P2: 1h}}}}
    resolution:     {{targets: {{P1: 1h, P2: 8h}}}}
"""

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_alerts_deadletters_and_live_equals_replay(worker, tmp_path: Path, guarantee: str) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "fast.yaml").write_text(CONTRACT.format(id="fast"))
    (contracts / "other.yaml").write_text(CONTRACT.format(id="other"))
    live = worker(contracts, processing_guarantee=guarantee).start()
    topics = live.topics

    now = int(time.time() * 1000)

    def event(n: int, kind: str, ticket: str, at: int, contract: str = "fast", **fields: str) -> bytes:
        body = {
            "event_id": f"e{n}",
            "type": kind,
            "contract_id": contract,
            "occurred_at": format_ts(at, UTC),
            "ticket_id": ticket,
            **fields,
        }
        return orjson.dumps(body)

    events = [
        (b"fast", event(1, "ticket.created", "ANSWERED", now, priority="P1")),
        (b"other", event(2, "ticket.created", "UNANSWERED", now, contract="other", priority="P1")),
        (b"fast", event(3, "ticket.agent_replied", "ANSWERED", now + 1000)),
        (
            b"fast",
            b'{"event_id": "e4", "type": "ticket.created", "contract_id": "fast", '
            b'"occurred_at": "2026-11-24T09:00:00+01:00", "ticket_id": "BAD", "priority": 1}',
        ),
    ]
    produce(live.bootstrap, topics["tickets"], events)

    # Nothing else is produced: the breach must come from the clock alone.
    alerts = read_topic(
        live.bootstrap,
        topics["alerts"],
        until=lambda found: any(a["kind"] == "breach" for a in found),
        timeout=60,
        settle=3,
    )
    assert [(a["contract_id"], a["subject"]["id"], a["objective"], a["kind"]) for a in alerts] == [
        ("other", "UNANSWERED", "first_response", "near_breach"),
        ("other", "UNANSWERED", "first_response", "breach"),
    ]
    breach = alerts[1]
    assert breach["_key"] == b"other"
    assert breach["target_seconds"] == 6 and breach["elapsed_seconds"] == 6
    assert breach["deadline"] == breach["observed_at"] == format_ts(now + 6000, _paris())
    assert datetime.fromisoformat(breach["emitted_at"]) >= datetime.fromisoformat(breach["deadline"])

    dead = read_topic(live.bootstrap, topics["deadletter"], until=lambda found: len(found) >= 1, settle=2)
    assert len(dead) == 1
    assert dead[0]["reason"] == "invalid"
    assert "$.priority" in dead[0]["detail"]
    assert dead[0]["topic"] == topics["tickets"] and dead[0]["offset"] is not None
    assert orjson.loads(dead[0]["value"])["ticket_id"] == "BAD"

    status, metrics = live.get("/metrics")
    assert status == 200
    text = metrics.decode()
    assert f'sla_events_total{{outcome="ok",topic="{topics["tickets"]}"}} 3.0' in text
    assert f'sla_events_total{{outcome="invalid",topic="{topics["tickets"]}"}} 1.0' in text

    # Live equals replay: the same events through the engine alone give the same alerts.
    lines = [("events", n, value) for n, (_, value) in enumerate(events, 1)]
    expected = [
        orjson.loads(encode_replay_alert(a)) for a in replay(load_dir(contracts), lines, until=now + 60_000)
    ]
    got = [{k: v for k, v in a.items() if k != "emitted_at" and not k.startswith("_")} for a in alerts]
    assert got == expected


def _paris():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")
