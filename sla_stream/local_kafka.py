"""Run a real single-node Apache Kafka broker (KRaft) on loopback, without Docker."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from sla_stream import local_kafka_security as security
from sla_stream.local_kafka_jars import (
    DEFAULT_KAFKA_VERSION,
    BrokerError,
    cache_dir,
    fetch_jars,
    kafka_version,
    require,
)

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerError",
    "LocalBroker",
    "cache_dir",
    "create_topics",
    "fetch_jars",
    "free_port",
    "kafka_version",
    "port_in_use",
    "wait_ready",
]

SCRAM_MECHANISMS = security.SCRAM_MECHANISMS
_T = TypeVar("_T")
_LOG4J2 = """status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.kafkaserver.name = kafka.server.KafkaRaftServer
logger.kafkaserver.level = INFO
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
"""


def free_port() -> int:
    """Return a currently unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on (or holds) ``host:port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion, even when called from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _describe_cluster(bootstrap: str, limit: float, auth: Mapping[str, Any]) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(limit * 1000), **auth)
    try:
        async with asyncio.timeout(limit):
            await admin.start()
            info: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    if not info.get("brokers"):
        raise BrokerError("cluster has no live brokers yet")
    return info


def wait_ready(
    bootstrap: str,
    timeout: float = 60.0,
    alive: Callable[[], bool] | None = None,
    auth: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Retry a real admin request (describe_cluster) until it succeeds; return its result.

    Blocking (safe to call from inside an event loop, but it blocks that loop). ``alive``
    aborts the wait once it returns False. Raises BrokerError on timeout or abort.
    ``auth``: aiokafka security arguments, e.g. :attr:`LocalBroker.auth`.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if alive is not None and not alive():
            raise BrokerError("broker process exited before becoming ready")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s ({last!r})")
        try:
            host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
            socket.create_connection((host, int(port)), timeout=1).close()  # cheap, quiet probe
            return _run_sync(_describe_cluster(bootstrap, max(1.0, min(5.0, remaining)), auth or {}))
        except Exception as exc:  # broker not up yet: connection refused, timeouts, ...
            last = exc
            time.sleep(0.3)


async def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    config: dict[str, str] | None = None,
    leader_wait: float = 30.0,
    auth: Mapping[str, Any] | None = None,
) -> None:
    """Create ``{name: partitions}`` topics (replication 1) and wait for their leaders.

    Existing topics are left as they are (their partition count is not checked).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(auth or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, n, 1, topic_configs=dict(config or {}))
            for name, n in topics.items()
            if name not in existing
        ]
        if new:
            resp = await admin.create_topics(new)
            for topic, code, *msg in resp.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise BrokerError(f"creating topic {topic!r} failed: {for_code(code).__name__} {msg}")
        deadline = time.monotonic() + leader_wait
        while True:
            described = await admin.describe_topics(list(topics))
            if all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"topics {sorted(topics)} have no leaders after {leader_wait:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return "(missing)"
    return "\n".join(lines)


@dataclass
class LocalBroker:
    """A single-node KRaft Kafka (broker+controller) whose state lives in ``data_dir``; with
    ``scram_users`` and ``tls``, secured as :mod:`sla_stream.local_kafka_security` says."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    version: str = field(default_factory=kafka_version)
    heap: str = "512m"
    extra_properties: dict[str, str] = field(default_factory=dict)
    scram_users: dict[str, str] = field(default_factory=dict, repr=False)
    tls: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        problem = security.scram_user_problem(self.scram_users)
        if problem:
            raise BrokerError(problem)

    @property
    def bootstrap(self) -> str:
        """Bootstrap address, ``127.0.0.1:<port>``, speaking :attr:`security_protocol`."""
        return f"127.0.0.1:{self.port}"

    @property
    def security_protocol(self) -> str:
        """What clients speak on ``bootstrap``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        return ("SASL_" if self.scram_users else "") + ("SSL" if self.tls else "PLAINTEXT")

    @property
    def ca_file(self) -> Path:
        """With ``tls``: the CA certificate (PEM) the broker's certificate is signed by."""
        return self.data_dir / "tls" / "ca.pem"

    @property
    def auth(self) -> dict[str, Any]:
        """aiokafka security arguments for ``bootstrap``: the first SCRAM user's (SHA-256) and a
        TLS context trusting :attr:`ca_file`, as the broker wants them."""
        return security.client_auth(
            self.security_protocol, self.ca_file if self.tls else None, self.scram_users
        )

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    def properties(self) -> dict[str, str]:
        """The full server.properties content (extra_properties win)."""
        p, c = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{c}",
            "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "16777216",
            "min.insync.replicas": "1",
        }
        # The client listener (also the inter-broker one) as scram_users and tls make it.
        listener = security.listener_properties(
            self.security_protocol, p, c, self.scram_users, self.ca_file if self.tls else None
        )
        return {**props, **listener, **self.extra_properties}

    def _java(self, libs: Path, *args: str) -> list[str]:
        log4j = self.data_dir / "log4j2.properties"
        return [require("java"), f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*", *args]

    def _storage_tool(self, libs: Path, *args: str) -> str:
        res = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", *args), capture_output=True, text=True, timeout=120
        )
        if res.returncode != 0:
            raise BrokerError(f"StorageTool {args[0]} failed:\n{(res.stderr or res.stdout)[-2000:]}")
        return res.stdout.strip()

    def _read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ProcessLookupError, PermissionError):
            return None
        except OSError:  # no /proc (e.g. macOS): trust the live pid
            return pid
        return pid if b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline else None

    @classmethod
    def running(cls, data_dir: Path) -> LocalBroker | None:
        """The broker another process started for ``data_dir`` and left running, on its own
        ports; None when there is none. A secured one is a BrokerError (its users are unknown)."""
        found = cls(data_dir)
        if found._read_pid() is None:
            return None
        lines = found.properties_file.read_text().splitlines()
        props = dict(line.partition("=")[::2] for line in lines)
        protocol, _, port = props.get("advertised.listeners", "").partition("://127.0.0.1:")
        if protocol != "PLAINTEXT":
            raise BrokerError(
                f"a broker speaking {protocol or 'an unknown protocol'} runs for {found.data_dir};"
                f" stop it first: deploy/kafka/local-broker stop --data-dir {found.data_dir}"
            )
        found.port = int(port)
        found.controller_port = int(props["controller.quorum.voters"].rpartition(":")[2])
        return found

    def is_running(self) -> bool:
        """True while the broker JVM for this data dir is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._read_pid() is not None

    def start(self, timeout: float = 180.0) -> LocalBroker:
        """Fetch jars, format storage if new, launch the JVM and wait for an admin round-trip."""
        if self.is_running():
            raise BrokerError(f"a broker is already running for {self.data_dir}")
        libs = fetch_jars(self.version)
        require("java")
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise BrokerError(f"port 127.0.0.1:{port} is already in use")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.tls:
            security.make_certificates(self.ca_file, require("openssl"), BrokerError)
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.data_dir / "server.log"))
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = self._storage_tool(libs, "random-uuid").splitlines()[-1].strip()
            self._storage_tool(
                libs,
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties_file),
                *security.scram_arguments(self.scram_users),
            )
        cmd = self._java(libs, "kafka.Kafka", str(self.properties_file))
        cmd[1:1] = [f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
        with open(self.data_dir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            wait_ready(self.bootstrap, timeout, alive=self.is_running, auth=self.auth)
        except BrokerError as exc:
            rc = self._proc.poll()
            self.kill()
            state = f"exited with code {rc}" if rc is not None else f"failed to start: {exc}"
            raise BrokerError(
                f"Kafka broker {state} ({self.data_dir})\n--- server.log ---\n"
                f"{_tail(self.data_dir / 'server.log')}\n--- stdout.log ---\n"
                f"{_tail(self.data_dir / 'stdout.log')}"
            ) from None
        return self

    def _signal(self, sig: signal.Signals, timeout: float) -> bool:
        """Send ``sig`` to the broker and wait up to ``timeout`` s; True once it is gone."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout)
            return self._proc.poll() is not None
        pid = self._read_pid()
        if pid is not None:
            os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while self._read_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        return self._read_pid() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL after ``timeout`` s. Idempotent."""
        if not self._signal(signal.SIGTERM, timeout):
            self._signal(signal.SIGKILL, 10)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker immediately (simulates a crash). Idempotent."""
        self._signal(signal.SIGKILL, 10)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").partition("\n")[0].rstrip("\r")
    except OSError as exc:
        raise BrokerError(f"--scram-password-file: cannot read {path} ({exc.strerror})") from None


