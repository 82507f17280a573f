"""Replay per source: ``python bench/replay_mixes.py`` (``make bench-replay``; ``make bench`` runs it too).

For each mix of ``mixes.py`` (the bench's mix, then tickets, calls, requests and items, about
100,000 events each), in one run on one machine:

1. **floor**: in this process, on one core, each line of the mix's file read, ``orjson.loads``-ed
   and one dict entry updated (``state[(contract_id, ticket_id)] = occurred_at``): what any
   Python consumer of the same file pays before it does anything;
2. **replay**: ``sla-stream replay --stats --penalties /dev/null`` over the same file, alerts to
   /dev/null, its rate read off the ``replayed N events in Xs (R events/s)`` line (the time from
   the first line read to the last alert and statement written; not the interpreter's start or
   the contracts' loading), and its peak resident memory (its process's own VmHWM);
3. **before**: the same replay of the code before the engine work (``--before``, default
   ``BEFORE_COMMIT``; a git archive of that commit's ``sla_stream/``), right before or after
   replay in every round (the order alternates), so that both see the same machine load;

``--repeats`` rounds, every mix in each: a floor pass, replay and before, another floor pass (the
floor of that round is both passes together), so that a machine busy for a while slows all alike;
the report gives medians and the medians of the rounds' ratios replay ÷ floor and now ÷ before
(replay's rate over before's); the peak memory targets compare with before's peak measured in the
same run (``--before none``: no before runs, and the figures of ``BEFORE_PEAK_RSS_MIB``). Then a cProfile of
one more replay per mix (top 15 functions by own time, and own time per file), and the worker's
memory per open ticket.

Writes ``replay.md`` and ``replay.json`` to ``--out`` (default ``bench/results``), with each target,
whether it is met and by how much.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import itertools
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mixes
import traffic
from reporting import judged, machine, misses, row, say, target_table

REPO = Path(__file__).resolve().parent.parent

REPLAY_RATE = 250_000
"""Replay on the bench's mix, events per second on one core (issue 21)."""
FLOOR_SHARE = 0.3
"""Replay ÷ the parse-and-update floor, on every mix (issue 21)."""
BYTES_PER_TICKET = 1024
"""Memory per open ticket in the worker's in-memory store: under 1 KiB."""

BEFORE_COMMIT = "63ec52b"
"""The code before issue 21's engine work, whose memory figures replay must stay within."""
BEFORE_BYTES_PER_TICKET = 858
"""Memory per open ticket at that commit (bench/results/bench.md; this script measured 861 bytes for
it, twice, on the machine of the committed report)."""
BEFORE_PEAK_RSS_MIB: dict[str, float] = {
    "mix": 96.1,
    "tickets": 126.4,
    "calls": 49.2,
    "requests": 76.2,
    "items": 204.2,
}
"""Replay's peak resident memory per mix of 100,000 events at that commit, measured by this script
(``--commit 63ec52b``; Python 3.11.7, the machine of the committed report): the memory targets'
figures only with ``--before none`` (otherwise they compare with the same run's before)."""
MEMORY_NOISE = 0.02
"""What a memory figure may exceed its value before, for run-to-run noise (allocator, pages)."""

