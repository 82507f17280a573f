"""deploy/system-deps: what is not Python is found, or named in one line each with what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

SCRIPT = REPO / "deploy" / "system-deps"
BASE_TOOLS = ("bash", "sed", "head", "id", "sort", "env")


def toolbox(tmp_path: Path, *tools: str, java_version: str | None = None) -> Path:
    """A PATH holding only the given tools (links to the real ones) and, if asked, a java that
    reports `java_version` the way the JDK does (on stderr)."""
    box = tmp_path / "bin"
    box.mkdir()
    for tool in (*BASE_TOOLS, *tools):
        real = shutil.which(tool)
        assert real, f"{tool} is needed by this test"
        (box / tool).symlink_to(real)
    (box / "python3").symlink_to(sys.executable)
    if java_version is not None:
        java = box / "java"
        java.write_text(f'#!/bin/sh\necho \'openjdk version "{java_version}" 2021-01-19\' >&2\n')
        java.chmod(0o755)
    return box


def run(box: Path, need: str) -> subprocess.CompletedProcess[str]:
    # SLA_STREAM_DEPS_INSTALLED stops the script from installing (it would, as root on Debian).
    env = {"PATH": str(box), "SLA_STREAM_DEPS_INSTALLED": "1", "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([str(SCRIPT), need], env=env, capture_output=True, text=True, timeout=30)


def test_everything_present_says_nothing_and_succeeds(tmp_path: Path) -> None:
    box = toolbox(tmp_path, "mvn", "openssl", "promtool", "prometheus", java_version="17.0.15")
    result = run(box, "test")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("need", "present", "missing"),
    [
        ("run", (), ["Maven, which fetches the Kafka broker's jars from Maven Central"]),
        ("test", ("mvn",), ["openssl", "promtool", "prometheus, which the integration tests"]),
        ("prometheus", ("mvn",), ["prometheus, to show the demo's metrics"]),
    ],
)
def test_each_missing_tool_is_one_line_naming_what_to_install(
    tmp_path: Path, need: str, present: tuple[str, ...], missing: list[str]
) -> None:
    result = run(toolbox(tmp_path, *present, java_version="21.0.1"), need)
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert len(lines) == len(missing)
    for line, what in zip(lines, missing, strict=True):
        assert line.startswith("sla-stream: error: missing ")
        assert what in line
        assert "install" in line


def test_a_java_older_than_17_is_named_with_its_version(tmp_path: Path) -> None:
    result = run(toolbox(tmp_path, "mvn", java_version="11.0.2"), "run")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "sla-stream: error: missing Java 17 or later for the local Kafka broker (found Java 11; "
        "Debian/Ubuntu: apt-get install openjdk-17-jre-headless, or put a JDK 17+ first on PATH)"
    ]


def test_java_8_is_read_from_its_old_version_format(tmp_path: Path) -> None:
    result = run(toolbox(tmp_path, "mvn", java_version="1.8.0_392"), "run")
    assert "found Java 8;" in result.stderr


def test_the_venv_alone_needs_only_python(tmp_path: Path) -> None:
    # make install, docs, unit and lint run without Java or Maven on the machine.
    result = run(toolbox(tmp_path), "python")
    assert (result.returncode, result.stderr) == (0, "")


def test_no_java_at_all_is_named(tmp_path: Path) -> None:
    result = run(toolbox(tmp_path, "mvn"), "run")
    assert result.returncode == 1
    assert "missing Java 17 or later" in result.stderr
    assert len(result.stderr.splitlines()) == 1
