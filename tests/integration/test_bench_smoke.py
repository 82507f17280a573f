"""The benchmark harness works (a small run on the test broker); its numbers are not checked:
benchmarks are not timed tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.integration


def test_the_benchmark_harness_measures_everything_it_reports(broker, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--quick",
            "--bootstrap",
            broker.bootstrap,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    measured = json.loads((tmp_path / "bench-quick.json").read_text())
    for part in ("baseline", "faust_floor", "faust_floor_tuned", "worker", "worker_exactly_once", "replay"):
        assert measured[part]["events_per_second"] > 0, part
    # The peer runs from the bench's own environment (make bench makes it); without it the
    # report says why it was not measured.
    assert measured["peer"].get("events_per_second", 0) > 0 or measured["peer"]["not_measured"]
    # Live traffic under both guarantees: the sustainable rate, then latency at 80% of it.
    assert measured["sustainable"] and measured["sustainable_exactly_once"], "live rates tried"
    assert set(measured["sustained"]) == {"at_least_once", "exactly_once"}
    for latency in (measured["latency"], measured["latency_exactly_once"]):
        assert latency["event_to_alert_ms"]["samples"] > 0 and latency["deadline_to_alert_ms"]["samples"] > 0
    assert measured["memory"]["bytes_per_open_ticket"] > 0
    assert {t["name"] for t in measured["targets"]} == {
        "worker_vs_baseline",
        "worker_vs_tuned_floor",
        "worker_vs_peer",
        "replay_events_per_second",
        "live_vs_drain",
        "deadline_p50_seconds",
        "deadline_p99_seconds",
        "event_p50_seconds",
        "event_p99_seconds",
        "bytes_per_open_ticket",
        "soak_replay_memory",
        "soak_replay_entries",
        "soak_worker_live_keys",
        "soak_worker_recovery",
        "reload_loop_held_seconds",
    }
    # The soak: replay and the worker over two lengths of the same traffic.
    soak = measured["soak"]
    assert [row["days"] for row in soak["replay"]] == [2, 4]
    assert [row["days"] for row in soak["worker"]] == [2, 4]
    assert all(row["entries"] > 0 and row["peak_rss_mib"] > 0 for row in soak["replay"])
    assert all(row["live_keys"] > 0 and row["recovery_seconds"] > 0 for row in soak["worker"])
    report = (tmp_path / "bench-quick.md").read_text()
    assert "| 2. worker" in report and "| 2b. worker, exactly-once" in report and "## Targets" in report
    assert "Latency, at-least-once" in report and "Latency, exactly-once" in report
    assert "## Months of traffic (the soak)" in report
    # The reload: the contract changed, read back a slice at a time; the same files, nothing read.
    reload = measured["reload"]
    assert reload["tickets"] == 50_000 and reload["changed"]["until_every_partition_s"] > 0
    assert reload["unchanged"]["until_every_partition_s"] < reload["before"]["until_every_partition_s"]
    assert "## A contract reload on a large state" in report
