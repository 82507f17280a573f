"""Contracts published on the compacted contracts topic: a worker takes them at start and follows
the topic, so a published change reaches it without a restart; a broken set is never published."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from broker_io import overdue_ticket, produce, read_topic
from helpers import ONE_TARGET

pytestmark = pytest.mark.integration


def test_a_worker_follows_the_contracts_topic(worker, broker, tmp_path: Path) -> None:
    topic = f"contracts-{tmp_path.name}"
    env = {
        **os.environ,
        "SLA_STREAM_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SLA_STREAM_TOPIC_CONTRACTS": topic,
    }

    def publish(**files: str) -> subprocess.CompletedProcess[str]:
        directory = tmp_path / f"set{len(list(tmp_path.glob('set*')))}"
        directory.mkdir()
        for contract_id, target in files.items():
            (directory / f"{contract_id}.yaml").write_text(ONE_TARGET.format(id=contract_id, target=target))
        command = [sys.executable, "-m", "sla_stream.cli", "contracts", "publish", str(directory)]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    first = publish(a="20s", c="1h")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"published 2 contract files to {topic}; removed 0\n"
    unused = tmp_path / "unused"
    unused.mkdir()
    # No polling of its directory: only the topic tells the worker of changes.
    live = worker(unused, contracts_from="topic", topic_contracts=topic, contracts_poll="0s").start()

    produce(
        live.bootstrap, live.topics["tickets"], [overdue_ticket("a", "T-a-1"), overdue_ticket("b", "T-b-1")]
    )
    alerts = read_topic(live.bootstrap, live.topics["alerts"], until=lambda found: len(found) >= 1)
    assert [a["subject"]["id"] for a in alerts] == ["T-a-1"]
    # Following the topic from its start changed nothing: no contract dropped for a moment.
    assert "reloaded" not in live.this_run(), live.tail()

    broken = publish(a="20s", b="whenever", c="1h")
    assert broken.returncode == 1 and "b.yaml: tickets.objectives.first_response" in broken.stderr
    second = publish(a="20s", b="20s", c="1h")
    assert second.returncode == 0, second.stderr
    ends = time.monotonic() + 30
    while "added b" not in live.this_run():
        assert time.monotonic() < ends, live.tail()
        time.sleep(0.3)
    produce(live.bootstrap, live.topics["tickets"], [overdue_ticket("b", "T-b-2")])
    alerts = read_topic(live.bootstrap, live.topics["alerts"], until=lambda found: len(found) >= 2, settle=2)
    assert sorted(a["subject"]["id"] for a in alerts) == ["T-a-1", "T-b-2"]

    third = publish(a="20s", c="1h")  # b is taken off the topic (a tombstone)
    assert third.returncode == 0 and third.stdout.endswith("removed 1\n"), third.stderr
    ends = time.monotonic() + 30
    while "removed b" not in live.this_run():
        assert time.monotonic() < ends, live.tail()
        time.sleep(0.3)
    produce(live.bootstrap, live.topics["tickets"], [overdue_ticket("b", "T-b-3")])
    dead = read_topic(
        live.bootstrap, live.topics["deadletter"], until=lambda found: len(found) >= 2, timeout=30, settle=1
    )
    # b's first ticket, before b was published, and its third, after it was removed
    assert [(d["reason"], orjson.loads(d["value"])["ticket_id"]) for d in dead] == [
        ("unknown_contract", "T-b-1"),
        ("unknown_contract", "T-b-3"),
    ]
    assert live.process is not None and live.process.poll() is None
