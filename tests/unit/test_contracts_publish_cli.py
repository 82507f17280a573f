"""``sla-stream contracts publish`` as a user runs it, where it fails before reaching Kafka or
cannot reach it (publishing itself is tested against a broker in
``tests/integration/test_contract_topic_live.py``)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

from sla_stream.local_kafka import free_port


def publish(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sla_stream.cli", "contracts", "publish", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_an_unreachable_broker_is_one_line():
    closed = f"127.0.0.1:{free_port()}"
    result = publish(str(REPO / "examples" / "contracts"), "--bootstrap-servers", closed)
    assert result.returncode == 2
    assert result.stderr.startswith(f"sla-stream: error: cannot reach Kafka at {closed}: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_directory_that_does_not_load_is_not_published(tmp_path):
    (tmp_path / "a.yaml").write_text("version: 1\nid: a\ntimezone: Mars/Olympus\n")
    result = publish(str(tmp_path), "--bootstrap-servers", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"sla-stream: error: {tmp_path / 'a.yaml'}: timezone:")