_STATS = re.compile(r"replayed (\d+) events in ([\d.]+)s \(([\d,]+) events/s\), (\d+) alerts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per mix (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="floor and replay runs per mix (default 3)")
    parser.add_argument("--mixes", default=",".join(mixes.MIXES), help="which mixes, comma-separated")
    parser.add_argument("--open-tickets", type=int, default=100_000, help="tickets for memory per ticket")
    parser.add_argument(
        "--profile-events", type=int, default=30_000, help="events per mix profiled (0: all; default 30,000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--code", type=Path, default=REPO, help="a checkout whose sla_stream replay runs (default this one)"
    )
    which.add_argument(
        "--commit",
        help="measure the sla_stream of this commit (a git archive of it), not the work tree's",
    )
    parser.add_argument(
        "--before",
        default=BEFORE_COMMIT,
        help=f"also replay this commit's sla_stream in every round, to compare (default {BEFORE_COMMIT};"
        " none: do not)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="a small run that only checks the harness works")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeats, args.open_tickets = 10_000, 1, 5_000
    names = [n.strip() for n in args.mixes.split(",") if n.strip()]
    unknown = sorted(set(names) - set(mixes.MIXES))
    if unknown:
        parser.error(
            f"--mixes: no mix named {', '.join(unknown)} (expected some of {', '.join(mixes.MIXES)})"
        )
    with tempfile.TemporaryDirectory(prefix="sla-bench-code-") as tmp:
        code, named, before = args.code.resolve(), None, None
        for option, rev in (("--commit", args.commit), ("--before", args.before)):
            if rev is None or (option == "--before" and rev.lower() == "none"):
                continue
            try:
                short = archive(rev, Path(tmp, option[2:]))
            except subprocess.CalledProcessError:
                parser.error(f"{option}: no commit {rev!r} in {REPO}")
            if option == "--commit":
                code, named = Path(tmp, "commit"), short
            else:
                before = Path(tmp, "before"), short
        results = measure(
            names,
            args.events,
            args.repeats,
            args.seed,
            code,
            args.open_tickets,
            args.profile_events,
            named,
            before,
        )
    given = sys.argv[1:] if argv is None else argv
    results["parameters"]["command"] = " ".join(
        ["make bench-replay" if not given else "python bench/replay_mixes.py", *given]
    )
    write_report(results, args.out, quick=args.quick)
    return 0


def measure(
    names: list[str],
    events: int,
    repeats: int,
    seed: int,
    code: Path,
    open_tickets: int,
    profile_events: int = 30_000,
    commit: str | None = None,
    before: tuple[Path, str] | None = None,
) -> dict[str, Any]:
    """Every measurement of the replay part, as written to replay.json; ``commit`` names the code
    in ``code`` where it is not a git checkout (an :func:`archive` of that commit). ``before``, the
    code before the engine work and its commit (an :func:`archive`), is replayed in every round
    next to ``code``, and compared with it."""
    results: dict[str, Any] = {
        "parameters": {
            "events": events,
            "repeats": repeats,
            "seed": seed,
            "mixes": names,
            "profile_events": profile_events,
        },
        "machine": machine(),
        "load_average": {"start": round(os.getloadavg()[0], 2)},
        "code": code_version(code) if commit is None else {"path": "", "commit": commit, "dirty": False},
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    if before is not None:
        results["before"] = {"commit": before[1]}
    with tempfile.TemporaryDirectory(prefix="sla-bench-replay-") as tmp:
        work = Path(tmp)
        written = {}
        for name in names:
            began = time.perf_counter()
            written[name] = mixes.write(name, work / name, events, seed)
            say(f"{name}: {written[name].count:,} events written in {time.perf_counter() - began:.0f}s")
        gc.collect()
        runs: dict[str, dict[str, list[Any]]] = {name: {"floor": [], "replay": []} for name in names}
        if before is not None:
            for name in names:
                runs[name]["before"] = []
        for round_ in range(repeats):
            for name in names:
                mix = written[name]
                first = floor(mix.events)
                replay_round(mix, code, before[0] if before else None, runs[name], first_now=round_ % 2 == 0)
                runs[name]["floor"].append(bracket(first, floor(mix.events)))
                floor_rate = runs[name]["floor"][-1]["events_per_second"]
                replay_rate = runs[name]["replay"][-1]["events_per_second"]
                said = (
                    f"round {round_ + 1}/{repeats}, {name}: floor {floor_rate:,} events/s,"
                    f" replay {replay_rate:,} events/s ({replay_rate / floor_rate:.3f} of the floor)"
                )
                if before is not None:
                    before_rate = runs[name]["before"][-1]["events_per_second"]
                    said += (
                        f", {before[1]} {before_rate:,} events/s (now {replay_rate / before_rate:.3f} of it)"
                    )
                say(said)
        results["mixes"] = []
        for name in names:
            mix = written[name]
            profile = profile_replay(mix, code, profile_events)
            say(f"{name}: profiled")
            results["mixes"].append(summarize(mix, runs[name], profile))
        memory_contracts = work / "memory-contracts"
        traffic.write_contracts(memory_contracts, 40)
        results["memory"] = measure_ticket_memory(memory_contracts, open_tickets, code)
        say(f"memory: {results['memory']['bytes_per_open_ticket']:,} bytes per open ticket")
    results["load_average"]["end"] = round(os.getloadavg()[0], 2)
    results["targets"] = judge(results)
    return results


def code_version(code: Path) -> dict[str, Any]:
    """The commit of the code measured, and whether its ``sla_stream/`` had uncommitted changes."""

    def git(*arguments: str) -> str:
        result = subprocess.run(["git", "-C", str(code), *arguments], capture_output=True, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else ""

    return {
        "path": str(code),
        "commit": git("rev-parse", "--short", "HEAD") or f"{code} (not a git checkout)",
        "dirty": bool(git("status", "--porcelain", "--", "sla_stream")),
    }


def archive(commit: str, directory: Path) -> str:
    """``sla_stream/`` of ``commit`` (of this repository) written into ``directory``; its short hash."""
    short = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{commit}^{{commit}}"],
        capture_output=True,
        check=True,
    )
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "sla_stream"], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as members:
        members.extractall(directory, filter="data")
    return short.stdout.decode().strip()


def floor(path: Path) -> dict[str, Any]:
    """The parse-and-update floor over ``path``: every non-blank line ``orjson.loads``-ed and one
    dict entry set, in this process; events per second from the first line to the last."""
    gc.collect()
    state: dict[tuple[str, str | None], str] = {}
    count = 0
    started = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                event = orjson.loads(line)
                state[(event["contract_id"], event.get("ticket_id"))] = event["occurred_at"]
                count += 1
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": round(seconds, 4), "events_per_second": round(count / seconds)}


def bracket(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The floor around one replay: both passes' events over both passes' time."""
    events, seconds = before["events"] + after["events"], before["seconds"] + after["seconds"]
    return {
        "events": events,
        "seconds": round(seconds, 4),
        "events_per_second": round(events / seconds),
        "passes": [before["events_per_second"], after["events_per_second"]],
    }


def replay_round(
    mix: mixes.Mix, code: Path, before: Path | None, runs: dict[str, list[Any]], first_now: bool
) -> None:
    """One round's replays of the mix, appended to ``runs``: ``code``'s, and ``before``'s (if any)
    right before or after it (``first_now``: ``code``'s first), so that both see the same load."""
    order = [("replay", code)] if before is None else [("replay", code), ("before", before)]
    for key, where in order if first_now else reversed(order):
        runs[key].append(replay_once(mix, where))


def replay_command(mix: mixes.Mix) -> list[str]:
    return [
        "-m",
        "sla_stream.cli",
        "replay",
        "--contracts",
        str(mix.contracts),
        "--stats",
        "--penalties",
        os.devnull,
        str(mix.events),
    ]


def code_env(code: Path) -> dict[str, str]:
    """The environment that makes ``python -m sla_stream...`` run ``code``'s sla_stream."""
    return {**os.environ, "PYTHONPATH": str(code)}


_REPLAY = """
import re, sys
from pathlib import Path
from sla_stream.cli import main
code = main(sys.argv[1:])
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())
print(f"bench: peak resident {peak.group(1) if peak else 0} kB", file=sys.stderr)
sys.exit(code)
"""
"""``sla-stream replay`` (the command's own ``main``), then its process's resident peak. Read from
the process itself: the ``ru_maxrss`` a parent gets from ``wait4`` is at least the parent's own
peak when it forked, so a bench process that made 100,000 events would show its own size."""

_PEAK = re.compile(r"bench: peak resident (\d+) kB")


def replay_once(mix: mixes.Mix, code: Path) -> dict[str, Any]:
    """``sla-stream replay --stats`` over the mix: its own rate line, and its peak resident memory."""
    result = subprocess.run(
        [sys.executable, "-c", _REPLAY, *replay_command(mix)[2:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=code,
        env=code_env(code),
        check=False,
    )
    said = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        raise SystemExit(f"bench: replay of {mix.name} exited with {result.returncode}: {said[-2000:]}")
    match, peak = _STATS.search(said), _PEAK.search(said)
    if match is None or peak is None:
        raise SystemExit(f"bench: unexpected replay output: {said[-2000:]}")
    return {
        "events": int(match.group(1)),
        "seconds": float(match.group(2)),
        "events_per_second": int(match.group(3).replace(",", "")),
        "alerts": int(match.group(4)),
        "peak_rss_mib": round(int(peak.group(1)) / 1024, 1),
    }


_PROFILE = """
import cProfile, sys
import sla_stream.cli, sla_stream.replay, sla_stream.wire.statements
out, *argv = sys.argv[1:]
profiler = cProfile.Profile()
inner = sla_stream.replay.replay

def profiled(*args, **kwargs):
    profiler.enable()
    try:
        yield from inner(*args, **kwargs)
    finally:
        profiler.disable()

sla_stream.replay.replay = profiled
sla_stream.cli.main(argv)
profiler.dump_stats(out)
"""
"""``sla-stream replay`` with cProfile on from the first event read to the last alert written (what
its ``--stats`` line times): the command's own loop, without the imports and contracts loading."""


def profile_replay(mix: mixes.Mix, code: Path, events: int, top: int = 15) -> dict[str, Any]:
    """cProfile of ``sla-stream replay`` over the mix's first ``events`` events (0: all of them),
    from the first event read to the last alert written: the ``top`` functions by own time, and
    own time per file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.prof"
        head = mix
        if events:
            head = dataclasses.replace(mix, events=Path(tmp) / "head.jsonl")
            with mix.events.open("rb") as source, head.events.open("wb") as target:
                target.writelines(itertools.islice(source, events))
        subprocess.run(
            [sys.executable, "-c", _PROFILE, str(out), *replay_command(head)[2:]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=code,
            env=code_env(code),
            check=True,
        )
        text = io.StringIO()
        stats = pstats.Stats(str(out), stream=text)
        stats.sort_stats("tottime").print_stats(top)
        by_file: dict[str, float] = {}
        raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
        for (filename, _, _), (_, _, own, _, _) in raw.items():
            where = "built-in (C) functions" if filename == "~" else _short(filename, code)
            by_file[where] = by_file.get(where, 0.0) + own
    total = sum(by_file.values()) or 1.0
    shares = sorted(by_file.items(), key=lambda pair: -pair[1])
    listing = text.getvalue()
    listing = listing[listing.index("ncalls") :] if "ncalls" in listing else listing
    return {
        "events": min(events, mix.count) if events else mix.count,
        "total_seconds": round(total, 2),
        "top": _shorten(listing, code).rstrip(),
        "by_file": [
            {"file": f, "seconds": round(s, 3), "share": round(s / total, 3)} for f, s in shares[:10]
        ],
    }


def _short(filename: str, code: Path) -> str:
    for prefix in (f"{code}/", f"{REPO}/"):
        if filename.startswith(prefix):
            return filename[len(prefix) :]
    return re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", filename)


def _shorten(listing: str, code: Path) -> str:
    listing = listing.replace(f"{code}/", "").replace(f"{REPO}/", "")
    return re.sub(r"\S*/(site-packages|lib/python3\.\d+)/", "", listing)


def summarize(mix: mixes.Mix, runs: dict[str, list[Any]], profile: dict[str, Any]) -> dict[str, Any]:
    """A mix's medians over its rounds, and its paired ratios replay ÷ floor (and replay ÷ before,
    the rates of the code now and before, where before was replayed)."""
    floors, replays = runs["floor"], runs["replay"]
    ratios = [r["events_per_second"] / f["events_per_second"] for f, r in zip(floors, replays, strict=True)]
    summary = {
        "name": mix.name,
        "what": mix.what,
        "events": mix.count,
        "alerts": replays[0]["alerts"],
        "floor_events_per_second": round(statistics.median(f["events_per_second"] for f in floors)),
        "replay_events_per_second": round(statistics.median(r["events_per_second"] for r in replays)),
        "replay_seconds": statistics.median(r["seconds"] for r in replays),
        "replay_vs_floor": round(statistics.median(ratios), 4),
        "replay_vs_floor_runs": [round(r, 4) for r in ratios],
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in replays),
        "runs": runs,
        "profile": profile,
    }
    if "before" in runs:
        befores = runs["before"]
        now = [r["events_per_second"] / b["events_per_second"] for b, r in zip(befores, replays, strict=True)]
        summary |= {
            "before_alerts": befores[0]["alerts"],
            "before_events_per_second": round(statistics.median(b["events_per_second"] for b in befores)),
            "before_peak_rss_mib": statistics.median(b["peak_rss_mib"] for b in befores),
            "replay_vs_before": round(statistics.median(now), 4),
            "replay_vs_before_runs": [round(r, 4) for r in now],
        }
    return summary


def measure_ticket_memory(contracts: Path, count: int, code: Path = REPO) -> dict[str, float]:
    """Resident memory per open ticket in the worker's in-memory store: a fresh process applies
    ``count`` ticket creations through the worker's pipeline onto a plain dict (what Faust's
    memory store is) and reports the growth."""
    program = f"""
import gc, re, time, orjson
from pathlib import Path
from sla_stream.contracts import load_dir
from sla_stream.runtime.pipeline import Pipeline
from sla_stream.settings import Settings

def rss():
    gc.collect()
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

contracts = load_dir({str(contracts)!r})
now = int(time.time() * 1000)
pipeline = Pipeline(Settings(), contracts, table={{}}, clock=lambda: now)
ids = sorted(k for k in contracts if k != "probe")
pipeline.on_event("sla.tickets", 0, 0, b"x", orjson.dumps({{"event_id": "warm", "type": "ticket.created",
    "contract_id": ids[0], "occurred_at": "2026-01-01T00:00:00Z", "ticket_id": "W", "priority": "P4"}}))
pipeline.write(0)
before = rss()
for n in range({count}):
    contract = ids[n % len(ids)]
    event = {{"event_id": f"m{{n}}", "type": "ticket.created", "contract_id": contract,
              "occurred_at": "2026-01-01T00:00:%02dZ" % (n % 60), "ticket_id": f"T-{{n}}", "priority": "P4"}}
    pipeline.on_event("sla.tickets", 0, n + 1, contract.encode(), orjson.dumps(event))
    if n % 100 == 0:
        pipeline.write(0)
pipeline.write(0)
after = rss()
print((after - before) / {count}, len(pipeline.table))
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, check=True, cwd=code, env=code_env(code)
    )
    per_ticket, entries = result.stdout.split()
    return {
        "open_tickets": count,
        "bytes_per_open_ticket": round(float(per_ticket)),
        "table_entries": int(entries),
    }


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what was measured, what is wanted, whether it is met, measured ÷ wanted."""
    rows: list[tuple[str, str, float, str, float]] = []
    for mix in results["mixes"]:
        if mix["name"] == "mix":
            rows.append(
                (
                    "replay_events_per_second",
                    "replay on the bench's mix, events/s on one core",
                    mix["replay_events_per_second"],
                    ">=",
                    REPLAY_RATE,
                )
            )
    for mix in results["mixes"]:
        rows.append(
            (
                f"replay_vs_floor:{mix['name']}",
                f"replay ÷ parse-and-update floor, {mix['name']}",
                mix["replay_vs_floor"],
                ">=",
                FLOOR_SHARE,
            )
        )
    commit = results.get("before", {}).get("commit")
    for mix in results["mixes"]:
        if commit is not None:
            before = mix["before_peak_rss_mib"]
            whose = f"{commit}'s {before:.1f} in this run"
        else:
            before = BEFORE_PEAK_RSS_MIB.get(mix["name"]) if mix["events"] == 100_000 else None
            whose = f"{BEFORE_COMMIT}'s {before}"
        if before is not None:
            rows.append(
                (
                    f"peak_rss_mib:{mix['name']}",
                    f"replay peak RSS (MiB), {mix['name']}: within {whose} (+{MEMORY_NOISE:.0%} for noise)",
                    mix["peak_rss_mib"],
                    "<=",
                    round(before * (1 + MEMORY_NOISE), 1),
                )
            )
    per_ticket = results["memory"]["bytes_per_open_ticket"]
    rows.append(
        (
            "bytes_per_open_ticket",
            "memory per open ticket (bytes), in-memory store",
            per_ticket,
            "<",
            BYTES_PER_TICKET,
        )
    )
    rows.append(
        (
            "bytes_per_open_ticket_before",
            f"memory per open ticket (bytes): within {BEFORE_COMMIT}'s {BEFORE_BYTES_PER_TICKET}"
            f" (+{MEMORY_NOISE:.0%} for noise)",
            per_ticket,
            "<=",
            round(BEFORE_BYTES_PER_TICKET * (1 + MEMORY_NOISE)),
        )
    )
    return [judged(*r) for r in rows]


def per_source_table(results: dict[str, Any]) -> list[str]:
    """The per-mix table (markdown lines), as replay.md and bench.md show it; where the code before
    was replayed too, its rate, its peak RSS and now ÷ before (replay's rate over its) as well."""
    commit = results.get("before", {}).get("commit")
    header = ["mix", "events", "alerts", "floor events/s", "replay events/s", "replay ÷ floor", "peak RSS"]
    if commit is not None:
        header += [f"{commit} events/s", f"{commit} peak RSS", f"now ÷ {commit}"]
    lines = [
        row(*header, "runs"),
        row("---", *["---:"] * (len(header) - 1), "---"),
    ]
    for mix in results["mixes"]:
        cells = [
            f"`{mix['name']}`",
            f"{mix['events']:,}",
            f"{mix['alerts']:,}",
            f"{mix['floor_events_per_second']:,}",
            f"{mix['replay_events_per_second']:,}",
            f"{mix['replay_vs_floor']:.3f}",
            f"{mix['peak_rss_mib']:.1f} MiB",
        ]
        if commit is not None:
            cells += [
                f"{mix['before_events_per_second']:,}",
                f"{mix['before_peak_rss_mib']:.1f} MiB",
                f"{mix['replay_vs_before']:.3f}",
            ]
        lines.append(row(*cells, ", ".join(f"{r:.3f}" for r in mix["replay_vs_floor_runs"])))
    return lines


def before_paragraph(results: dict[str, Any]) -> list[str]:
    """What the report says of the code before (markdown lines, a blank one first): how it was
    measured, or which figures the memory targets use without it; where its alerts differ, that."""
    commit = results.get("before", {}).get("commit")
    if commit is None:
        return [
            "",
            f"The code before the engine work ({BEFORE_COMMIT}) was not replayed in this run"
            f" (`--before none`): the peak RSS targets use its figures as this script measured them"
            " on the machine of the committed report (100,000 events per mix).",
        ]
    lines = [
        "",
        f"In every round, right before or after replay (the order alternates), the same replay"
        f" runs the code before the engine work, {commit}'s sla_stream (a git archive of it), over the"
        f" same file: its rate and peak RSS are medians over the rounds likewise, and now ÷ {commit}"
        " is the median of the rounds' ratios replay's rate ÷ its rate (the two replays measured"
        " moments apart, so a busy machine slows both). The peak RSS targets compare with its peak"
        " in this run.",
    ]
    differ = [m["name"] for m in results["mixes"] if m["before_alerts"] != m["alerts"]]
    if differ:
        lines += ["", f"**Alerts differ** from {commit}'s on: {', '.join(differ)}."]
    return lines


def write_report(results: dict[str, Any], out: Path, quick: bool = False) -> Path:
    """replay.md and replay.json (replay-quick.* for ``--quick``); returns the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "replay-quick" if quick else "replay"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    p, m, c = results["parameters"], results["machine"], results["code"]
    state = " with uncommitted changes to sla_stream/" if c["dirty"] else ""
    rounds = f"{p['repeats']} round" + ("s" if p["repeats"] != 1 else "")
    load = results.get("load_average", {})
    lines = [
        "# Replay per source" + (" (quick smoke run: numbers mean nothing)" if quick else ""),
        "",
        f"`{p.get('command', 'python bench/replay_mixes.py')}` ({len(p['mixes'])} mixes of"
        f" {p['events']:,} events, {rounds}, seed {p['seed']}), {results['date']}, code at"
        f" {c['commit']}{state}, Python {m['python']}, {m['cpus']} cores ({m['platform']},"
        f" {m['processor']}); one-minute load average {load.get('start')} at the start,"
        f" {load.get('end')} at the end (the machine is shared: other work slows floor and replay"
        " alike, so read the ratios).",
        "",
        "Each round runs, for every mix in turn, a pass of the **floor** (in the bench's process, one"
        " core: each line of the mix's file `orjson.loads`-ed and one dict entry set,"
        " `state[(contract_id, ticket_id)] = occurred_at`), **replay** (`sla-stream replay --stats"
        " --penalties /dev/null` over the same file, alerts to /dev/null, its rate as its `--stats`"
        " line gives it: from the first line read to the last alert written), and another pass of"
        " the floor; the round's floor is both passes together. Rates are medians over the rounds;"
        " replay ÷ floor is the median of the rounds' ratios (floor and replay measured moments"
        " apart, so a busy machine slows both); *runs* lists those ratios. Peak RSS is replay's"
        " resident peak (the process, contracts and all: its VmHWM as it ends), median over the rounds.",
        *before_paragraph(results),
        "",
        *per_source_table(results),
        "",
        "## Targets",
        "",
        *target_table(results["targets"]),
    ]
    missed = misses(results["targets"])
    if missed:
        lines += ["", "Missed:", "", *missed, "", "Where the time goes is in the profiles below."]
    mem = results["memory"]
    profiled = p["profile_events"]
    scope = f"its first {profiled:,} events" if 0 < profiled < p["events"] else "all its events"
    lines += [
        "",
        f"Memory per open ticket: {mem['bytes_per_open_ticket']:,} bytes ({mem['open_tickets']:,} open"
        " tickets through the worker's pipeline onto a dict, the in-memory store).",
        "",
        "## The mixes",
        "",
    ]
    lines += [f"- `{mix['name']}`: {mix['what']}." for mix in results["mixes"]]
    lines += [
        "",
        "`python bench/mixes.py NAME DIR` writes one (contracts and events) to replay by hand.",
        "",
        "## Where replay's time goes",
        "",
        f"cProfile of one more replay per mix, over {scope}, from the first event read to the last"
        " alert written, as `--stats` times it (cProfile slows the calls it counts, so shares, not"
        " seconds, are what to read).",
    ]
    for mix in results["mixes"]:
        prof = mix["profile"]
        files = ", ".join(f"{f['file']} {f['share']:.0%}" for f in prof["by_file"][:8])
        lines += [
            "",
            f"### `{mix['name']}`",
            "",
            f"Own time by file ({prof['total_seconds']} s profiled): {files}.",
            "",
            "```",
            prof["top"],
            "```",
        ]
    path = out / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n")
    say(f"report: {path}")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
