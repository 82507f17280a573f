"""Fetching the broker's jars says what it does, how it goes and how long it took; an interrupted
fetch does not leave Maven running (a stand-in ``mvn`` on PATH, no network)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sla_stream import local_kafka_jars
from sla_stream.local_kafka import fetch_jars

VERSION = "9.9.9"

# Maven's own lines for two files, a pause, then the jar where -DoutputDirectory says.
MAVEN = """#!/usr/bin/env bash
echo $$ > "{pid_file}"
for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac; done
echo "[INFO] Downloading from central: https://repo.maven.apache.org/maven2/a/a-1.pom"
echo "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/a/a-1.pom (5.6 kB at 514 kB/s)"
echo "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/k/kafka.jar (6.5 MB at 2.1 MB/s)"
{pause}
mkdir -p "$out" && touch "$out/kafka_2.13-{version}.jar"
"""


@pytest.fixture
def maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Puts a stand-in ``mvn`` first on PATH; returns the file it writes its pid to."""

    def make(pause: str) -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        pid_file = tmp_path / "mvn.pid"
        mvn = bin_dir / "mvn"
        mvn.write_text(MAVEN.format(pid_file=pid_file, pause=pause, version=VERSION))
        mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("SLA_STREAM_KAFKA_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(local_kafka_jars, "PROGRESS_EVERY", 0.1)
        return pid_file

    return make


def test_a_first_fetch_says_what_from_where_into_where_how_it_goes_and_how_long_it_took(maven, tmp_path):
    maven("sleep 1.5")
    lines: list[str] = []
    libs = fetch_jars(VERSION, say=lines.append)

    assert libs == tmp_path / "cache" / f"kafka-{VERSION}" / "libs"
    first, *progress, last = lines
    assert f"fetching Kafka {VERSION}'s jars with Maven from Maven Central into {libs}" in first
    assert "first time only" in first
    # Maven's hundreds of lines are condensed into a count, every few seconds.
    assert progress
    assert all("downloaded so far" in line for line in progress)
    assert "2 files (6.5 MB) downloaded so far" in progress[-1]
    assert last.startswith(f"fetched Kafka {VERSION}'s jars in ")
    assert last.endswith(" s (2 files, 6.5 MB downloaded)")

    # The next time the jars are in the cache: nothing to say.
    again: list[str] = []
    assert fetch_jars(VERSION, say=again.append) == libs
    assert again == []


def test_a_fetch_interrupted_by_ctrl_c_stops_maven_and_is_not_taken_for_done(maven):
    pid_file = maven("exec sleep 300")

    def interrupt_at_progress(line: str) -> None:
        if "so far" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_jars(VERSION, say=interrupt_at_progress)

    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Not marked complete: the next fetch runs Maven again rather than trusting a half cache.
    pid_file.unlink()
    with pytest.raises(KeyboardInterrupt):
        fetch_jars(VERSION, say=interrupt_at_progress)
    assert pid_file.exists()
