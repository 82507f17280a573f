"""``sla-stream demo``: a local broker, the worker and simulated traffic, with alerts on screen.

The broker is started from the Kafka jars (see :mod:`sla_stream.local_kafka`)
unless ``SLA_STREAM_BOOTSTRAP_SERVERS`` names one already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from sla_stream.kafka_client import client_kwargs
from sla_stream.local_kafka import LocalBroker
from sla_stream.settings import Settings, load_settings

_VAR = Path("var")
_COLOURS = {"breach": "\033[31m", "near_breach": "\033[33m", "recovered": "\033[32m", "retracted": "\033[36m"}


def run_demo(minutes: float = 0, rate: float = 2.0) -> int:
    settings = load_settings()
    broker = None
    if "SLA_STREAM_BOOTSTRAP_SERVERS" not in os.environ:
        _host, _, port = settings.bootstrap_servers.rpartition(":")
        broker = LocalBroker(data_dir=_VAR / "kafka", port=int(port), controller_port=int(port) + 1)
        print(
            f"demo: starting a local Kafka broker on {broker.bootstrap} (first run fetches its jars) ...",
            flush=True,
        )
        broker.start()
    env = {**os.environ, "SLA_STREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    logs = _VAR / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(_spawn(["worker"], env, logs / "worker.log"))
        print(
            f"demo: worker started (log: {logs / 'worker.log'}, metrics: http://{settings.web_host}:{settings.web_port}/metrics)",
            flush=True,
        )
        _wait_ready(settings, children[0])
        simulate = [
            "simulate",
            "--rate",
            str(rate),
            "--bad-share",
            "0.01",
            "--seed",
            str(int(time.time()) % 100_000),
        ]
        children.append(_spawn(simulate, env, logs / "simulate.log"))
        print(
            "demo: simulated ticket, call, request and parcel traffic started;"
            " alerts appear below (Ctrl-C stops everything)\n",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_show(settings, minutes * 60 if minutes else None, children))
    finally:
        for child in reversed(children):
            _stop(child)
        if broker is not None:
            print("demo: stopping the local broker", flush=True)
            broker.stop()
    return 0


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sla_stream.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def _wait_ready(settings: Settings, worker: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    url = f"http://{settings.web_host}:{settings.web_port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit("demo: the worker stopped; see var/demo/worker.log")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"demo: the worker was not ready after {timeout:.0f}s; see var/demo/worker.log")


async def _show(settings: Settings, seconds: float | None, children: list[subprocess.Popen[bytes]]) -> None:
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        topics.alerts,
        topics.deadletter,
        **client_kwargs(settings),
        auto_offset_reset="latest",
    )
    await consumer.start()
    counts: dict[str, int] = {}
    ends = time.monotonic() + seconds if seconds else None
    try:
        while ends is None or time.monotonic() < ends:
            if any(child.poll() is not None for child in children):
                print("demo: a child process stopped; see var/demo/*.log", flush=True)
                return
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    line, kind = _describe(record.topic == topics.deadletter, record.value or b"{}")
                    counts[kind] = counts.get(kind, 0) + 1
                    print(line, flush=True)
    finally:
        await consumer.stop()
        print(
            "\ndemo: seen " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"),
            flush=True,
        )


def _describe(dead: bool, value: bytes) -> tuple[str, str]:
    record = orjson.loads(value)
    if dead:
        return f"  dead-letter  {record['reason']}: {record['detail']}", "dead-letter"
    from sla_stream.alert_lines import alert_line

    return alert_line(record, colour=sys.stdout.isatty()), record["kind"]
