"""Contracts reloaded by a running worker on SIGHUP: a broken file is reported and the last good
contracts stay in use; fixed files, with a new contract, are taken without a restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from broker_io import overdue_ticket, produce, read_topic
from helpers import ONE_TARGET
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def test_a_running_worker_reloads_its_contracts_on_sighup_and_survives_broken_ones(
    worker, tmp_path: Path
) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "a.yaml").write_text(ONE_TARGET.format(id="a", target="20s"))
    # Polling off: only SIGHUP reloads (polling is covered by tests/unit/runtime/test_reload.py).
    live = worker(contracts, contracts_poll="0s").start()
    assert live.process is not None

    (contracts / "a.yaml").write_text(ONE_TARGET.format(id="a", target="twenty seconds"))
    live.process.send_signal(signal.SIGHUP)
    _until(lambda: _metric(live.get("/metrics")[1], "sla_contract_reload_failing") == 1)
    assert live.process.poll() is None
    log = live.this_run()
    assert f"contract error: {contracts / 'a.yaml'}: tickets.objectives.first_response" in log, log
    assert "Traceback" not in log

    # The last good version of a is still in use.
    produce(live.bootstrap, live.topics["tickets"], [overdue_ticket("a", "T-a")])
    alerts = read_topic(live.bootstrap, live.topics["alerts"], until=lambda found: len(found) >= 1)
    assert [(a["contract_id"], a["kind"], a["target_seconds"]) for a in alerts] == [("a", "breach", 20)]

    (contracts / "a.yaml").write_text(ONE_TARGET.format(id="a", target="20s"))
    (contracts / "b.yaml").write_text(ONE_TARGET.format(id="b", target="20s"))
    live.process.send_signal(signal.SIGHUP)
    _until(lambda: _metric(live.get("/metrics")[1], "sla_contracts") == 2)
    assert _metric(live.get("/metrics")[1], "sla_contract_reload_failing") == 0
    produce(live.bootstrap, live.topics["tickets"], [overdue_ticket("b", "T-b")])
    alerts = read_topic(live.bootstrap, live.topics["alerts"], until=lambda found: len(found) >= 2, settle=2)
    assert sorted((a["contract_id"], a["subject"]["id"]) for a in alerts) == [("a", "T-a"), ("b", "T-b")]
    assert read_topic(live.bootstrap, live.topics["deadletter"], until=lambda found: False, timeout=1) == []
    assert live.process.poll() is None and live.get("/readyz")[0] == 200


def _metric(text: bytes, name: str) -> float | None:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    ends = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > ends:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.2)
