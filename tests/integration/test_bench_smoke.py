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
    assert measured["sustainable"], "live rates tried to find the sustainable one"
    latency = measured["latency"]
    assert latency["event_to_alert_ms"]["samples"] > 0 and latency["deadline_to_alert_ms"]["samples"] > 0
    assert measured["memory"]["bytes_per_open_ticket"] > 0
    assert {t["name"] for t in measured["targets"]} == {
        "worker_vs_baseline",
        "worker_vs_tuned_floor",
        "worker_vs_peer",
        "replay_events_per_second",
        "deadline_delay_p99_seconds",
        "bytes_per_open_ticket",
    }
    report = (tmp_path / "bench-quick.md").read_text()
    assert "| 2. worker" in report and "| 2b. worker, exactly-once" in report and "## Targets" in report
