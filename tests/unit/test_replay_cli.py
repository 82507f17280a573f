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
