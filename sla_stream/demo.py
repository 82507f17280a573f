"""``sla-stream demo``: a local broker, the worker and simulated traffic, with alerts on screen.

The broker is started from the Kafka jars (see :mod:`sla_stream.local_kafka`) unless
``SLA_STREAM_BOOTSTRAP_SERVERS`` names one; a broker already running for var/kafka (``make
broker``) is used and left running. With ``--prometheus``, a real Prometheus scrapes the worker
(:mod:`sla_stream.local_prometheus`). Whatever ends the demo (Ctrl-C, SIGTERM, SIGHUP from a
closed terminal, the reader of its output going away, an error), what it started is stopped; the
worker or the simulator stopping by itself ends it with one line saying which, and why, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import orjson
from aiokafka import AIOKafkaConsumer

from sla_stream.kafka_client import client_kwargs
from sla_stream.local_kafka import BrokerError, LocalBroker, fetch_jars, port_in_use, wait_ready
from sla_stream.local_prometheus import PORT, LocalPrometheus, PrometheusError
from sla_stream.settings import Settings, load_settings

_VAR = Path("var")
#: The chance, per new ticket, that the simulator also sends a malformed message (the dead-letter path).
_BAD_SHARE = 0.01
#: Seconds between two "still waiting" lines while something starts.
_PROGRESS_EVERY = 5.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoError(Exception):
    """Something in the demo's way; the message is one line saying what to do."""

    status = 2


class ChildStopped(DemoError):
    """The worker or the simulator stopped while the demo showed alerts: not the user's doing."""

    status = 1


@dataclass(frozen=True)
class _Child:
    """A process the demo started: the worker or the simulator."""

    name: str
    log: Path
    process: subprocess.Popen[bytes]

    def stopped(self, when: str = "") -> str:
        """A line naming it, saying how it ended (``when``: e.g. "while starting") and what it
        said last."""
        code = self.process.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        said = _last_line(self.log, width=300)
        when, said = (f" {when}" if when else ""), (f": {said}" if said else "")
        return f"the {self.name} stopped{when} ({how}){said}; see {self.log}"


