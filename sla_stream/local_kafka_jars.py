"""The local broker's jars: fetched once with Maven from Maven Central into a cache, saying how it goes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

DEFAULT_KAFKA_VERSION = "4.3.1"
#: Seconds between two progress lines while Maven downloads.
PROGRESS_EVERY = 5.0
_DEP = "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local.sla-stream</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging><dependencies>
    {deps}
  </dependencies></project>
"""
# Maven's own line per file fetched: "Downloaded from central: https://... (5.6 MB at 2.1 MB/s)".
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: \S+ \((?P<size>[\d.]+) (?P<unit>[kMG]?B)")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


class BrokerError(RuntimeError):
    """A broker could not be fetched, formatted, started or reached."""


def kafka_version() -> str:
    """Kafka version to use: env SLA_STREAM_KAFKA_VERSION or DEFAULT_KAFKA_VERSION."""
    return os.environ.get("SLA_STREAM_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION


def cache_dir() -> Path:
    """Jar cache root: env SLA_STREAM_KAFKA_CACHE or ~/.cache/sla-stream/kafka."""
    return Path(os.environ.get("SLA_STREAM_KAFKA_CACHE") or "~/.cache/sla-stream/kafka").expanduser()


def require(tool: str) -> str:
    """The path of ``tool`` on PATH, or a BrokerError naming it."""
    if path := shutil.which(tool):
        return path
    raise BrokerError(f"'{tool}' not found on PATH (install it to run a local Kafka broker)")


def fetch_jars(version: str | None = None, say: Callable[[str], object] | None = None) -> Path:
    """Download Kafka and its runtime dependencies with Maven once; return the libs dir.

    ``say`` gets one line before a fetch (what, from where, into where), a progress line every
    :data:`PROGRESS_EVERY` seconds, and how long it took; nothing when the jars are cached.
    """
    version = version or kafka_version()
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / ".complete"

    def done() -> bool:
        return marker.exists() and (libs / f"kafka_2.13-{version}.jar").exists()

    if done():
        return libs
    mvn = require("mvn")
    tell = say or (lambda _line: None)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:  # serialise concurrent fetches
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            tell(f"another process is fetching Kafka {version}'s jars into {libs}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if done():
            return libs
        deps = [
            ("org.apache.kafka", "kafka_2.13", version),
            ("org.slf4j", "slf4j-api", "2.0.17"),
            ("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.25.3"),
            ("org.apache.logging.log4j", "log4j-core", "2.25.3"),
        ]
        pom = home / "pom.xml"
        pom.write_text(_POM.format(deps="\n    ".join(_DEP.format(*d) for d in deps)))
        cmd = [
            mvn,
            "-B",
            "-f",
            str(pom),
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        tell(
            f"fetching Kafka {version}'s jars with Maven from Maven Central into {libs}"
            " (first time only; usually 5-40 s)"
        )
        started = time.monotonic()
        rc, files, size = _maven(cmd, home / "mvn.log", tell, started)
        if rc != 0 or not (libs / f"kafka_2.13-{version}.jar").exists():
            raise BrokerError(f"Maven failed to fetch Kafka {version} (exit {rc}); see {home / 'mvn.log'}")
        marker.write_text(version + "\n")
        source = (
            f"{files} files, {size / 1e6:.1f} MB downloaded" if files else "from Maven's local repository"
        )
        tell(f"fetched Kafka {version}'s jars in {time.monotonic() - started:.1f} s ({source})")
    return libs


def _maven(
    cmd: list[str], log: Path, tell: Callable[[str], object], started: float, limit: float = 900
) -> tuple[int, int, float]:
    """Run Maven with its output in ``log``; return its exit code, files and bytes downloaded.

    Maven's own lines (hundreds, one per file) are condensed into a count every few seconds.
    """
    counts = [0, 0.0]

    def read(stream: IO[str], out: IO[str]) -> None:
        for line in stream:
            out.write(line)
            if found := _DOWNLOADED.search(line):
                counts[0] += 1
                counts[1] += float(found["size"]) * _UNITS[found["unit"]]

    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        reader = threading.Thread(target=read, args=(proc.stdout, out), daemon=True)
        reader.start()
        try:
            said = started
            while proc.poll() is None:
                now = time.monotonic()
                if now - started > limit:
                    proc.kill()
                    proc.wait()
                    return -1, int(counts[0]), counts[1]
                if now - said >= PROGRESS_EVERY:
                    said = now
                    files, size = int(counts[0]), counts[1] / 1e6
                    tell(f"  ... {now - started:.0f} s: {files} files ({size:.1f} MB) downloaded so far")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.5)
        except BaseException:  # Ctrl-C or SIGTERM while fetching: Maven must not go on alone
            proc.kill()
            proc.wait()
            raise
        reader.join(10)
    return proc.returncode, int(counts[0]), counts[1]
