"""A worker catching up on a backlog of events weeks old, killed with kill -9 again and again
(also while it restores its table), and a worker stopped for longer than the allowed lateness
while events keep arriving: the alerts, dead letters and penalty statements on the topics are
exactly what ``replay`` gives for the same events. No partition's clock moves on, by the wall
clock, past input that was already in Kafka. Failures print the seed; set
SLA_STREAM_BACKLOG_SEED to run the same traffic and stops again."""

from __future__ import annotations

import asyncio
import io
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from broker_io import produce_all
from conftest import Worker
from helpers import closing_events, ms

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts, parse_duration
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.runtime.topics import ensure_topics
from sla_stream.settings import Settings, load_settings
from sla_stream.simulate import Traffic, generate
from sla_stream.simulate_io import topic_for
from sla_stream.wire.statements import statement_record

pytestmark = pytest.mark.integration

CONTRACT = """
version: 1
id: {id}
timezone: {zone}
tickets:
  priorities: [P1, P2, P3]
  near_breach: [0.5, 0.75]
  objectives:
    first_response: {{targets: {{P1: 30s, P2: 1m, P3: 2m}}}}
    next_reply:     {{targets: {{P1: 1m, P2: 2m, P3: 4m}}}}
    resolution:     {{targets: {{P1: 3m, P2: 6m, P3: 10m}}, pause_on: [pending]}}
  compliance_target: 0.9
calls:
  service_level: {{answer_within: 20s, target: 0.8, interval: 1m, short_abandon: 5s}}
  abandon_rate: {{max: 0.05, interval: 1m}}
requests:
  availability: {{target: 0.99, window: 10m}}
  latency: {{threshold_ms: 300, target: 0.95, window: 10m}}
  burn_rate_alerts: [{{long: 5m, short: 1m, factor: 2}}]
penalties:
  monthly_fee: {{amount: 999.99, currency: EUR}}
  tiers:
    - {{objective: availability,   below: 0.999, credit_percent: 10}}
    - {{objective: first_response, below: 0.9,   credit_percent: 7.5}}
    - {{objective: service_level,  below: 0.8,   credit_percent: 2.5}}
"""
# Ten contracts; the month ends at 00:00Z (UTC, Reykjavik) or 23:00Z (Lagos) in four of them,
# inside the backlog, so their statements are settled while it drains.
ZONES = [
    "UTC",
    "Africa/Lagos",
    "Atlantic/Reykjavik",
    "Asia/Jakarta",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "America/Sao_Paulo",
]
PARTITIONS = 8
SETTINGS = Settings()
# About 25,000 events: 14,000 ticket, 5,000 call and 7,000 request events (1,200 of them
# minute batches) over the 70 minutes of event time around a month's end.
EVENTS = int(os.environ.get("SLA_STREAM_BACKLOG_EVENTS", "25000"))
LATENESS = 5 * 60_000


def month_end_weeks_ago() -> int:
    """The start of a month (UTC) three to seven weeks before now: the backlog lies around it."""
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    while now - start < timedelta(weeks=3):
        start = (start - timedelta(days=1)).replace(day=1)
    return ms(start.isoformat())


def backlog(contracts: dict, seed: int) -> list[dict[str, Any]]:
    """Tickets, calls and requests as the simulator makes them, from 50 minutes before a month's
    end; a few arrive some seconds out of order, a few after the allowed lateness."""
    start = month_end_weeks_ago() - 50 * 60_000
    traffic = Traffic(rate=1.0, late_share=0.3, seed=seed, call_rate=0.5, request_rate=0.1, incident_rate=0.1)
    events = []
    for _, event in generate(contracts, start, traffic):
        assert isinstance(event, dict)
        events.append(event)
        if len(events) == EVENTS:
            break
    rng = random.Random(seed)
    # About 6 events a second of event time: 200 events are half a minute, 3,000 over 5 minutes.
    for share, delay in ((0.02, 200), (0.002, 3_000)):
        for _ in range(int(len(events) * share)):
            n = rng.randrange(len(events) - delay)
            events.insert(n + delay, events.pop(n))
    return events


def write_contracts(directory: Path) -> dict:
    directory.mkdir()
    for n, zone in enumerate(ZONES):
        (directory / f"c{n}.yaml").write_text(CONTRACT.format(id=f"c{n}", zone=zone))
    return load_dir(directory)


