"""The soak: months of a helpdesk's constant traffic, in bounded state (issue 23).

A helpdesk at a constant rate (by default 2,000 tickets a day over eight contracts): each ticket
answered in 20 minutes, solved two to six hours after it was opened, closed a day after that;
one in ten solved and never closed. The same traffic over more days has the same open work, so
state and memory should not grow with the days:

- **replay**: ``replay`` over 10, 30 and 60 days of it, each in a process of its own: peak
  resident memory and the state entries left at the end (tickets and the markers of those that
  left), for this code and, in the same run, for the code before finished work left the state;
- **worker**: ``sla-stream worker`` draining 10 and 60 days of it (the last event a minute ago),
  its state changelog then read back (the keys whose latest record is not a deletion: what
  compaction keeps), and the time a worker started again takes to recover that state and be
  ready (``/readyz``), with the changelog's segments short enough to be compacted meanwhile.

Run by ``bench/run.py`` (``make bench``); alone: ``python bench/soak.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay_mixes
from reporting import say

from sla_stream.engine.time import format_ts

REPO = Path(__file__).resolve().parent.parent
BEFORE_COMMIT = "a242919"
"""The code before finished work left the state: the replay baseline, measured in the same run."""
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
CONTRACTS = 8
CONTRACT = """version: 1
id: {id}
timezone: UTC
tickets:
  priorities: [P1, P2, P3]
  objectives:
    first_response: {{targets: {{P1: 30m, P2: 1h, P3: 4h}}}}
    resolution:     {{targets: {{P1: 4h, P2: 8h, P3: 1d}}}}
"""

_REPLAY = r"""
import json, re, sys, time
from pathlib import Path
from sla_stream.contracts import load_dir
from sla_stream.replay import ReplayStats, replay

contracts = load_dir(Path(sys.argv[1]))

def lines():
    with open(sys.argv[2], "rb") as handle:
        for number, line in enumerate(handle, 1):
            yield "events", number, line

