"""The benchmark: ``python bench/run.py`` (``make bench``); ``--quick`` is the CI smoke run.

On one local broker, in one run, over the same seeded mixed traffic (tickets, calls and
requests of 40 contracts):

1. **baseline**: a plain aiokafka consumer (``getmany``) reading every event of the input
   topics and ``orjson.loads``-ing it, nothing else: the limit of the stack;
   **Faust floor**: a Faust agent that only reads and decodes (``faust_floor.py``), timed like
   the worker: what the framework's per-message path costs before sla-stream does anything,
   with Faust's defaults and **tuned** for bulk reading (``--tuned``);
   **peer**: a Quix Streams application reading, decoding and making one stateful update per
   message (``quix_peer.py``, in an environment of its own that ``make bench`` makes), timed
   the same way;
2. **worker**: ``sla-stream worker`` draining the same topics (state, deadlines, alerts,
   statements, metrics), timed by its committed offsets, under at-least-once and exactly-once;
3. **replay**: ``sla-stream replay`` over the bench's mix and one mix per source (tickets,
   calls, requests, items) from files, each against a parse-and-update floor over the same file,
   in the same run (``replay_mixes.py``, also ``make bench-replay`` alone: the engine alone,
   one core; its report is ``replay.md``);
4. **latency** at a fixed offered rate (80% of the live rate the worker sustains, found by
   offering the drain rate and 20% less each time until it keeps up): the same traffic
   re-sent as it happens, plus probe tickets; event-to-alert latency (a priority change that
   breaches at once, until the alert is read off the alert topic) and deadline-to-alert delay
   (a ticket nobody answers, from its deadline until its breach is read);
5. **memory**: peak resident memory of the worker and of replay (per mix), and memory per open
   ticket in the worker's in-memory store;
6. **soak**: 10 to 60 days of a helpdesk's constant traffic, replayed (peak memory and state
   entries, also for the code before finished work left the state) and drained by the worker
   (its live changelog keys and the time a restarted worker takes to recover them): ``soak.py``;
7. **reload**: a contract reload on a worker holding a million open tickets, against the code
   before: the event loop's longest hold (``reload.py``, also ``make bench-reload`` alone).

Writes ``bench/results/bench.md`` and ``bench.json`` (or ``--out DIR``), with each target,
whether it is met and by how much; ``replay.md`` has replay's profile per mix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mixes
import reload as reload_bench
import replay_mixes
import soak
import traffic
from reporting import judged, machine, misses, row, say, target_table

from sla_stream.engine.time import format_ts
from sla_stream.local_kafka import LocalBroker, create_topics, free_port
from sla_stream.settings import Settings, Topics
from sla_stream.simulate_io import topic_for

REPO = Path(__file__).resolve().parent.parent
ROLES = ("tickets", "calls", "requests", "items", "alerts", "penalties", "deadletter", "ticks")
PEER_PYTHON = REPO / ".venv-bench" / "bin" / "python"
"""The interpreter of the bench's own environment (``make bench`` makes it from requirements.txt)."""
PY_SPY = PEER_PYTHON.with_name("py-spy")
TARGETS = {
    "worker_vs_baseline": 0.25,
    "worker_vs_tuned_floor": 5.0,
    "worker_vs_peer": 1.0,
    "replay_events_per_second": replay_mixes.REPLAY_RATE,
    "live_vs_drain": 0.8,
    "deadline_p50_seconds": 0.15,
    "deadline_p99_seconds": 0.3,
    "event_p50_seconds": 0.15,
    "event_p99_seconds": 0.3,
    "bytes_per_open_ticket": 1024,
    "soak_replay_memory": 1.3,
    "soak_replay_entries": 1.3,
    "soak_worker_live_keys": 1.3,
    "soak_worker_recovery": 1.3,
    "reload_loop_held_seconds": 1.0,
}


