"""The worker's path with a versioned contract: state written before a version change and read
back by a restarted worker, wall-clock ticks past the change, the same alerts as replay."""

from __future__ import annotations

import orjson
from helpers import REPO, ms

from sla_stream.contracts import load_dir
from sla_stream.runtime.pipeline import Pipeline, tick_record
from sla_stream.settings import Settings

# A tick made when Kafka held nothing on any input topic.
NOTHING = dict.fromkeys(Settings().source_topics, 0)


def test_the_worker_path_restarted_before_the_change_gives_the_golden_alerts():
    # Live: the worker's pipeline, its state written and read back by a restarted pipeline
    # before the change, wall-clock ticks past it; replay's golden output, emitted_at aside.
    case = REPO / "tests" / "golden" / "versioned-renewal"
    contracts = load_dir(case / "contracts")
    lines = (case / "events.jsonl").read_bytes().splitlines()
    expected = [orjson.loads(line) for line in (case / "expected.jsonl").read_bytes().splitlines()]
    now = lambda: ms("2026-12-02T00:00:00+07:00")  # noqa: E731
    pipeline = Pipeline(Settings(), contracts, table={}, clock=now)
    outputs = []
    for offset, line in enumerate(lines[:3]):
        outputs += pipeline.on_event("sla.tickets", 0, offset, b"acme-renewal", line)
    outputs += pipeline.on_tick(
        0, tick_record(ms("2026-11-30T20:00:00+07:00"), {**NOTHING, "sla.tickets": 3})
    )
    pipeline.write(0)
    restarted = Pipeline(Settings(), contracts, pipeline.table, clock=now)
    outputs += restarted.on_tick(
        0, tick_record(ms("2026-12-01T00:00:00.001+07:00"), {**NOTHING, "sla.tickets": 3})
    )
    outputs += restarted.on_tick(
        0, tick_record(ms("2026-12-01T00:00:00.002+07:00"), {**NOTHING, "sla.tickets": 3})
    )
    outputs += restarted.on_event("sla.tickets", 0, 3, b"acme-renewal", lines[3])
    outputs += restarted.on_tick(
        0, tick_record(ms("2026-12-01T12:00:00+07:00"), {**NOTHING, "sla.tickets": 4})
    )
    got = [orjson.loads(o.value) for o in outputs]
    assert [{k: v for k, v in alert.items() if k != "emitted_at"} for alert in got] == expected