@pytest.mark.parametrize(
    ("guarantee", "store"),
    [
        ("exactly_once", "memory://"),
        ("exactly_once", "rocksdb://"),
        ("at_least_once", "memory://"),
        ("at_least_once", "rocksdb://"),
    ],
)
def test_a_worker_killed_while_it_drains_a_backlog_loses_nothing(
    worker, tmp_path: Path, guarantee: str, store: str
) -> None:
    seed = int(os.environ.get("SLA_STREAM_BACKLOG_SEED", random.randrange(1_000_000)))
    print(f"backlog-recovery seed: {seed} (set SLA_STREAM_BACKLOG_SEED={seed} to repeat)")
    rng = random.Random(seed)
    contracts = write_contracts(tmp_path / "contracts")
    events = backlog(contracts, seed)
    events += closing_events(contracts, max(ms(e["occurred_at"]) for e in events) + 1000)

    live = worker(tmp_path / "contracts", PARTITIONS, processing_guarantee=guarantee, store=store)
    # The topics exist and hold the backlog before the worker first starts.
    asyncio.run(ensure_topics(load_settings(environ=live.env)))
    produce_all(live.bootstrap, records_for(live, events))
    # kill -9 soon after the worker first starts on the backlog (before every input partition
    # has a position in its state), once while it restores its table from the changelog, and
    # when seeded shares of the backlog are committed.
    live.start(wait=False)
    wait_for(lambda: "Worker ready" in live.this_run(), "the worker started", live)
    time.sleep(rng.uniform(0.2, 1.5))
    live.kill()
    stops = [f"just after the start, {committed_share(live):.0%} committed"]
    live.start(wait=False)
    shares = [rng.uniform(0.1 + 0.2 * n, 0.3 + 0.2 * n) for n in range(4)]
    during_recovery = rng.randrange(len(shares))
    for n, share in enumerate(shares):
        if n == during_recovery:
            stops.append(f"while restoring: {kill_while_restoring(live, rng.uniform(0.0, 0.5))}")
            live.start(wait=False)
        done = wait_for(lambda share=share: committed_share(live) >= share, f"{share:.0%} committed", live)
        live.kill()
        stops.append(f"at {done:.0%} committed")
        live.start(wait=False)
    print(f"seed {seed}: kill -9 {'; '.join(stops)}")
    behind = drained(live, timeout=180)

    check_against_replay(live, contracts, events, guarantee, seed, behind)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_worker_stopped_longer_than_the_allowed_lateness_loses_nothing(
    worker, tmp_path: Path, guarantee: str
) -> None:
    seed = int(os.environ.get("SLA_STREAM_BACKLOG_SEED", random.randrange(1_000_000)))
    print(f"long-outage seed: {seed} (set SLA_STREAM_BACKLOG_SEED={seed} to repeat)")
    contracts = write_contracts(tmp_path / "contracts")
    lateness = "10s"
    # A tick's time is the wall clock less the grace: events reach Kafka within it of their time.
    live = worker(
        tmp_path / "contracts",
        PARTITIONS,
        processing_guarantee=guarantee,
        allowed_lateness=lateness,
        tick_grace="3s",
    )
    live.start(wait=False)
    sent: list[dict[str, Any]] = []
    stop_sending = threading.Event()
    traffic = Traffic(rate=6.0, late_share=0.3, seed=seed, call_rate=4.0, request_rate=0.1, incident_rate=0.2)
    sender = threading.Thread(
        target=send_live, args=(live, contracts, traffic, sent, stop_sending), daemon=True
    )
    sender.start()
    wait_for(lambda: live.get("/readyz")[0] == 200, "the worker ready", live)
    time.sleep(10)
    assert live.stop() == 0, live.tail(40)
    # Events keep arriving while it is away for twice the allowed lateness.
    time.sleep(2 * parse_duration(lateness) / 1000)
    live.start(wait=False)
    time.sleep(20)
    stop_sending.set()
    sender.join(60)
    assert not sender.is_alive()
    closing = closing_events(contracts, max(ms(e["occurred_at"]) for e in sent) + 1000)
    produce_all(live.bootstrap, records_for(live, closing))
    events = sent + closing
    behind = drained(live, timeout=180)

    check_against_replay(live, contracts, events, guarantee, seed, behind, parse_duration(lateness))