@dataclass
class Results:
    """Everything measured, as written to bench.json."""

    parameters: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    faust_floor: dict[str, float] = field(default_factory=dict)
    faust_floor_tuned: dict[str, float] = field(default_factory=dict)
    peer: dict[str, Any] = field(default_factory=dict)
    """The Quix Streams peer; ``{"not_measured": why}`` where it was not run."""
    worker: dict[str, float] = field(default_factory=dict)
    """Draining under at-least-once (the default)."""
    worker_exactly_once: dict[str, float] = field(default_factory=dict)
    worker_profile: dict[str, Any] = field(default_factory=dict)
    """py-spy's samples of one more at-least-once drain: the top functions, own and inclusive."""
    replay: dict[str, float] = field(default_factory=dict)
    """Replay on the bench's mix (from ``replay_sources``)."""
    replay_sources: dict[str, Any] = field(default_factory=dict)
    """The replay part (``replay_mixes.measure``): every mix against its floor, with profiles."""
    sustainable: list[dict[str, float]] = field(default_factory=list)
    """Live rates tried, from the drain rate down, until the worker kept up (at-least-once)."""
    latency: dict[str, Any] = field(default_factory=dict)
    """Latency at 80% of the sustainable live rate (at-least-once)."""
    sustained: dict[str, float] = field(default_factory=dict)
    """The sustainable live rate per guarantee (``at_least_once``, ``exactly_once``)."""
    sustainable_exactly_once: list[dict[str, float]] = field(default_factory=list)
    latency_exactly_once: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    soak: dict[str, Any] = field(default_factory=dict)
    """Months of constant helpdesk traffic (``soak.measure``): replay and the worker's state."""
    reload: dict[str, Any] = field(default_factory=dict)
    """A contract reload with a million open tickets (``reload.measure``)."""
    targets: list[dict[str, Any]] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to preload (default 100,000)")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of the latency run")
    parser.add_argument("--open-tickets", type=int, default=100_000, help="tickets for memory per ticket")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="a small run that only checks the harness works")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.latency_seconds, args.open_tickets = 20_000, 8.0, 5_000
    results = Results(
        parameters={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        machine=machine(),
    )
    with tempfile.TemporaryDirectory(prefix="sla-bench-") as tmp:
        work = Path(tmp)
        contracts = traffic.write_contracts(work / "contracts", 40)
        events_file = work / "events.jsonl"
        # Up to a minute ago: the worker catches up on a backlog that reaches the present.
        traffic.write_events(
            events_file, contracts, time.time_ns() // 1_000_000 - 60_000, args.events, args.seed
        )
        say(f"traffic: {args.events:,} events of 40 contracts in {events_file}")
        # The code before the engine work replays in every round too, next to today's (same-run
        # baselines for the rate and memory ratios); the quick run only checks the harness.
        before = None
        if not args.quick:
            before = (work / "before", replay_mixes.BEFORE_COMMIT)
            replay_mixes.archive(replay_mixes.BEFORE_COMMIT, before[0])
        results.replay_sources = replay_mixes.measure(
            list(mixes.MIXES),
            args.events,
            repeats=1 if args.quick else 3,
            seed=args.seed,
            code=REPO,
            open_tickets=args.open_tickets,
            profile_events=10_000 if args.quick else 30_000,
            before=before,
        )
        results.replay_sources["parameters"]["command"] = "python bench/run.py" + (
            " --quick" if args.quick else ""
        )
        replay_mixes.write_report(results.replay_sources, args.out, quick=args.quick)
        bench_mix = results.replay_sources["mixes"][0]
        results.replay = {
            "events": bench_mix["events"],
            "seconds": bench_mix["replay_seconds"],
            "events_per_second": bench_mix["replay_events_per_second"],
            "alerts": bench_mix["alerts"],
            "peak_rss_mib": bench_mix["peak_rss_mib"],
        }
        say(f"replay: {results.replay['events_per_second']:,.0f} events/s on the bench's mix")
        results.memory = results.replay_sources["memory"]
        with broker_for(args.bootstrap, work) as bootstrap:
            run = (
                f"bench-{int(time.time())}-{os.getpid()}"  # fresh topics and groups, also on a shared broker
            )
            topics = names(f"{run}-drain")
            asyncio.run(create_topics(bootstrap, {topics[r]: args.partitions for r in ROLES}))
            produced = asyncio.run(preload(bootstrap, topics, events_file))
            say(f"preloaded {produced:,} events")
            results.baseline = asyncio.run(measure_baseline(bootstrap, topics, produced))
            say(f"baseline: {results.baseline['events_per_second']:,.0f} events/s")
            results.faust_floor = measure_faust_floor(
                bootstrap, topics, work, args.partitions, produced, f"{run}-floor"
            )
            say(f"faust floor: {results.faust_floor['events_per_second']:,.0f} events/s")
            results.faust_floor_tuned = measure_faust_floor(
                bootstrap, topics, work, args.partitions, produced, f"{run}-floor-tuned", tuned=True
            )
            say(f"faust floor, tuned: {results.faust_floor_tuned['events_per_second']:,.0f} events/s")
            results.peer = measure_peer(bootstrap, topics, work, args.partitions, produced, f"{run}-peer")
            say(f"peer: {results.peer}")
            results.worker = measure_worker(
                bootstrap, topics, work, args.partitions, produced, f"{run}-drain"
            )
            say(f"worker: {results.worker['events_per_second']:,.0f} events/s")
            results.worker_exactly_once = measure_worker(
                bootstrap, topics, work, args.partitions, produced, f"{run}-drain-eos", "exactly_once"
            )
            say(f"worker, exactly-once: {results.worker_exactly_once['events_per_second']:,.0f} events/s")
            if not args.quick:
                results.worker_profile = profile_worker(
                    bootstrap, topics, work, args.partitions, produced, f"{run}-drain-profiled"
                )
            for guarantee, drained in (
                ("at_least_once", results.worker),
                ("exactly_once", results.worker_exactly_once),
            ):
                suffix = "" if guarantee == "at_least_once" else "-eos"
                sustainable, trials = find_sustainable(
                    bootstrap,
                    work,
                    events_file,
                    args.partitions,
                    drained["events_per_second"],
                    args.latency_seconds / 3,
                    f"{run}-live{suffix}",
                    attempts=2 if args.quick else 8,
                    guarantee=guarantee,
                )
                say(f"sustainable live, {guarantee}: {sustainable:,.0f} events/s")
                latency = measure_latency(
                    bootstrap,
                    work,
                    events_file,
                    args.partitions,
                    0.8 * sustainable,
                    args.latency_seconds,
                    f"{run}-latency{suffix}",
                    guarantee,
                )
                say(f"latency, {guarantee}: {latency}")
                results.sustained[guarantee] = round(sustainable)
                if guarantee == "at_least_once":
                    results.sustainable, results.latency = trials, latency
                else:
                    results.sustainable_exactly_once, results.latency_exactly_once = trials, latency
            days = [2, 4] if args.quick else [10, 30, 60]
            results.soak = soak.measure(
                work,
                bootstrap,
                200 if args.quick else 2000,
                days,
                [days[0], days[-1]],
                before=not args.quick,
                partitions=args.partitions,
                run=f"{run}-soak",
            )
            results.soak["ratios"] = soak.ratios(results.soak)
            tickets = 50_000 if args.quick else 1_000_000
            say(f"reload: {tickets:,} open tickets")
            results.reload = reload_bench.measure(tickets, args.partitions, work / "reload")
    results.targets = judge(results)
    write_report(results, args.out, quick=args.quick)
    return 0


def names(prefix: str) -> dict[str, str]:
    return {role: f"{prefix}.{role}" for role in ROLES}


@contextlib.contextmanager
def broker_for(bootstrap: str | None, work: Path) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port(), heap="1g")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def routed(topics: dict[str, str]) -> Settings:
    return Settings(
        topics=Topics(tickets=topics["tickets"], calls=topics["calls"], requests=topics["requests"])
    )


