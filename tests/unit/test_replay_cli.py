"""``sla-stream replay`` as a user runs it: alerts on stdout, rejected lines kept, a rate reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from helpers import REPO

CASE = REPO / "tests" / "golden" / "jakarta-business-hours"


def replay(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "replay", *args], capture_output=True, check=False
    )


def test_bad_and_late_lines_are_kept_as_dead_letter_records_and_do_not_stop_replay(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    lines = (CASE / "events.jsonl").read_bytes().splitlines()
    late = lines[1]  # 10:00 reply, applied after the 11:50 ticket: 110 minutes late
    events.write_bytes(b"\n".join([lines[0], lines[3], late, b"{not json", *lines[4:]]) + b"\n")
    dead = tmp_path / "dead.jsonl"
    result = replay("--contracts", str(CASE / "contracts"), "--deadletter", str(dead), "--stats", str(events))
    assert result.returncode == 0
    records = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [(r["reason"], r["offset"]) for r in records] == [("late", 3), ("invalid", 4)]
    assert records[0]["topic"] == str(events) and "allowed lateness of 300s" in records[0]["detail"]
    alerts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert alerts and all("emitted_at" not in a for a in alerts)
    assert b"replayed 11 events" in result.stderr and b"2 rejected, 1 duplicates" in result.stderr


def test_until_moves_the_clock_at_the_end_and_a_threshold_exactly_there_does_not_fire(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join((CASE / "events.jsonl").read_bytes().splitlines()[:7]) + b"\n")  # up to T-1
    head = ("--contracts", str(CASE / "contracts"), str(events))
    at_breach = replay("--until", "2026-11-30T08:15:00+07:00", *head).stdout.splitlines()
    after = replay("--until", "2026-11-30T08:15:00.001+07:00", *head).stdout.splitlines()
    assert len(after) == len(at_breach) + 1
    assert orjson.loads(after[-1])["kind"] == "breach" and orjson.loads(after[-1])["subject"]["id"] == "T-1"


def test_a_wrong_flag_value_is_one_line_and_a_non_zero_exit():
    result = replay(
        "--contracts", str(CASE / "contracts"), "--allowed-lateness", "soon", str(CASE / "events.jsonl")
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "sla-stream: error: --allowed-lateness: not a duration like 45s, 30m, 4h or 3d: 'soon'"
    )


CLOCKS = """
version: 1
id: {id}
tickets:
  priorities: [P1]
  near_breach: [0.5]
  objectives:
    first_response: {{targets: {{P1: 10m}}}}
"""


def _line(contract: str, n: int, type_: str, at: str, **fields: str) -> bytes:
    body = {"event_id": f"{contract}-{n}", "type": type_, "contract_id": contract, "occurred_at": at}
    return orjson.dumps({**body, "ticket_id": "T-1", **fields})


def test_partition_for_is_the_producers_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from sla_stream.replay import partition_for

    for key in (b"acme-gold", b"globex-silver", b"c0", b"c1", b"demo-fast", "ünï".encode()):
        for partitions in (1, 4, 8, 12):
            assert partition_for(key, partitions) == DefaultPartitioner()(key, list(range(partitions)), [])


def test_with_partitions_each_partition_has_its_own_clock_as_in_the_worker(tmp_path: Path) -> None:
    from sla_stream.replay import partition_for

    names = [f"k{n}" for n in range(20)]
    a = names[0]
    b = next(n for n in names if partition_for(n.encode(), 2) != partition_for(a.encode(), 2))
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for name in (a, b):
        (contracts / f"{name}.yaml").write_text(CLOCKS.format(id=name))
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(
            [
                _line(a, 1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1"),
                _line(b, 1, "ticket.created", "2026-11-24T09:06:00Z", priority="P1"),
                # a's reply arrives after b's 09:06 event: late, within the lateness
                _line(a, 2, "ticket.agent_replied", "2026-11-24T09:04:00Z"),
            ]
        )
        + b"\n"
    )
    args = ("--contracts", str(contracts), "--until", "2026-11-24T09:06:00Z", str(events))
    one_clock = [orjson.loads(line) for line in replay(*args).stdout.splitlines()]
    per_partition = [orjson.loads(line) for line in replay("--partitions", "2", *args).stdout.splitlines()]
    # One clock: b's event passed a's 50% mark (09:05) before a's reply came: fired, then retracted.
    assert [(x["contract_id"], x["kind"]) for x in one_clock] == [(a, "near_breach"), (a, "retracted")]
    # Per partition, a's clock stood at 09:00 when its reply came: nothing to say.
    assert per_partition == []
    assert replay("--partitions", "0", *args).stderr.decode().strip() == (
        "sla-stream: error: --partitions: 0 is not a partition count (1 or more)"
    )
