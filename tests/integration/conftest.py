"""Real-broker fixtures: one Kafka broker per test session, and workers as real processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sla_stream.local_kafka import LocalBroker, free_port

_names = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real single-node KRaft broker on loopback for the whole session."""
    kafka = LocalBroker(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


#: Written to a worker's log before each start.
START_MARK = b"----- worker process starting -----\n"


@dataclass
class Worker:
    """An ``sla-stream worker`` process and the names it uses."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    topics: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.env["SLA_STREAM_BOOTSTRAP_SERVERS"]

    @property
    def web(self) -> str:
        return f"http://{self.env.get('SLA_STREAM_WEB_HOST', '127.0.0.1')}:{self.env['SLA_STREAM_WEB_PORT']}"

    def start(self, timeout: float = 120, wait: bool = True) -> Worker:
        with self.log.open("ab") as out:
            out.write(START_MARK)
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sla_stream.cli", "worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            if self.get("/readyz")[0] == 200:
                return self
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.web + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def kill(self) -> None:
        """kill -9: no shutdown work at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def this_run(self) -> str:
        """What the latest process wrote."""
        text = self.log.read_bytes().decode(errors="replace") if self.log.exists() else ""
        return text.rpartition(START_MARK.decode())[2]

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def worker(broker: LocalBroker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Makes workers on their own topics and consumer group; stops them after the test."""
    made: list[Worker] = []

    def make(contracts: Path, partitions: int = 4, **settings: str) -> Worker:
        name = f"it{os.getpid()}n{next(_names)}"
        topics = {
            t: f"{name}.{t}"
            for t in ("tickets", "calls", "requests", "items", "alerts", "penalties", "deadletter", "ticks")
        }
        env = {
            **os.environ,
            "SLA_STREAM_BOOTSTRAP_SERVERS": broker.bootstrap,
            "SLA_STREAM_APP_ID": name,
            "SLA_STREAM_GROUP_INSTANCE_ID": f"{name}-w",
            "SLA_STREAM_CONTRACTS_DIR": str(contracts),
            "SLA_STREAM_PARTITIONS": str(partitions),
            "SLA_STREAM_WEB_PORT": str(free_port()),
            "SLA_STREAM_DATA_DIR": str(tmp_path / f"{name}-data"),
            **{f"SLA_STREAM_TOPIC_{t.upper()}": n for t, n in topics.items()},
            **{f"SLA_STREAM_{k.upper()}": v for k, v in settings.items()},
        }
        made.append(Worker(env, tmp_path / f"{name}.log", topics=topics))
        return made[-1]

    yield make
    for each in made:
        each.stop()