def _say(line: str) -> None:
    print(f"local-broker: {line}", file=sys.stderr, flush=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: fetch | start | stop | status | run."""
    ap = argparse.ArgumentParser(prog="local-broker", description=__doc__)
    ap.add_argument("command", choices=["fetch", "start", "stop", "status", "run"])
    ap.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    ap.add_argument("--port", type=int, default=19092)
    ap.add_argument("--controller-port", type=int, default=19093)
    ap.add_argument("--version", default=kafka_version(), help="Kafka version")
    ap.add_argument("--timeout", type=float, default=180.0, help="startup timeout in seconds")
    ap.add_argument("--scram-user", help="clients must log in with SASL/SCRAM as this user")
    ap.add_argument("--scram-password-file", type=Path, help="the SCRAM user's password (first line)")
    ap.add_argument("--tls", action="store_true", help="TLS on the client port (CA in DATA_DIR/tls/ca.pem)")
    args = ap.parse_args(argv)
    if bool(args.scram_user) != bool(args.scram_password_file):
        ap.error("--scram-user and --scram-password-file go together")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries while waiting are expected
    try:
        users = {args.scram_user: _first_line(args.scram_password_file)} if args.scram_user else {}
        broker = LocalBroker(
            args.data_dir, args.port, args.controller_port, args.version, scram_users=users, tls=args.tls
        )
    except BrokerError as exc:
        print(f"local-broker: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "fetch":
            print(fetch_jars(args.version, say=_say))
        elif args.command == "stop":
            broker.stop()
            print("stopped")
        elif args.command == "status":
            info = wait_ready(broker.bootstrap, timeout=5, auth=broker.auth)
            print(f"ready at {broker.bootstrap} (cluster {info.get('cluster_id')})")
        elif args.command == "start":
            if not broker.is_running():
                fetch_jars(args.version, say=_say)
                broker.start(args.timeout)
            print(broker.bootstrap)
        else:  # run: foreground until Ctrl-C / SIGTERM, then stop the broker
            signal.signal(signal.SIGTERM, _interrupt)
            fetch_jars(args.version, say=_say)
            broker.start(args.timeout)
            where = f"{broker.bootstrap} ({broker.security_protocol})"
            print(f"Kafka {args.version} ready at {where} (Ctrl-C to stop)", flush=True)
            while broker.is_running():
                time.sleep(0.5)
            raise BrokerError(f"broker exited unexpectedly; see {broker.data_dir / 'server.log'}")
    except BrokerError as exc:
        print(f"local-broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        broker.stop()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
