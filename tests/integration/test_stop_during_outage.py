"""SIGTERM while the broker is gone: a graceful stop would wait for the broker for good, so the
worker exits after its stop timeout, says why, and does not mark the stop clean."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import ONE_TARGET

from sla_stream.local_kafka import LocalBroker, free_port
from sla_stream.runtime.worker import CLEAN_STOP

pytestmark = pytest.mark.integration


def test_a_worker_told_to_stop_during_a_broker_outage_exits_after_its_stop_timeout(worker, tmp_path: Path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "a.yaml").write_text(ONE_TARGET.format(id="a", target="20s"))
    own = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port()).start()
    try:
        live = worker(contracts, bootstrap_servers=own.bootstrap, stop_timeout="8s").start()
    finally:
        own.kill()  # gone for good, without a word to its clients
    assert live.process is not None
    time.sleep(3)
    started = time.monotonic()
    live.process.send_signal(signal.SIGTERM)
    code = live.process.wait(60)
    took = time.monotonic() - started
    assert code == 1 and 8 <= took < 20, (code, took, live.tail())
    assert "did not stop within 8s of SIGTERM (is the broker reachable?)" in live.this_run()
    assert not (Path(live.env["SLA_STREAM_DATA_DIR"]) / CLEAN_STOP).exists()
