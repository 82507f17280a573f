"""``sla-stream demo`` as people run it (``make run | tee run.log``, ``| head``, Ctrl-C, a closed
terminal, ``make broker`` first, ``--prometheus``): whatever ends it, nothing it started is left."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from helpers import REPO

from sla_stream.local_kafka import LocalBroker, free_port, port_in_use

pytestmark = pytest.mark.integration

#: The last line of the demo's banner, printed once everything runs.
BANNER_END = "alerts appear below"


def broker_port() -> int:
    """A free port whose next one (the demo's controller port) is free too."""
    while True:
        port = free_port()
        if port < 65535 and not port_in_use(port + 1):
            return port


def running(marker: Path) -> list[int]:
    """Processes whose command line names ``marker`` (a broker's server.properties, a Prometheus's config)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(marker).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


class Demo:
    """A demo process in its own process group (as a shell job is), its output in a pipe we read."""

    def __init__(self, cwd: Path, *args: str, **more_env: str) -> None:
        self.cwd = cwd
        self.port = broker_port()
        settings = {
            "bootstrap_servers": f"127.0.0.1:{self.port}",
            "web_port": free_port(),
            "contracts_dir": str(REPO / "examples" / "contracts"),
        }
        (cwd / "settings.yaml").write_text(yaml.safe_dump(settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_STREAM_")}
        env["SLA_STREAM_CONFIG"] = str(cwd / "settings.yaml")
        env.update(more_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sla_stream.cli", "demo", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # like `make run 2>&1 | tee run.log`
            start_new_session=True,
        )
        self.text = ""

    @property
    def kafka(self) -> Path:
        return (self.cwd / "var" / "kafka").resolve()

    @property
    def prometheus(self) -> Path:
        return (self.cwd / "var" / "prometheus" / "prometheus.yml").resolve()

    def read_until(self, marker: str, timeout: float = 240) -> str:
        """What the demo printed, up to ``marker``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None, f"no {marker!r} in:\n{self.text}\n{self.logs()}"
            if select.select([fd], [], [], min(left, 1.0))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"output ended before {marker!r}:\n{self.text}\n{self.logs()}")
                self.text += chunk.decode(errors="replace")
        return self.text

    def close_reader(self) -> None:
        """The reader of the pipe goes away, as ``head`` does after its lines or ``tee`` on Ctrl-C."""
        assert self.process.stdout is not None
        self.process.stdout.close()

    def signal_group(self, sig: int) -> None:
        """As the terminal does: Ctrl-C (SIGINT) or closing it (SIGHUP) signals the whole job."""
        os.killpg(self.process.pid, sig)

    def wait(self, timeout: float = 150) -> int:
        return self.process.wait(timeout)

    def group_left(self) -> bool:
        """Whether any process of the demo's process group (worker, simulator) is still there."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def logs(self) -> str:
        parts = []
        for log in ("demo/worker.log", "kafka/server.log", "prometheus/prometheus.log"):
            path = self.cwd / "var" / log
            if path.exists():
                parts.append(
                    f"--- {log} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                )
        return "\n".join(parts)

    def drain(self) -> None:
        """Read what is there, as a terminal would, so that the demo never waits on a full pipe."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while select.select([fd], [], [], 0)[0] and (chunk := os.read(fd, 65536)):
            self.text += chunk.decode(errors="replace")

    def clean_up(self) -> None:
        """After a failed test: nothing of it may outlive the session."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(30)
        for pid in running(self.kafka / "server.properties") + running(self.prometheus):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[type[Demo]]:
    made: list[Demo] = []

    class Made(Demo):
        def __init__(self, *args: str, **more_env: str) -> None:
            super().__init__(tmp_path, *args, **more_env)
            made.append(self)

    yield Made
    for each in made:
        each.clean_up()


_names = itertools.count(1)


def own_topics(broker: LocalBroker) -> dict[str, str]:
    """The demo's settings for topics of its own on ``broker`` (the session's)."""
    name = f"demo{os.getpid()}n{next(_names)}"
    topics = (
        "tickets",
        "calls",
        "requests",
        "items",
        "alerts",
        "penalties",
        "deadletter",
        "ticks",
        "contracts",
    )
    return {
        "SLA_STREAM_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SLA_STREAM_APP_ID": name,
        **{f"SLA_STREAM_TOPIC_{topic.upper()}": f"{name}.{topic}" for topic in topics},
    }


def test_a_worker_that_stops_while_starting_is_one_line_saying_why(demo, broker: LocalBroker) -> None:
    # A Kafka of one's own whose ticket topic has another partition count than the worker's 8.
    env = own_topics(broker)
    tickets = env["SLA_STREAM_TOPIC_TICKETS"]

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(tickets, num_partitions=3, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())
    run = demo(**env)
    assert run.wait() == 2
    run.drain()
    # Not only "see var/demo/worker.log": what stopped it, from that log.
    assert run.text.splitlines()[-1] == (
        f"sla-stream: error: the worker stopped while starting (exit 2): topic {tickets} has 3 partitions"
        " but the worker is set to 8 (set SLA_STREAM_PARTITIONS=3, or recreate the topic);"
        " see var/demo/worker.log"
    )
    assert not run.group_left()


def children_of(pid: int) -> dict[int, bytes]:
    """The processes whose parent is ``pid``, with their command lines."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "stat").read_text().rpartition(")")[2].split()[1] == str(pid):
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
    return found