class _Screen:
    """Lines for the user on stdout, which may be a pipe whose reader goes away (``| head``, or
    ``| tee`` killed by the same Ctrl-C) or a terminal that was closed: after the first failed
    write the rest go nowhere, ``gone`` is set, and the demo stops (nobody is watching)."""

    def __init__(self) -> None:
        self.gone = False

    def say(self, line: str = "") -> None:
        if self.gone:
            return
        try:
            print(line, flush=True)
        except (OSError, ValueError):
            self.gone = True
            with contextlib.suppress(OSError):
                # Whatever is still buffered, and the interpreter's flush at exit, must not fail again.
                same = os.path.sameopenfile(1, 2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                if same:
                    os.dup2(devnull, 2)


class _Stop:
    """SIGINT, SIGTERM and SIGHUP all ask the demo to stop. While it starts things the signal is
    raised as KeyboardInterrupt; while it shows alerts (which polls ``signal``) and while it stops
    what it started, it is only noted, so nothing cuts the stopping short."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.raising = True

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum
        if self.raising:
            self.raising = False
            raise KeyboardInterrupt


def run_demo(
    minutes: float = 0, rate: float = 2.0, prometheus: bool = False, prometheus_port: int = PORT
) -> int:
    """Run the demo until ``minutes`` have passed (0: until stopped); its exit status."""
    settings = load_settings()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries while things start are expected
    screen, stop = _Screen(), _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in _SIGNALS}
    started = contextlib.ExitStack()  # what to stop at the end, last started first
    try:
        with contextlib.suppress(KeyboardInterrupt):
            _run(settings, minutes, rate, prometheus_port if prometheus else None, screen, stop, started)
    except (DemoError, BrokerError, PrometheusError) as exc:
        first = str(exc).partition("\n")[0]
        with contextlib.suppress(OSError, ValueError):
            print(f"sla-stream: error: {first}", file=sys.stderr, flush=True)
        return exc.status if isinstance(exc, DemoError) else 2
    finally:
        stop.raising = False
        try:
            started.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 128 + stop.signal if stop.signal else 0


def _run(
    settings: Settings,
    minutes: float,
    rate: float,
    prometheus_port: int | None,
    screen: _Screen,
    stop: _Stop,
    started: contextlib.ExitStack,
) -> None:
    if port_in_use(settings.web_port, settings.web_host):
        raise DemoError(
            f"{settings.web_host}:{settings.web_port}, the worker's metrics port, is already in use"
            " (another worker or demo?): stop it, or set SLA_STREAM_WEB_PORT to a free port"
        )
    server = None
    if prometheus_port is not None:
        target = f"{settings.web_host}:{settings.web_port}"
        server = LocalPrometheus(_VAR / "prometheus", [target], prometheus_port)
        server.check()
    if "SLA_STREAM_BOOTSTRAP_SERVERS" not in os.environ:
        settings = _broker(settings, screen, started)
    if screen.gone:  # nobody reads what follows (`| head` has had its lines)
        return
    if server is not None:  # before the worker, so that it is scraped from its start
        started.callback(_stop_prometheus, server, screen)
        server.start()
        screen.say(
            f"demo: Prometheus {server.url} scrapes the worker every 5 s; the project's rules and what"
            f" fires: {server.page('alerts')} (its data in {_VAR / 'prometheus'})"
        )
    env = {**os.environ, "SLA_STREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    logs = _VAR / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[_Child] = []
    started.callback(_stop_children, children, screen)
    screen.say(f"demo: starting the worker (log: {logs / 'worker.log'}) ...")
    began = time.monotonic()
    children.append(_spawn("worker", ["worker"], env, logs / "worker.log"))
    _wait_ready(settings, children[0], screen)
    if screen.gone:
        return
    metrics = f"http://{settings.web_host}:{settings.web_port}/metrics"
    screen.say(
        f"demo: worker ready in {time.monotonic() - began:.1f} s (its topics created; metrics: {metrics})"
    )
    simulate = ["simulate", "--rate", str(rate), "--bad-share", str(_BAD_SHARE)]
    children.append(
        _spawn(
            "simulator", [*simulate, "--seed", str(int(time.time()) % 100_000)], env, logs / "simulate.log"
        )
    )
    screen.say("demo: simulated ticket, call, request and parcel traffic started")
    screen.say(
        f"demo: dead-letter lines are the simulator's deliberate bad messages (--bad-share {_BAD_SHARE}:"
        f" about {rate * _BAD_SHARE * 60:.2g} a minute), sent to show the dead-letter path"
    )
    screen.say(
        "demo: state stays in var/ (the next run resumes where this one stopped; make clean starts afresh)"
    )
    screen.say("demo: alerts appear below (Ctrl-C stops everything)\n")
    stop.raising = False  # from now on, _show polls stop.signal
    if stop.signal is None:
        asyncio.run(_show(settings, minutes * 60 if minutes else None, children, screen, stop))


def _broker(settings: Settings, screen: _Screen, started: contextlib.ExitStack) -> Settings:
    """The local broker of var/kafka: the one already running, or one started (and stopped at the end)."""
    running = LocalBroker.running(_VAR / "kafka")
    if running is not None:
        screen.say(
            f"demo: using the broker already running for {_VAR / 'kafka'} on {running.bootstrap}"
            " (left running at the end; make broker-stop stops it)"
        )
        started.callback(screen.say, f"demo: the broker of {_VAR / 'kafka'} stays running, as it was")
        try:
            wait_ready(running.bootstrap, timeout=60)
        except BrokerError:
            raise DemoError(
                f"the broker running for {_VAR / 'kafka'} does not answer on {running.bootstrap}:"
                " stop it (make broker-stop) and run again"
            ) from None
        return replace(settings, bootstrap_servers=running.bootstrap)
    _host, _, port = settings.bootstrap_servers.rpartition(":")
    broker = LocalBroker(data_dir=_VAR / "kafka", port=int(port), controller_port=int(port) + 1)
    for taken in (broker.port, broker.controller_port):
        if port_in_use(taken):
            raise DemoError(
                f"127.0.0.1:{taken}, the local broker's port, is taken by another program: stop it, or"
                " point the demo at a Kafka of yours with SLA_STREAM_BOOTSTRAP_SERVERS=host:port"
            )
    fetch_jars(broker.version, say=lambda line: screen.say(f"demo: {line}"))
    screen.say(f"demo: starting a local Kafka broker on {broker.bootstrap} (data in {_VAR / 'kafka'}) ...")
    began = time.monotonic()
    started.callback(_stop_broker, broker, screen)
    try:
        broker.start()
    except BrokerError as exc:
        raise DemoError(f"{str(exc).partition(chr(10))[0]}; see {broker.data_dir / 'server.log'}") from None
    screen.say(f"demo: broker ready in {time.monotonic() - began:.1f} s")
    return settings


def _spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> _Child:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sla_stream.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return _Child(name, log, process)


def _stop_children(children: list[_Child], screen: _Screen) -> None:
    """The simulator and the worker: SIGTERM together (a graceful stop), SIGKILL after 30 s."""
    alive = [child.process for child in children if child.process.poll() is None]
    if not alive:
        return
    screen.say("demo: stopping the simulator and the worker ...")
    for child in alive:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in alive:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _stop_prometheus(server: LocalPrometheus, screen: _Screen) -> None:
    screen.say("demo: stopping Prometheus")
    server.stop()


def _stop_broker(broker: LocalBroker, screen: _Screen) -> None:
    screen.say(f"demo: stopping the local broker (its data stays in {_VAR / 'kafka'})")
    broker.stop()


def _wait_ready(settings: Settings, worker: _Child, screen: _Screen, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    url = f"http://{settings.web_host}:{settings.web_port}/readyz"
    began = time.monotonic()
    said = began
    while time.monotonic() < began + timeout:
        if worker.process.poll() is not None:
            # What stopped it (a topic of another partition count, say) is the last thing it said.
            raise DemoError(worker.stopped("while starting"))
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        if time.monotonic() - said >= _PROGRESS_EVERY:
            said = time.monotonic()
            screen.say(f"demo:   ... {said - began:.0f} s: {_last_line(worker.log) or 'starting'}")
        time.sleep(0.5)
    raise DemoError(f"the worker was not ready after {timeout:.0f} s; see {worker.log}")


def _last_line(log: Path, width: int = 100) -> str:
    """A child's latest log line, without its time stamp (or its own ``sla-stream: error:``),
    cut to ``width``."""
    try:
        lines = log.read_bytes()[-4000:].decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    if not lines:
        return ""
    return re.sub(r"^(\[[^\]]*\] ){1,3}|^sla-stream: error: ", "", lines[-1])[:width]


async def _show(
    settings: Settings,
    seconds: float | None,
    children: list[_Child],
    screen: _Screen,
    stop: _Stop,
) -> None:
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
        while (ends is None or time.monotonic() < ends) and stop.signal is None and not screen.gone:
            gone = next((child for child in children if child.process.poll() is not None), None)
            if gone is not None and stop.signal is None:  # not stopped by a Ctrl-C to all of them
                raise ChildStopped(gone.stopped())
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    line, kind = _describe(record.topic == topics.deadletter, record.value or b"{}")
                    counts[kind] = counts.get(kind, 0) + 1
                    if record.topic == topics.deadletter:
                        line += "  (simulated bad input, on purpose)"
                    screen.say(line)
    finally:
        await consumer.stop()
        screen.say("\ndemo: seen " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"))


def _describe(dead: bool, value: bytes) -> tuple[str, str]:
    record = orjson.loads(value)
    if dead:
        return f"  dead-letter  {record['reason']}: {record['detail']}", "dead-letter"
    from sla_stream.alert_lines import alert_line

    return alert_line(record, colour=sys.stdout.isatty()), record["kind"]
