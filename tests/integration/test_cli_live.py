"""``sla-stream simulate``, ``tail`` and ``worker`` against a real broker: a missing topic is one
line, ``tail --lines`` shows alerts as the demo does, and a worker starts where there is no var/."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from conftest import Worker
from helpers import REPO, contracts_from, ms

from sla_stream.alert_lines import alert_line
from sla_stream.local_kafka import LocalBroker
from sla_stream.replay import encode_replay_alert, replay
from sla_stream.wire.alerts import alert_record

_names = itertools.count(1)

CONTRACT = """
version: 1
id: acme
tickets:
  priorities: [P1]
  near_breach: [0.5]
  objectives:
    first_response: {targets: {P1: 30m}}
"""


def _env(broker: LocalBroker, **topics: str) -> dict[str, str]:
    env = {**os.environ, "SLA_STREAM_BOOTSTRAP_SERVERS": broker.bootstrap}
    env.update({f"SLA_STREAM_TOPIC_{name.upper()}": topic for name, topic in topics.items()})
    return env


def test_simulate_to_topics_that_do_not_exist_says_so_in_one_line(broker: LocalBroker):
    run = next(_names)
    topics = {name: f"cli-live-{run}-{name}" for name in ("tickets", "calls", "requests", "items")}
    result = subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "simulate", "--contracts", "examples/contracts"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=_env(broker, **topics),
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"sla-stream: error: no topic {', '.join(topics.values())} on {broker.bootstrap}: start the"
        " worker once (it creates its topics), or create them with 8 partitions each\n"
    )


def test_tail_lines_prints_alerts_as_lines_and_other_records_as_they_are(broker: LocalBroker, tmp_path):
    topic = f"cli-live-alerts-{next(_names)}"
    created = b'{"event_id":"e1","type":"ticket.created","contract_id":"acme",'
    created += b'"occurred_at":"2026-11-24T09:00:00Z","ticket_id":"T-1","priority":"P1"}'
    alerts = list(
        replay(contracts_from(tmp_path, acme=CONTRACT), [("e", 1, created)], ms("2026-11-24T10:00:00Z"))
    )
    values = [encode_replay_alert(alert) for alert in alerts] + [b'{"reason": "invalid"}']

    async def put() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    asyncio.run(put())
    tail = subprocess.Popen(
        [sys.executable, "-m", "sla_stream.cli", "tail", "--topic", topic, "--from-beginning", "--lines"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(broker),
    )
    assert tail.stdout is not None and tail.stderr is not None
    out = tail.stdout
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(out.readline().decode().rstrip("\n") for _ in values), daemon=True
    )
    reader.start()
    reader.join(60)
    tail.send_signal(signal.SIGINT)
    tail.wait(30)
    assert seen == [alert_line(alert_record(alert)) for alert in alerts] + ['{"reason": "invalid"}']
    assert seen[0].startswith(
        "NEAR_BREACH  acme first_response ticket T-1 (P1): target 30m, elapsed 15m (50%)"
    )
    # Ctrl-C ends it quietly: no traceback, no warning of a client left open.
    assert (tail.returncode, tail.stderr.read()) == (130, b"")


def test_a_worker_started_where_there_is_no_var_directory_runs(worker: Callable[..., Worker], tmp_path: Path):
    # The own-helpdesk page's `sla-stream worker --contracts my-contracts/`, from a directory of
    # one's own: the worker's state goes to var/worker there, which Faust cannot create alone.
    made = worker(REPO / "examples" / "contracts")
    env = {name: value for name, value in made.env.items() if name != "SLA_STREAM_DATA_DIR"}
    here = tmp_path / "helpdesk"
    here.mkdir()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sla_stream.cli", "worker"],
            cwd=here,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = False
        deadline = time.monotonic() + 120
        while not ready and process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(made.web + "/readyz", timeout=5) as answer:
                    ready = answer.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        said = log.read_text(errors="replace")
        assert ready, said
        assert (here / "var" / "worker").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    said = log.read_text(errors="replace")
    assert "FileNotFoundError" not in said and "Traceback" not in said, said
    assert process.returncode == 0


def test_the_own_helpdesk_snippet_creates_the_missing_topics_with_the_partitions_asked_for(
    broker: LocalBroker,
) -> None:
    page = (REPO / "docs" / "own-helpdesk.md").read_text()
    section = page.split("\n## Create the topics", 1)[1].split("\n## ", 1)[0]
    [snippet] = [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)]
    # Run as written, against the session's broker, on topics of this test's own.
    prefix = f"doc{os.getpid()}n{next(_names)}"
    assert snippet.count('"kafka-1.internal:9092"') == 1 and snippet.count('"sla.') == 8
    code = snippet.replace('"kafka-1.internal:9092"', repr(broker.bootstrap)).replace('"sla.', f'"{prefix}.')
    code = code.replace("replicas=3", "replicas=1")  # a single broker

    async def one_there() -> None:  # one already there: left as it is
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{prefix}.tickets", 12, 1)])
        finally:
            await admin.close()

    asyncio.run(one_there())
    for _ in range(2):  # and run again, nothing is missing
        ran = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
        )
        assert ran.returncode == 0, ran.stderr

    async def counts() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            names = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        return {topic["topic"].removeprefix(f"{prefix}."): len(topic["partitions"]) for topic in described}

    wanted = ["tickets", "calls", "requests", "items", "ticks", "alerts", "deadletter", "penalties"]
    assert asyncio.run(counts()) == dict.fromkeys(wanted, 12)