def test_a_child_that_stops_while_alerts_are_shown_ends_the_demo_with_an_error(demo, broker) -> None:
    run = demo(**own_topics(broker))
    run.read_until(BANNER_END)
    simulator = [pid for pid, cmdline in children_of(run.process.pid).items() if b"\0simulate\0" in cmdline]
    assert len(simulator) == 1, children_of(run.process.pid)
    os.kill(simulator[0], signal.SIGKILL)
    status = run.wait()
    run.drain()
    said = [line for line in run.text.splitlines() if line.startswith("sla-stream: error: ")]
    assert len(said) == 1, run.text
    assert said[0].startswith("sla-stream: error: the simulator stopped (killed by SIGKILL)")
    assert said[0].endswith("; see var/demo/simulate.log")
    assert status == 1
    assert not run.group_left(), "the worker was left running"


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c to the job", "the terminal closed"]
)
def test_a_demo_stopped_with_its_pipe_gone_stops_its_broker_worker_and_simulator(demo, sig) -> None:
    run = demo()
    banner = run.read_until(BANNER_END)
    assert "starting a local Kafka broker" in banner
    assert running(run.kafka / "server.properties"), "the demo's broker should be running"

    # `make run 2>&1 | tee run.log`, then Ctrl-C: tee is gone too, so every line the demo prints
    # while it stops fails to write.
    run.close_reader()
    run.signal_group(sig)
    status = run.wait()
    assert not running(run.kafka / "server.properties"), "the broker was left running"
    assert not run.group_left(), "the worker or the simulator was left running"
    assert status == 128 + sig


def test_a_demo_whose_reader_goes_away_stops_everything_by_itself(demo) -> None:
    run = demo()
    run.read_until(BANNER_END)
    run.close_reader()  # `| head -n 5`: head has its lines and exits; nobody reads the alerts
    status = run.wait()
    assert not running(run.kafka / "server.properties"), "the broker was left running"
    assert not run.group_left(), "the worker or the simulator was left running"
    assert status == 0


def test_a_broker_already_running_for_var_kafka_is_used_and_left_running(demo, tmp_path) -> None:
    port = broker_port()  # as `make broker` would
    broker = LocalBroker(tmp_path / "var" / "kafka", port=port, controller_port=port + 1)
    broker.start()
    try:
        run = demo()
        banner = run.read_until(BANNER_END)
        assert f"using the broker already running for var/kafka on 127.0.0.1:{port}" in banner
        assert "left running" in banner
        run.process.send_signal(signal.SIGTERM)  # `kill <pid>` of the demo alone
        tail = run.read_until("stays running")
        assert run.wait() == 128 + signal.SIGTERM
        assert "stopping the local broker" not in tail
        assert broker.is_running(), "a broker the demo did not start was stopped"
        assert not run.group_left(), "the worker or the simulator was left running"
    finally:
        broker.stop()


def prometheus_api(url: str, path: str, **query: str) -> dict:
    address = f"{url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(address, timeout=5) as answer:
            return json.loads(answer.read())["data"]
    except OSError:
        return {}


def test_demo_with_prometheus_shows_the_sla_gauges_and_the_projects_rules_then_stops_both(demo) -> None:
    port = free_port()
    run = demo("--prometheus", "--prometheus-port", str(port))
    url = f"http://127.0.0.1:{port}"
    banner = run.read_until(BANNER_END)
    assert f"demo: Prometheus {url} scrapes the worker every 5 s" in banner
    assert "/alerts" in banner

    # Prometheus scrapes the demo worker: its SLA gauges have data, and the project's rules are loaded.
    deadline = time.monotonic() + 120
    gauges: list[dict] = []
    groups: set[str] = set()
    while time.monotonic() < deadline and not (gauges and groups):
        gauges = prometheus_api(url, "query", query='sla_open_clocks{job="sla-stream"}').get("result", [])
        groups = {group["name"] for group in prometheus_api(url, "rules").get("groups", [])}
        run.drain()
        time.sleep(1)
    assert gauges, run.logs()
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules" / "sla-stream.yml").read_text())
    assert groups == {group["name"] for group in rules["groups"]}
    assert (run.cwd / "var" / "prometheus" / "data").is_dir()

    run.signal_group(signal.SIGINT)
    status = run.wait()
    assert not running(run.kafka / "server.properties"), "the broker was left running"
    assert not running(run.prometheus), "Prometheus was left running"
    assert not run.group_left(), "the worker or the simulator was left running"
    assert status == 128 + signal.SIGINT
