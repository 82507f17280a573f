"""A contract reload on a worker holding a million open tickets: how long the event loop is held.

``python bench/reload.py`` (``make bench-reload``; also part of ``make bench``). No broker: the
worker's pipeline over an in-memory table, as the worker holds it (``Pipeline`` over the table
Faust recovers), driven the way the worker's agent drives it (``runtime/app.py``: each
partition's state read back through ``Pipeline.preparing``, the event loop let in at each
slice, then the first message of the partition applied).

Measured, in one run on the same state:

- **before** (the baseline): the reload as it was done before, emulated with this code:
  every partition's engines read back at once on its first message (``Pipeline.engine``, no
  slices): the longest time the loop is held is one partition's read-back;
- **changed**: a reload that changes the contract every ticket belongs to (a target): the state
  is read back a slice at a time; the longest hold of the loop, and the time until every
  partition has processed a message;
- **unchanged / added**: a reload of the same files, and one that adds a contract: nothing is
  read back.

The loop's longest hold is what a heartbeat task sleeping 10 ms sees between its wake-ups: the
group's session timeout (``SLA_STREAM_SESSION_TIMEOUT``, 10 s) is what it must stay far under.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sla_stream.contracts import load_dir  # noqa: E402
from sla_stream.runtime.pipeline import Pipeline  # noqa: E402
from sla_stream.settings import Settings  # noqa: E402

CONTRACT = """
version: 1
id: {id}
tickets:
  priorities: [P1, P2]
  near_breach: [0.5, 0.75]
  objectives:
    first_response: {{targets: {{P1: {target}, P2: 8h}}}}
    resolution: {{targets: {{P1: 3d, P2: 5d}}, pause_on: [pending]}}