def send_live(
    live: Worker, contracts: dict, traffic: Traffic, sent: list[dict[str, Any]], stop: threading.Event
) -> None:
    """The simulator's traffic as it happens: each event stamped with the time it is sent."""

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=live.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            begun, first = time.time() * 1000, None
            last = 0
            for at, event in generate(contracts, 0, traffic):
                assert isinstance(event, dict)
                first = at if first is None else first
                ahead = (at - first) - (time.time() * 1000 - begun)
                if ahead > 0:
                    await asyncio.sleep(ahead / 1000)
                if stop.is_set():
                    break
                last = max(last, int(time.time() * 1000))
                event["occurred_at"] = format_ts(last, UTC)
                ((topic, key, value),) = records_for(live, [event])
                await producer.send_and_wait(topic, value, key=key)
                sent.append(event)
        finally:
            await producer.stop()

    asyncio.run(run())


def check_against_replay(
    live: Worker,
    contracts: dict,
    events: list[dict[str, Any]],
    guarantee: str,
    seed: int,
    behind: dict[tuple[str, int], tuple[int, int]],
    lateness: int = LATENESS,
) -> None:
    """Alerts (observed up to the last event's time), dead letters and statements equal replay's;
    ``behind``: input partitions whose offsets the worker has not committed to the end."""
    end = max(ms(e["occurred_at"]) for e in events)
    lines = [("events", n, orjson.dumps(e)) for n, e in enumerate(events, 1)]
    rejected = io.BytesIO()
    statements: list[dict[str, Any]] = []
    expected = [
        orjson.loads(encode_replay_alert(a))
        for a in replay(
            contracts,
            lines,
            allowed_lateness=lateness,
            rejected=rejected,
            partitions=PARTITIONS,
            on_statement=lambda s: statements.append(statement_record(s)),
        )
    ]
    assert expected, "the traffic should give alerts"
    expected_ids = {a["alert_id"] for a in expected}
    # Every input offset is committed, and with it (or before it) every output it gave.
    alerts = [a for a in read_all(live.bootstrap, live.topics["alerts"]) if ms(a["observed_at"]) <= end]
    got = {a["alert_id"]: plain(a) for a in alerts}
    repeated = [alert_id for alert_id, n in Counter(a["alert_id"] for a in alerts).items() if n > 1]
    if guarantee == "at_least_once":
        # Repeats are allowed, and recognisable: the same alert, field for field.
        assert all(plain(a) == got[a["alert_id"]] for a in alerts)
        repeated = []
    dead = read_all(live.bootstrap, live.topics["deadletter"])
    got_dead = Counter((d["reason"], d["value"]) for d in dead)
    expected_dead = Counter(
        (d["reason"], d["value"]) for d in map(orjson.loads, rejected.getvalue().splitlines())
    )
    if guarantee == "at_least_once":
        got_dead = Counter(set(got_dead))
    missing, extra = expected_ids - set(got), set(got) - expected_ids
    late = sum(n for (reason, _), n in (got_dead - expected_dead).items() if reason == "late")
    assert (len(missing), len(extra), len(repeated), late) == (0, 0, 0, 0), (
        f"seed {seed}: {len(missing)} missing, {len(extra)} extra, {len(repeated)} repeated of "
        f"{len(expected)} expected alerts; {late} valid events dead-lettered as late\n"
        f"missing e.g. {sample(missing, {a['alert_id']: a for a in expected})}\n"
        f"extra e.g. {sample(extra, got)}\n(committed, end) behind: {behind}\n{live.tail(40)}"
    )
    assert [got[a["alert_id"]] for a in expected] == expected, f"seed {seed}"
    assert got_dead == expected_dead, f"seed {seed}"

    # Statements: those of the periods that closed within the events, as replay settles them.
    found = read_all(live.bootstrap, live.topics["penalties"])
    closed = [plain(s) for s in found if ms(s["period"]["end"]) + lateness <= end]
    counts = Counter(s["statement_id"] for s in closed)
    want = {s["statement_id"]: s for s in statements}
    assert set(counts) == set(want), f"seed {seed}: {sorted(counts)} != {sorted(want)}"
    assert all(s == want[s["statement_id"]] for s in closed), f"seed {seed}"
    if guarantee == "exactly_once":
        assert all(n == 1 for n in counts.values()), f"seed {seed}: {counts}"
    assert not behind, f"seed {seed}: input offsets not committed to the end, (committed, end): {behind}"