async def preload(bootstrap: str, topics: dict[str, str], events_file: Path) -> int:
    settings = routed(topics)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144, acks=1)
    await producer.start()
    count = 0
    try:
        pending = []
        with events_file.open("rb") as lines:
            for line in lines:
                event = orjson.loads(line)
                pending.append(
                    await producer.send(
                        topic_for(settings, event), line.rstrip(), key=event["contract_id"].encode()
                    )
                )
                count += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def input_partitions(topics: dict[str, str], partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topics[r], p) for r in ("tickets", "calls", "requests") for p in range(partitions)]


async def measure_baseline(bootstrap: str, topics: dict[str, str], expected: int) -> dict[str, float]:
    """A plain consumer: ``getmany`` and ``orjson.loads`` of every event; the best of three reads."""
    best = 0.0
    for _ in range(3):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            assigned = input_partitions(topics, await _partition_count(bootstrap, topics["tickets"]))
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            started = time.perf_counter()
            seen = 0
            while seen < expected:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    for record in records:
                        orjson.loads(record.value)
                    seen += len(records)
            best = max(best, seen / (time.perf_counter() - started))
        finally:
            await consumer.stop()
    return {"events": expected, "events_per_second": round(best)}


async def _partition_count(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


def worker_env(
    bootstrap: str, topics: dict[str, str], work: Path, partitions: int, app: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "SLA_STREAM_BOOTSTRAP_SERVERS": bootstrap,
        "SLA_STREAM_APP_ID": app,
        "SLA_STREAM_CONTRACTS_DIR": str(work / "contracts"),
        "SLA_STREAM_PARTITIONS": str(partitions),
        "SLA_STREAM_WEB_PORT": str(free_port()),
        "SLA_STREAM_DATA_DIR": str(work / f"{app}-data"),
        "SLA_STREAM_LOG_LEVEL": "warning",
        "SLA_STREAM_MAX_FUTURE": "5m",
        **{f"SLA_STREAM_TOPIC_{role.upper()}": name for role, name in topics.items()},
    }
    return env


def measure_worker(
    bootstrap: str,
    topics: dict[str, str],
    work: Path,
    partitions: int,
    expected: int,
    app: str,
    guarantee: str = "at_least_once",
    profile: Path | None = None,
) -> dict[str, Any]:
    """The worker draining the preloaded topics under ``guarantee``, timed by its committed input
    offsets (with ``profile``, sampled by py-spy: see ``measure_drain``)."""
    command = [sys.executable, "-m", "sla_stream.cli", "worker"]
    env = {
        **worker_env(bootstrap, topics, work, partitions, app),
        "SLA_STREAM_PROCESSING_GUARANTEE": guarantee,
    }
    return measure_drain(command, env, bootstrap, topics, work, partitions, expected, app, profile)


def measure_faust_floor(
    bootstrap: str,
    topics: dict[str, str],
    work: Path,
    partitions: int,
    expected: int,
    app: str,
    tuned: bool = False,
) -> dict[str, float]:
    """A Faust agent that only reads and decodes (``faust_floor.py``), timed like the worker."""
    options = ["--tuned"] if tuned else []
    return measure_reader(
        sys.executable, "faust_floor.py", options, bootstrap, topics, work, partitions, expected, app
    )


def measure_reader(
    python: str,
    script: str,
    options: list[str],
    bootstrap: str,
    topics: dict[str, str],
    work: Path,
    partitions: int,
    expected: int,
    app: str,
) -> dict[str, Any]:
    """``python bench/SCRIPT [OPTIONS] BOOTSTRAP GROUP DATADIR TOPIC...`` (the Faust floor, the
    peer) draining the input topics, timed like the worker."""
    inputs = [topics[r] for r in ("tickets", "calls", "requests")]
    command = [
        python,
        str(Path(__file__).with_name(script)),
        *options,
        bootstrap,
        app,
        str(work / f"{app}-data"),
        *inputs,
    ]
    return measure_drain(command, dict(os.environ), bootstrap, topics, work, partitions, expected, app)


def profile_worker(
    bootstrap: str, topics: dict[str, str], work: Path, partitions: int, expected: int, app: str
) -> dict[str, Any]:
    """One more at-least-once drain, sampled by py-spy (100 a second, the worker not stopped to
    sample): where the worker's time goes, by function, own and inclusive (every thread)."""
    if not PY_SPY.exists():
        return {"not_measured": f"no {PY_SPY.relative_to(REPO)} (make bench makes it)"}
    raw = work / f"{app}.py-spy.txt"
    drained = measure_worker(bootstrap, topics, work, partitions, expected, app, profile=raw)
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += int(count)
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)

    def top(counts: dict[str, int]) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:15]
        return [{"function": f, "samples": n, "share": round(n / total, 3)} for f, n in ranked]

    return {"drain": drained, "samples": total, "own": top(own), "inclusive": top(inclusive)}