"""
TOPIC = "sla.tickets"
NOW = 1_796_000_000_000  # 2026-11-29, the worker's clock


def state(tickets: int, partitions: int, work: Path) -> tuple[dict[bytes, bytes], Path]:
    """A table of ``tickets`` open tickets of one contract over ``partitions`` partitions, each
    created and answered (two events of history, clocks running), as the worker stores them."""
    contracts = work / "contracts"
    contracts.mkdir(parents=True, exist_ok=True)
    (contracts / "big.yaml").write_text(CONTRACT.format(id="big", target="1h"))
    table: dict[bytes, bytes] = {}
    pipeline = Pipeline(Settings(), load_dir(contracts), table, clock=lambda: NOW)
    # A thousand made by the worker's own path, the rest copies of them under other ids.
    made = 1000
    for n in range(made):
        for offset, kind in ((2 * n, "ticket.created"), (2 * n + 1, "ticket.agent_replied")):
            event = {
                "event_id": f"e{offset}",
                "type": kind,
                "contract_id": "big",
                "occurred_at": "2026-11-28T10:00:00Z",
                "ticket_id": f"T-{n}",
                "priority": "P1" if n % 2 else "P2",
            }
            pipeline.on_event(TOPIC, 0, offset, b"big", orjson.dumps(event))
    pipeline.write(0)
    samples = [(k, v) for k, v in table.items() if k.startswith(b"t0\x1f")]
    rest = {k: v for k, v in table.items() if not k.startswith(b"t0\x1f")}
    table.clear()
    for n in range(tickets):
        key, value = samples[n % made]
        ticket = f"T-{n}".encode()
        old = key.rsplit(b"\x1f", 1)[1]
        partition = n % partitions
        table[b"t%d\x1fbig\x1f%s" % (partition, ticket)] = value.replace(
            b'"id":"' + old + b'"', b'"id":"' + ticket + b'"'
        ).replace(b'"' + old + b'"', b'"' + ticket + b'"')
    for partition in range(partitions):
        for key, value in rest.items():
            table[key.replace(b"0\x1f", b"%d\x1f" % partition, 1)] = value
    return table, contracts


async def _held(run: Any) -> tuple[float, float]:
    """Run ``run()`` (a coroutine function) beside a task sleeping 10 ms: the longest gap between
    its wake-ups (s), and how long ``run`` took (s)."""
    longest = 0.0
    done = False

    async def beat() -> None:
        nonlocal longest
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest = max(longest, now - last - 0.01)
            last = now

    beating = asyncio.create_task(beat())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await run()
    took = time.monotonic() - started
    done = True
    await beating
    return longest, took


def _first_message(pipeline: Pipeline, partition: int, offset: int) -> None:
    event = {
        "event_id": f"new-{partition}",
        "type": "ticket.created",
        "contract_id": "big",
        "occurred_at": "2026-11-29T00:00:00Z",
        "ticket_id": f"NEW-{partition}",
        "priority": "P1",
    }
    pipeline.on_event(TOPIC, partition, offset, b"big", orjson.dumps(event))


def measure(tickets: int, partitions: int, work: Path) -> dict[str, Any]:
    table, directory = state(tickets, partitions, work)
    out: dict[str, Any] = {"tickets": tickets, "partitions": partitions}

    def reloaded(target: str, extra: bool = False) -> dict[str, Any]:
        (directory / "big.yaml").write_text(CONTRACT.format(id="big", target=target))
        if extra:
            (directory / "other.yaml").write_text(CONTRACT.format(id="other", target="1h"))
        return load_dir(directory)

    for case in ("before", "changed", "unchanged", "added"):
        pipeline = Pipeline(Settings(), load_dir(directory), table, clock=lambda: NOW)
        for partition in range(partitions):  # a running worker: its state read back already
            for _ in pipeline.preparing(partition):
                pass
        contracts = {
            "before": lambda: reloaded("2h"),
            "changed": lambda: reloaded("2h"),
            "unchanged": lambda: load_dir(directory),
            "added": lambda: reloaded("1h", extra=True),
        }[case]()

        async def run(case: str = case, contracts: Any = contracts, pipeline: Pipeline = pipeline) -> None:
            pipeline.use_contracts(contracts)
            for partition in range(partitions):
                offset = 1_000_000 + partition
                if case == "before":
                    for topic in pipeline.settings.source_topics:
                        pipeline.engine(topic, partition)  # at once, as every rebuild was
                else:
                    for _ in pipeline.preparing(partition):
                        await asyncio.sleep(0)
                _first_message(pipeline, partition, offset)
                await asyncio.sleep(0)

        longest, took = asyncio.run(_held(run))
        out[case] = {"loop_held_s": round(longest, 3), "until_every_partition_s": round(took, 3)}
        (directory / "big.yaml").write_text(CONTRACT.format(id="big", target="1h"))
        (directory / "other.yaml").unlink(missing_ok=True)
        del pipeline
    return out


def report(found: dict[str, Any]) -> list[str]:
    lines = [
        "## A contract reload on a large state",
        "",
        f"{found['tickets']:,} open tickets of one contract over {found['partitions']} partitions,"
        " in the worker's table; the contract reloaded, then one message per partition."
        " `loop held`: the longest the event loop went without running a task that sleeps 10 ms"
        " (heartbeats, the web server); `until every partition`: until each had processed its"
        " message.",
        "",
        "| reload | loop held (s) | until every partition (s) |",
        "|---|---:|---:|",
    ]
    names = {
        "before": "a target changed, read back at once (the reload before, emulated)",
        "changed": "a target changed (state read back a slice at a time)",
        "unchanged": "the same files again",
        "added": "a contract added",
    }
    for case, name in names.items():
        row = found[case]
        lines.append(f"| {name} | {row['loop_held_s']:.3f} | {row['until_every_partition_s']:.3f} |")
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sla-stream-bench-reload"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reload.md")
    args = parser.parse_args()
    found = measure(args.tickets, args.partitions, args.work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "\n".join(["# Contract reload", "", "Command: `make bench-reload`", "", *report(found)])
    )
    print("\n".join(report(found)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