stats = ReplayStats()
started = time.perf_counter()
alerts = sum(1 for _ in replay(contracts, lines(), None, 5 * 60_000, stats=stats))
seconds = time.perf_counter() - started
tickets = [t for engine in stats.engines for t in engine.tickets.values()]
print(json.dumps({
    "events": stats.events,
    "alerts": alerts,
    "seconds": seconds,
    "entries": len(tickets),
    "markers": sum(1 for t in tickets if getattr(t, "gone", None) is not None),
    # This process's own high-water mark (getrusage's keeps the parent's from before the exec).
    "peak_rss_mib": int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024,
}))
"""


def write_contracts(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(CONTRACTS):
        (directory / f"desk-{n}.yaml").write_text(CONTRACT.format(id=f"desk-{n}"))


def write_helpdesk(path: Path, days: int, per_day: int, end: int, seed: int = 1) -> int:
    """``days`` of the helpdesk's events as JSON lines, in time order, the last at ``end``."""
    rng = random.Random(seed)
    start = end - days * DAY
    timed: list[tuple[int, int, dict[str, Any]]] = []
    sequence = 0
    for day in range(days):
        for n in range(per_day):
            opened = start + day * DAY + n * (DAY // per_day) + rng.randrange(DAY // per_day)
            contract = f"desk-{n % CONTRACTS}"
            ticket = f"T{day}-{n}"
            priority = ("P1", "P2", "P3")[rng.randrange(3)]
            solved = opened + rng.randrange(2 * HOUR, 6 * HOUR)
            steps = [
                (opened, {"type": "ticket.created", "priority": priority}),
                (opened + 20 * MINUTE, {"type": "ticket.agent_replied"}),
                (solved, {"type": "ticket.status_changed", "status": "solved"}),
            ]
            if rng.randrange(10):
                steps.append((solved + DAY, {"type": "ticket.status_changed", "status": "closed"}))
            for at, fields in steps:
                if at > end:
                    continue
                sequence += 1
                event = {
                    "event_id": f"e{sequence}",
                    "contract_id": contract,
                    "occurred_at": format_ts(at, UTC),
                    "ticket_id": ticket,
                    **fields,
                }
                timed.append((at, sequence, event))
    timed.sort(key=lambda entry: entry[:2])
    with path.open("wb") as out:
        for _, _, event in timed:
            out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    return len(timed)


def measure_replay(work: Path, days: list[int], per_day: int, before: bool) -> list[dict[str, Any]]:
    """Replay of each length of traffic, by this code and (``before``) the baseline's."""
    codes = [("now", REPO)]
    if before:
        baseline = work / "soak-before"
        replay_mixes.archive(BEFORE_COMMIT, baseline)
        codes.append(("before", baseline))
    rows = []
    end = int(time.time() * 1000) // DAY * DAY
    for length in days:
        events = work / f"soak-{length}d.jsonl"
        write_helpdesk(events, length, per_day, end)
        for name, code in codes:
            done = subprocess.run(
                [sys.executable, "-c", _REPLAY, str(work / "soak-contracts"), str(events)],
                capture_output=True,
                check=True,
                cwd=code,
                env=replay_mixes.code_env(code),
            )
            row = {"days": length, "code": name, **json.loads(done.stdout)}
            say(f"soak, replay {length} days ({name}): {row}")
            rows.append(row)
        events.unlink()
    return rows


async def live_keys(bootstrap: str, topic: str) -> dict[str, int]:
    """What compaction of ``topic`` keeps: keys whose latest record is not a deletion, and of
    those the ticket markers; with every record read."""
    import run as bench

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(await bench._partition_count(bootstrap, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        latest: dict[bytes, bytes | None] = {}
        records = 0
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in batch:
                    latest[record.key] = record.value
                    records += 1
        live = {key: value for key, value in latest.items() if value is not None}
        return {
            "records": records,
            "live_keys": len(live),
            "ticket_keys": sum(1 for key in live if key.startswith(b"t")),
            "markers": sum(1 for key, value in live.items() if key.startswith(b"t") and b'"gone"' in value),
        }
    finally:
        await consumer.stop()


async def _compact_now(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # AlterConfigs replaces every override of the topic: the compaction Faust set is one.
        configs = {
            "cleanup.policy": "compact",
            "delete.retention.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
            "segment.ms": "5000",
        }
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


def measure_worker(
    bootstrap: str, work: Path, days: list[int], per_day: int, partitions: int, run: str
) -> list[dict[str, Any]]:
    """The worker over each length of traffic: its state entries once drained, and the time a
    restarted worker takes to recover them."""
    import run as bench  # the bench's broker and worker helpers

    from sla_stream.local_kafka import create_topics

    rows = []
    for length in days:
        events = work / f"soak-worker-{length}d.jsonl"
        produced = write_helpdesk(events, length, per_day, int(time.time() * 1000) - MINUTE)
        topics = bench.names(f"{run}-soak{length}")
        asyncio.run(create_topics(bootstrap, {topics[r]: partitions for r in bench.ROLES}))
        asyncio.run(bench.preload(bootstrap, topics, events))
        app = f"{run}-soak{length}"
        env = {
            **bench.worker_env(bootstrap, topics, work, partitions, app),
            "SLA_STREAM_CONTRACTS_DIR": str(work / "soak-contracts"),
            # Segments roll within the bench, so the broker compacts the changelog meanwhile.
            "SLA_STREAM_CHANGELOG_SEGMENT": "5s",
        }
        command = [sys.executable, "-m", "sla_stream.cli", "worker"]
        with (work / f"{app}.log").open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            try:
                started = time.perf_counter()
                _, done, _ = asyncio.run(
                    bench._watch_commits(bootstrap, app, topics, partitions, produced, process)
                )
                drained = {"seconds": done - started, "peak_rss_mib": bench._peak_rss(process.pid) / 2**20}
                time.sleep(5)  # ticks move the clocks to the wall clock: what is due leaves
            finally:
                process.terminate()
                process.wait(60)
        # Months of traffic went by in minutes: the deletions are days old by their event time
        # but seconds by the broker's clock, which keeps them a day (delete.retention.ms) before
        # compaction drops them. Let it drop them now, as it would have on a worker running for
        # the months the traffic spans; then read until the log cleaner (every 15 s or so, a log
        # at a time) has caught up, or two minutes passed.
        asyncio.run(_compact_now(bootstrap, f"{app}-state-changelog"))
        deadline = time.monotonic() + 120
        while True:
            time.sleep(15)
            state = asyncio.run(live_keys(bootstrap, f"{app}-state-changelog"))
            if state["records"] <= 1.2 * state["live_keys"] or time.monotonic() > deadline:
                break
        log = (work / f"{app}-recovery.log").open("wb")
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            bench._wait_ready(int(env["SLA_STREAM_WEB_PORT"]), process, timeout=600)
            recovery = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(60)
            log.close()
        row = {
            "days": length,
            "events": produced,
            "drain_seconds": round(drained["seconds"], 2),
            "peak_rss_mib": round(drained["peak_rss_mib"], 1),
            **state,
            "recovery_seconds": round(recovery, 2),
        }
        say(f"soak, worker {length} days: {row}")
        rows.append(row)
        events.unlink()
    return rows


def measure(
    work: Path,
    bootstrap: str | None,
    per_day: int,
    replay_days: list[int],
    worker_days: list[int],
    before: bool,
    partitions: int = 4,
    run: str = "soak",
) -> dict[str, Any]:
    write_contracts(work / "soak-contracts")
    found: dict[str, Any] = {"per_day": per_day, "before_commit": BEFORE_COMMIT if before else None}
    found["replay"] = measure_replay(work, replay_days, per_day, before)
    if bootstrap is not None:
        found["worker"] = measure_worker(bootstrap, work, worker_days, per_day, partitions, run)
    return found


def ratios(found: dict[str, Any]) -> dict[str, float]:
    """Longest over shortest traffic: replay's peak memory and state entries, the worker's live
    state keys and recovery time (this code's)."""
    out: dict[str, float] = {}
    replay = [row for row in found.get("replay", []) if row["code"] == "now"]
    if len(replay) >= 2:
        first, last = replay[0], replay[-1]
        out["replay_memory"] = round(last["peak_rss_mib"] / first["peak_rss_mib"], 2)
        out["replay_entries"] = round(last["entries"] / max(first["entries"], 1), 2)
    before = [row for row in found.get("replay", []) if row["code"] == "before"]
    if len(before) >= 2:
        out["replay_memory_before"] = round(before[-1]["peak_rss_mib"] / before[0]["peak_rss_mib"], 2)
    worker = found.get("worker", [])
    if len(worker) >= 2:
        out["worker_live_keys"] = round(worker[-1]["live_keys"] / max(worker[0]["live_keys"], 1), 2)
        out["worker_recovery"] = round(worker[-1]["recovery_seconds"] / worker[0]["recovery_seconds"], 2)
    return out


def report(found: dict[str, Any]) -> list[str]:
    """The soak's section of the bench report."""
    lines = [
        "## Months of traffic (the soak)",
        "",
        f"A helpdesk at {found['per_day']:,} tickets a day over {CONTRACTS} contracts, each answered in 20"
        " minutes, solved two to six hours after it opened and closed a day later (one in ten never"
        " closed: those leave after the 7-day retention). The open work is the same whatever the"
        " days, so state and memory should be too (`bench/soak.py`).",
        "",
        "Replay, each in a process of its own (peak resident memory; state entries left at the end,"
        " of which markers of tickets that left):",
        "",
        "| days | code | events | events/s | peak RSS | state entries | markers |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in found["replay"]:
        code = "this" if row["code"] == "now" else f"before ({found['before_commit']})"
        lines.append(
            f"| {row['days']} | {code} | {row['events']:,} | {row['events'] / row['seconds']:,.0f} |"
            f" {row['peak_rss_mib']:.1f} MiB | {row['entries']:,} | {row['markers']:,} |"
        )
    if found.get("worker"):
        lines += [
            "",
            "The worker (at-least-once, memory store) draining the same traffic, its last event a"
            " minute ago; then its state changelog read back (keys whose latest record is not a"
            " deletion: what compaction keeps), and a worker started again timed until it is ready:",
            "",
            "| days | events | drained in | peak RSS | changelog records | live keys | ticket keys"
            " | markers | recovery |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in found["worker"]:
            lines.append(
                f"| {row['days']} | {row['events']:,} | {row['drain_seconds']:.1f} s |"
                f" {row['peak_rss_mib']:.1f} MiB | {row['records']:,} | {row['live_keys']:,} |"
                f" {row['ticket_keys']:,} | {row['markers']:,} | {row['recovery_seconds']:.1f} s |"
            )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--bootstrap", help="also soak the worker, on this broker")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sla-soak-") as tmp:
        days = [2, 4] if args.quick else [10, 30, 60]
        found = measure(Path(tmp), args.bootstrap, args.per_day, days, [days[0], days[-1]], not args.quick)
    found["ratios"] = ratios(found)
    print("\n".join(report(found)))
    print(json.dumps(found["ratios"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