def measure_peer(
    bootstrap: str, topics: dict[str, str], work: Path, partitions: int, expected: int, app: str
) -> dict[str, Any]:
    """The Quix Streams peer (``quix_peer.py``), timed like the worker; where its environment is
    missing, why it was not measured (the report says so)."""
    if not PEER_PYTHON.exists():
        return {"not_measured": f"no {PEER_PYTHON.relative_to(REPO)} (make bench makes it)"}
    return measure_reader(
        str(PEER_PYTHON), "quix_peer.py", [], bootstrap, topics, work, partitions, expected, app
    )


def measure_drain(
    command: list[str],
    env: dict[str, str],
    bootstrap: str,
    topics: dict[str, str],
    work: Path,
    partitions: int,
    expected: int,
    app: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    """``command`` (consumer group ``app``) draining the preloaded topics, timed by its commits;
    with ``profile``, sampled by py-spy all the while into that file (its raw, collapsed stacks)."""
    log = (work / f"{app}.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    spy = None
    if profile is not None:
        record = [
            str(PY_SPY),
            "record",
            "--pid",
            str(process.pid),
            "--rate",
            "100",
            "--nonblocking",
            "--function",
        ]
        spy = subprocess.Popen(
            [*record, "--format", "raw", "--output", str(profile)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        first, done, base = asyncio.run(_watch_commits(bootstrap, app, topics, partitions, expected, process))
        peak = _peak_rss(process.pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled when interrupted
            spy.wait(60)
        process.terminate()
        process.wait(60)
        log.close()
    if done <= first:
        raise SystemExit(f"bench: {app} committed everything at its first commit; nothing to time")
    return {
        "events": expected - base,
        "seconds": round(done - first, 2),
        "events_per_second": round((expected - base) / (done - first)),
        "peak_rss_mib": round(peak / 2**20, 1),
    }


async def _watch_commits(
    bootstrap: str,
    group: str,
    topics: dict[str, str],
    partitions: int,
    expected: int,
    process: subprocess.Popen[bytes],
) -> tuple[float, float, int]:
    """``(first progress, all committed, committed at first sight)`` in perf-counter seconds."""
    wanted = set(input_partitions(topics, partitions))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    first: float | None = None
    base = 0
    deadline = time.monotonic() + 1800
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"bench: the worker exited with {process.returncode}")
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except Exception:  # the group is not there yet
                offsets = {}
            committed = sum(meta.offset for tp, meta in offsets.items() if tp in wanted and meta.offset > 0)
            now = time.perf_counter()
            if first is None and committed > 0:
                first, base = now, committed
            if committed >= expected and first is not None:
                return first, now, base
            await asyncio.sleep(0.1)
        raise SystemExit("bench: the worker did not drain the topics in 30 minutes")
    finally:
        await admin.close()


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) * 1024 if match else 0


def measure_latency(
    bootstrap: str,
    work: Path,
    events_file: Path,
    partitions: int,
    rate: float,
    seconds: float,
    app: str,
    guarantee: str = "at_least_once",
) -> dict[str, Any]:
    """Mixed traffic re-sent as it happens at ``rate`` events per second (times rewritten to
    now), with ten probe pairs a second, read back off the alert topic as they arrive, by a
    worker under ``guarantee`` (under exactly-once the reader reads committed alerts only)."""
    topics = names(app)
    asyncio.run(create_topics(bootstrap, {topics[r]: partitions for r in ROLES}))
    env = {
        **worker_env(bootstrap, topics, work, partitions, app),
        "SLA_STREAM_PROCESSING_GUARANTEE": guarantee,
    }
    log = (work / "latency-worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sla_stream.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_ready(int(env["SLA_STREAM_WEB_PORT"]), process)
        offered, received = asyncio.run(
            _offer(bootstrap, topics, events_file, rate, seconds, committed_only=guarantee == "exactly_once")
        )
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    event_ms = sorted(r["received"] - r["observed"] for r in received if r["id"].startswith("E-"))
    deadline_ms = sorted(r["received"] - r["deadline"] for r in received if r["id"].startswith("D-"))
    return {
        "offered_events_per_second": round(offered),
        "target_rate": round(rate),
        "event_to_alert_ms": _percentiles(event_ms),
        "deadline_to_alert_ms": _percentiles(deadline_ms),
        "probes": {"event": len(event_ms), "deadline": len(deadline_ms)},
    }


def find_sustainable(
    bootstrap: str,
    work: Path,
    events_file: Path,
    partitions: int,
    drain: float,
    seconds: float,
    app: str,
    attempts: int = 8,
    guarantee: str = "at_least_once",
) -> tuple[float, list[dict[str, float]]]:
    """The highest live rate the worker keeps up with, and the trials that found it.

    Draining a backlog fills every batch; live traffic does not, so the worker sustains less
    live than it drains. From the drain rate down in steps of 20%, each rate is offered for
    ``seconds``: kept up with if event-to-alert p99 stayed under a second (a worker falling
    behind builds a queue, and the delay grows with it)."""
    rate, trials = drain, []
    for attempt in range(attempts):
        measured = measure_latency(
            bootstrap, work, events_file, partitions, rate, seconds, f"{app}{attempt}", guarantee
        )
        p99 = measured["event_to_alert_ms"].get("p99") or float("inf")
        trials.append({"offered": measured["offered_events_per_second"], "event_to_alert_p99_ms": p99})
        say(f"live at {rate:,.0f} events/s: event-to-alert p99 {p99:,.0f} ms")
        if p99 < 1000:
            return rate, trials
        if attempt < attempts - 1:
            rate *= 0.8
    say(f"no rate tried was kept up with; the lowest tried, {rate:,.0f} events/s, stands in")
    return rate, trials


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: the latency worker exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise SystemExit("bench: the latency worker was not ready in time")


async def _offer(
    bootstrap: str,
    topics: dict[str, str],
    events_file: Path,
    rate: float,
    seconds: float,
    committed_only: bool = False,
) -> tuple[float, list[dict[str, Any]]]:
    settings = routed(topics)
    received: list[dict[str, Any]] = []
    reader = AIOKafkaConsumer(
        topics["alerts"],
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await reader.start()
    await reader.getmany(timeout_ms=500)  # joined, at the end of the topic

    async def read() -> None:
        while True:
            batches = await reader.getmany(timeout_ms=100)
            now = time.time_ns() // 1_000_000
            for records in batches.values():
                for record in records:
                    alert = orjson.loads(record.value)
                    if alert["contract_id"] == "probe" and alert["kind"] == "breach":
                        received.append(
                            {
                                "id": alert["subject"]["id"],
                                "received": now,
                                "observed": traffic.epoch_ms(alert["observed_at"]),
                                "deadline": traffic.epoch_ms(alert["deadline"]),
                            }
                        )

    reading = asyncio.create_task(read())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        lines = events_file.open("rb")
        probes = 0
        pending_changes: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                line = lines.readline()
                if not line:
                    lines.seek(0)
                    line = lines.readline()
                event = orjson.loads(line)
                event["occurred_at"] = _now_ts()
                event["event_id"] = f"{event['event_id']}/{sent}"
                await producer.send(
                    topic_for(settings, event), orjson.dumps(event), key=event["contract_id"].encode()
                )
                sent += 1
            while probes < elapsed * 10:  # ten probe pairs a second
                await _probe(producer, topics, "ticket.created", f"D-{probes}", "P1")
                await _probe(producer, topics, "ticket.created", f"E-{probes}", "P4")
                pending_changes.append((time.monotonic() + 1.5, probes))
                probes += 1
            while pending_changes and pending_changes[0][0] <= time.monotonic():
                _, n = pending_changes.pop(0)
                await _probe(producer, topics, "ticket.priority_changed", f"E-{n}", "P1")
            await asyncio.sleep(0.002)
        await producer.flush()
        await asyncio.sleep(5)  # the last probes' alerts
    finally:
        reading.cancel()
        await producer.stop()
        await reader.stop()
    return sent / (time.monotonic() - started - 5), received


async def _probe(
    producer: AIOKafkaProducer, topics: dict[str, str], kind: str, ticket: str, priority: str
) -> None:
    event = {
        "event_id": f"{ticket}-{kind}",
        "type": kind,
        "contract_id": "probe",
        "occurred_at": _now_ts(),
        "ticket_id": ticket,
        "priority": priority,
    }
    await producer.send(topics["tickets"], orjson.dumps(event), key=b"probe")


def _now_ts() -> str:
    from datetime import UTC

    return format_ts(time.time_ns() // 1_000_000, UTC)


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}

    def at(q: float) -> float:
        return float(values[min(len(values) - 1, int(q * len(values)))])

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "max": float(values[-1]),
        "samples": len(values),
    }


def judge(results: Results) -> list[dict[str, Any]]:
    rows = []
    for guarantee, worker in (
        ("at-least-once", results.worker),
        ("exactly-once", results.worker_exactly_once),
    ):
        rate = worker["events_per_second"]
        rows += [
            (
                "worker_vs_baseline",
                rate / results.baseline["events_per_second"],
                ">=",
                f"worker drain ÷ plain consumer, {guarantee}",
            ),
            (
                "worker_vs_tuned_floor",
                rate / results.faust_floor_tuned["events_per_second"],
                ">=",
                f"worker drain ÷ tuned Faust floor, {guarantee}",
            ),
        ]
        if "events_per_second" in results.peer:
            rows.append(
                (
                    "worker_vs_peer",
                    rate / results.peer["events_per_second"],
                    ">=",
                    f"worker drain ÷ Quix Streams peer (one stateful update a message), {guarantee}",
                )
            )
    rows += [
        (
            "replay_events_per_second",
            results.replay["events_per_second"],
            ">=",
            "replay on the bench's mix, events/s on one core",
        ),
        (
            "bytes_per_open_ticket",
            results.memory["bytes_per_open_ticket"],
            "<",
            "memory per open ticket (bytes), in-memory store",
        ),
    ]
    for guarantee, drained, latency in (
        ("at-least-once", results.worker, results.latency),
        ("exactly-once", results.worker_exactly_once, results.latency_exactly_once),
    ):
        sustained = results.sustained.get(guarantee.replace("-", "_"), 0.0)
        rows.append(
            (
                "live_vs_drain",
                sustained / drained["events_per_second"],
                ">=",
                f"sustained live rate ÷ drain rate, {guarantee}",
            )
        )
        for kind, key in (("deadline", "deadline_to_alert_ms"), ("event", "event_to_alert_ms")):
            for q in ("p50", "p99"):
                value = (latency.get(key) or {}).get(q)
                seconds = float("inf") if value is None else value / 1000
                what = f"{kind}-to-alert {q} (s) at 80% of the sustained live rate, {guarantee}"
                rows.append((f"{kind}_{q}_seconds", seconds, "<=", what))
    longest = results.soak["replay"][-1]["days"] if results.soak.get("replay") else 0
    shortest = results.soak["replay"][0]["days"] if results.soak.get("replay") else 0
    for name, what in (
        ("replay_memory", "replay's peak memory"),
        ("replay_entries", "replay's state entries at the end"),
        ("worker_live_keys", "the worker's live changelog keys"),
        ("worker_recovery", "the worker's recovery time after a restart"),
    ):
        if name in results.soak.get("ratios", {}):
            value = results.soak["ratios"][name]
            rows.append((f"soak_{name}", value, "<=", f"soak: {what}, {longest} days ÷ {shortest} days"))
    if results.reload:
        tickets = results.reload["tickets"]
        what = f"a contract reload with {tickets:,} open tickets: the event loop's longest hold (s)"
        rows.append(("reload_loop_held_seconds", results.reload["changed"]["loop_held_s"], "<=", what))
    judged_rows = [judged(name, what, value, op, TARGETS[name]) for name, value, op, what in rows]
    if "events_per_second" not in results.peer:
        judged_rows.insert(
            4,
            {
                "name": "worker_vs_peer",
                "what": "worker drain ÷ Quix Streams peer",
                "not_measured": results.peer.get("not_measured", "not run"),
            },
        )
    return judged_rows


def write_report(results: Results, out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench-quick" if quick else "bench"
    (out / f"{stem}.json").write_text(json.dumps(asdict(results), indent=2) + "\n")
    r = results
    base = r.baseline["events_per_second"]
    lines = [
        "# sla-stream benchmark" + (" (quick smoke run: numbers mean nothing)" if quick else ""),
        "",
        f"`python bench/run.py` ({'--quick, ' if quick else ''}{r.parameters['events']:,} events,"
        f" {r.parameters['partitions']} partitions, seed {r.parameters['seed']}),"
        f" {time.strftime('%Y-%m-%d', time.gmtime())}, Python {r.machine['python']},"
        f" {r.machine['cpus']} cores ({r.machine['platform']}).",
        "",
        row("measure", "events/s", "vs baseline", "peak RSS"),
        row("---", "---:", "---:", "---:"),
        row("1. baseline: aiokafka `getmany` + `orjson.loads`", f"{base:,}", "1.00", ""),
    ]
    for label, measured in (
        ("1b. Faust floor: an agent that only reads and decodes", r.faust_floor),
        ("1c. Faust floor, tuned (5,000 records a poll, 20,000 buffered)", r.faust_floor_tuned),
        ("1d. peer: Quix Streams, one stateful update a message", r.peer),
        ("2. worker, at-least-once: full path (state, deadlines, alerts, statements, metrics)", r.worker),
        ("2b. worker, exactly-once", r.worker_exactly_once),
        ("3. replay: the engine alone, one core (the bench's mix)", r.replay),
    ):
        if "events_per_second" not in measured:
            lines.append(row(label, f"not measured: {measured.get('not_measured', 'not run')}", "", ""))
            continue
        rate = measured["events_per_second"]
        lines.append(row(label, f"{rate:,}", f"{rate / base:.2f}", f"{measured['peak_rss_mib']} MiB"))
    if r.faust_floor:
        lines += [
            "",
            f"The Faust floor runs at {r.faust_floor['events_per_second'] / base:.2f} of the baseline's"
            " rate (Faust's own per-message path); the worker at"
            f" {r.worker['events_per_second'] / r.faust_floor['events_per_second']:.2f} of the floor's.",
        ]
    lines += [
        "",
        "Live traffic fills batches less than a backlog does, so the worker sustains less live than"
        " it drains. Rates tried from the drain rate down, 20% at a time, until event-to-alert p99"
        " stayed under a second:",
        "",
    ]
    for guarantee, trials in (
        ("at-least-once", r.sustainable),
        ("exactly-once", r.sustainable_exactly_once),
    ):
        tried = ", ".join(f"{t['offered']:,.0f}/s (p99 {t['event_to_alert_p99_ms']:,.0f} ms)" for t in trials)
        lines.append(f"- {guarantee}: {tried or 'not measured'}.")
    for guarantee, lat in (("at-least-once", r.latency), ("exactly-once", r.latency_exactly_once)):
        if not lat:
            continue
        lines += [
            "",
            f"Latency, {guarantee}, at {lat['offered_events_per_second']:,} events/s offered (80% of"
            " the sustainable rate), read off the alert topic as a consumer sees it"
            + (" (committed alerts only)" if guarantee == "exactly-once" else "")
            + ", in milliseconds:",
            "",
            row("", "p50", "p99", "p99.9", "max", "samples"),
            row("---", "---:", "---:", "---:", "---:", "---:"),
        ]
        for label, key in (
            ("event to alert", "event_to_alert_ms"),
            ("deadline to alert", "deadline_to_alert_ms"),
        ):
            p = lat.get(key) or {}
            lines.append(row(label, *(p.get(k) for k in ("p50", "p99", "p99.9", "max", "samples"))))
    replay_stem = "replay-quick" if quick else "replay"
    sources = r.replay_sources
    mine = {t["name"] for t in r.targets}
    targets = r.targets + [t for t in sources["targets"] if t["name"] not in mine]
    spied = r.worker_profile
    if spied.get("samples"):
        drain = spied["drain"]["events_per_second"]
        lines += [
            "",
            "## Where the worker's time goes",
            "",
            f"py-spy over one more at-least-once drain ({drain:,} events/s while sampled;"
            f" {spied['samples']:,} samples at 100 a second, every thread), top functions by own"
            " samples, then by samples they are on the stack for:",
            "",
            row("own", "share", "inclusive", "share"),
            row("---", "---:", "---", "---:"),
        ]
        for mine, under in zip(spied["own"], spied["inclusive"], strict=False):
            lines.append(
                row(
                    f"`{mine['function']}`",
                    f"{mine['share']:.1%}",
                    f"`{under['function']}`",
                    f"{under['share']:.1%}",
                )
            )
    elif spied:
        lines += ["", f"Worker profile: not measured ({spied.get('not_measured', 'no samples')})."]
    lines += [
        "",
        f"Memory per open ticket in the in-memory store: {r.memory['bytes_per_open_ticket']:,} bytes"
        f" ({r.memory['open_tickets']:,} open tickets through the worker's pipeline onto a dict).",
        "",
        *(soak.report(r.soak) if r.soak else []),
        *(reload_bench.report(r.reload) if r.reload else []),
        "## Replay per source",
        "",
        f"Each mix against a parse-and-update floor over the same file (`orjson.loads` and one dict"
        f" update per event), in {sources['parameters']['repeats']} interleaved round(s), medians; how"
        f" it is measured, and replay's profile per mix, in [{replay_stem}.md]({replay_stem}.md).",
        "",
        *replay_mixes.per_source_table(sources),
        "",
        "## Targets",
        "",
        *target_table(targets),
    ]
    missed = misses(targets)
    if missed:
        lines += ["", "Missed:", "", *missed]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    say(f"report: {out / (stem + '.md')}")


if __name__ == "__main__":
    raise SystemExit(main())
