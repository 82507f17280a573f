"""Replay speed on request events: ``python bench/replay_requests.py [--events N]``.

Writes N single ``request`` events (default 10,000,000) for the example contracts' request
objectives to a file, then runs the engine over it exactly as ``sla-stream replay`` does,
and reports events per second, alerts and peak memory to ``bench/results/``. The traffic:
four services per contract, a steady low error rate broken by incidents of a few percent
errors, latencies around 100 ms with a slow tail, occurred_at advancing in event time at a
rate that spans several days, so windows fill, slide and drop buckets.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts, to_ms
from sla_stream.replay import ReplayStats, read_lines, replay

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("checkout", "search", "login", "catalog")


def write_events(path: Path, contracts: dict, count: int, seed: int = 1) -> tuple[int, int]:
    """``count`` request events in time order; returns the first and last event times."""
    rng = random.Random(seed)
    served = sorted(c for c in contracts if contracts[c].requests is not None)
    start = to_ms(datetime(2026, 11, 2, tzinfo=UTC))
    step = 40  # ms of event time per event: 10M events span about 4.6 days
    at = start
    incident: dict[tuple[str, str], int] = {}
    with path.open("wb") as out:
        for n in range(count):
            at += rng.randrange(step * 2)
            contract = served[n % len(served)]
            service = SERVICES[rng.randrange(len(SERVICES))]
            key = (contract, service)
            if incident.get(key, 0) < at and rng.random() < 0.000_01:
                incident[key] = at + rng.randrange(5 * 60_000, 90 * 60_000)
            hot = incident.get(key, 0) >= at
            bad = rng.random() < (0.03 if hot else 0.0004)
            record = {
                "event_id": f"r{n}",
                "type": "request",
                "contract_id": contract,
                "occurred_at": format_ts(at, UTC),
                "service": service,
                "status": 503 if bad else 200,
                "latency_ms": round(rng.lognormvariate(4.6, 0.5 if not hot else 1.0), 1),
            }
            out.write(orjson.dumps(record) + b"\n")
    return start, at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--file", type=Path, default=REPO / "var" / "bench" / "requests.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    contracts = load_dir(REPO / "examples" / "contracts")
    args.file.parent.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    began = time.perf_counter()
    first, last = write_events(args.file, contracts, args.events)
    written = time.perf_counter() - began
    print(f"bench: wrote {args.events:,} request events in {written:.0f}s", file=sys.stderr)

    stats = ReplayStats()
    kinds: dict[str, int] = {}
    began = time.perf_counter()
    for alert in replay(contracts, read_lines([args.file]), allowed_lateness=300_000, stats=stats):
        kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
    spent = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "benchmark": "replay of single request events",
        "events": stats.events,
        "seconds": round(spent, 2),
        "events_per_second": round(stats.events / spent),
        "alerts": stats.alerts,
        "alerts_by_kind": kinds,
        "rejected": stats.rejected,
        "event_time_span_hours": round((last - first) / 3_600_000, 1),
        "peak_rss_mib": round(peak_mib),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.processor() or 'unknown cpu'}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    (args.out / "replay-requests.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "replay-requests.md").write_text(
        "# Replay of request events\n\n"
        f"`python bench/replay_requests.py --events {args.events}` on {result['date']}"
        f" (Python {result['python']}, {result['machine']}).\n\n"
        "| measure | value |\n|---|---|\n"
        f"| events | {stats.events:,} single `request` events,"
        f" {result['event_time_span_hours']} h of event time |\n"
        f"| time | {spent:.1f} s |\n"
        f"| **events per second** | **{result['events_per_second']:,}** |\n"
        f"| alerts | {stats.alerts:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))}) |\n"
        f"| peak memory (RSS) | {result['peak_rss_mib']} MiB |\n"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
