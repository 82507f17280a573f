"""Run a real Prometheus (Debian's package) on loopback, scraping the worker with the project's rules."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sla_stream.local_kafka import port_in_use

#: The repository's Prometheus files (there in a checkout; a wheel has none).
DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = DEPLOY / "rules"
INSTALL = "install Debian's prometheus package (apt-get install prometheus), or run make install"
#: The demo's Prometheus port: not 9090, which the Debian package's own service takes where systemd
#: runs (installing the package starts it), as the local broker's 19092 is not Kafka's 9092.
PORT = 19090


class PrometheusError(RuntimeError):
    """Prometheus could not be found, started or reached; the message says what to do."""


def binary() -> str:
    """The ``prometheus`` executable, or a PrometheusError naming what to install."""
    if found := shutil.which("prometheus"):
        return found
    raise PrometheusError(f"prometheus is not installed: {INSTALL}")


def config(targets: list[str], rule_files: list[str], interval: str = "5s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml (the Docker stack's), scraping ``targets`` every ``interval``
    with ``rule_files`` (paths or globs): the same job name and paths, so the rules read alike."""
    base: dict[str, Any] = {}
    with contextlib.suppress(OSError):
        base = yaml.safe_load((DEPLOY / "prometheus.yml").read_text()) or {}
    jobs = base.get("scrape_configs") or [{"job_name": "sla-stream", "metrics_path": "/metrics"}]
    job = {**jobs[0], "static_configs": [{"targets": list(targets)}]}
    return {
        **base,
        "global": {**base.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": [job],
    }


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclass
class LocalPrometheus:
    """A Prometheus whose config, log and storage (``data/``) live in ``directory``."""

    directory: Path
    targets: list[str]
    port: int = PORT
    host: str = "127.0.0.1"
    interval: str = "5s"
    rule_files: list[str] = field(default_factory=lambda: [str(RULES / "*.yml")])
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).expanduser().resolve()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.directory / "prometheus.yml"

    @property
    def log_file(self) -> Path:
        return self.directory / "prometheus.log"

    @property
    def pid_file(self) -> Path:
        return self.directory / "prometheus.pid"

    def page(self, name: str) -> str:
        """The address of a UI page (``graph``, ``alerts``, ``rules``, ``targets``): Debian's
        package serves the classic UI, under ``/classic/``; upstream's builds at the top."""
        return next(
            (url for url in (f"{self.url}/{name}", f"{self.url}/classic/{name}") if _get(url) == 200),
            f"{self.url}/{name}",
        )

    def _leftover(self) -> int | None:
        """The pid of a Prometheus of this directory still running (its starter was killed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.config_file).encode() in cmdline else None

    def check(self) -> None:
        """A PrometheusError saying what to do unless this one can start: the binary installed,
        the port free (once one of ours that a killed run left is stopped)."""
        binary()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if (pid := self._leftover()) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                for _ in range(100):
                    if self._leftover() is None:
                        break
                    time.sleep(0.1)
        if port_in_use(self.port, self.host):
            raise PrometheusError(
                f"{self.host}:{self.port} is already in use (another demo's Prometheus?):"
                " stop it, or choose another port (--prometheus-port)"
            )

    def start(self, timeout: float = 60.0) -> LocalPrometheus:
        """Write the config, start Prometheus and wait until it is ready."""
        self.check()
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(config(self.targets, self.rule_files, self.interval)))
        with self.log_file.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    binary(),
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address={self.host}:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C is for the demo, which stops Prometheus last
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + timeout
        while _get(f"{self.url}/-/ready") != 200:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                last = self.log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty)"]
                raise PrometheusError(f"prometheus did not start ({last[0]}); see {self.log_file}")
            time.sleep(0.3)
        return self

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Prometheus closes its storage), SIGKILL after ``timeout`` s. Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