def records_for(live: Worker, events: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes | None]]:
    """``(topic, key, value)`` on the worker's own input topics, keyed by contract."""
    names = {getattr(SETTINGS.topics, n): live.topics[n] for n in ("tickets", "calls", "requests")}
    return [(names[topic_for(SETTINGS, e)], e["contract_id"].encode(), orjson.dumps(e)) for e in events]


def committed_share(live: Worker) -> float:
    """How much of the input on the worker's topics its group has committed, 0 to 1."""
    offsets = committed_offsets(live)
    return sum(done for done, _ in offsets.values()) / max(sum(end for _, end in offsets.values()), 1)


def committed_offsets(live: Worker) -> dict[tuple[str, int], tuple[int, int]]:
    """``(committed, end)`` of each partition of the worker's input topics."""

    async def run() -> dict[tuple[str, int], tuple[int, int]]:
        topics = [live.topics[n] for n in ("tickets", "calls", "requests")]
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer = AIOKafkaConsumer(bootstrap_servers=live.bootstrap, enable_auto_commit=False)
        admin = AIOKafkaAdminClient(bootstrap_servers=live.bootstrap)
        await consumer.start()
        await admin.start()
        try:
            ends = await consumer.end_offsets(tps)
            try:
                offsets = await admin.list_consumer_group_offsets(live.env["SLA_STREAM_APP_ID"])
            except KafkaError:  # the group's coordinator is not there yet
                offsets = {}
        finally:
            await consumer.stop()
            await admin.close()
        done = {tp: meta.offset for tp, meta in offsets.items()}
        return {
            (tp.topic, tp.partition): (min(max(done.get(tp, 0), 0), end), end) for tp, end in ends.items()
        }

    return asyncio.run(run())


def drained(live: Worker, timeout: float) -> dict[tuple[str, int], tuple[int, int]]:
    """Waits until the worker has committed all its input; the partitions it has not, if it
    does not within ``timeout`` seconds."""
    try:
        wait_for(lambda: committed_share(live) >= 1, "all input committed", live, timeout=timeout)
    except AssertionError:
        if live.process is None or live.process.poll() is not None:
            raise
    return {tp: offsets for tp, offsets in committed_offsets(live).items() if offsets[0] < offsets[1]}


def wait_for(check: Callable[[], Any], what: str, live: Worker, timeout: float = 300) -> Any:
    """Polls ``check`` until it holds; the share committed then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live.process is not None and live.process.poll() is not None:
            raise AssertionError(f"worker exited with {live.process.returncode}:\n{live.tail()}")
        if check():
            return committed_share(live)
        time.sleep(0.3)
    behind = {tp: offsets for tp, offsets in committed_offsets(live).items() if offsets[0] < offsets[1]}
    raise AssertionError(f"not {what} after {timeout}s; (committed, end) behind: {behind}\n{live.tail()}")


def kill_while_restoring(live: Worker, delay: float, timeout: float = 120) -> str:
    """kill -9 ``delay`` seconds after the worker starts reading its changelog; what became of
    the restore."""
    deadline = time.monotonic() + timeout
    while not any(
        line in live.this_run() for line in ("Restoring state from changelog", "Recovery complete")
    ):
        assert time.monotonic() < deadline, f"no table recovery:\n{live.tail()}"
        assert live.process is not None and live.process.poll() is None, live.tail()
        time.sleep(0.05)
    time.sleep(delay)
    live.kill()
    run = live.this_run()
    if "Restoring state from changelog" not in run:
        return "nothing to restore"
    return "restore cut short" if "Done reading from changelog" not in run else "restore done"


def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` (read_committed), up to its end now."""

    async def run() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: list[dict[str, Any]] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend({**orjson.loads(r.value), "_partition": r.partition} for r in records)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())


def plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_") and k != "emitted_at"}


def sample(ids: set[str], by_id: dict) -> list[tuple[str, str, str, str]]:
    return [
        (by_id[i]["kind"], by_id[i]["objective"], by_id[i]["subject"]["id"], by_id[i]["observed_at"])
        for i in sorted(ids)[:5]
    ]
