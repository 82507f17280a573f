"""What is in the demo's way before it starts anything is one line saying what to do, exit 2; and
the Prometheus it runs beside the worker reads the Docker stack's config with the project's rules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from sla_stream.local_kafka import free_port, port_in_use
from sla_stream.local_prometheus import RULES, LocalPrometheus, config


def demo(
    cwd: Path, *args: str, path: str | None = None, **settings: object
) -> subprocess.CompletedProcess[str]:
    """``sla-stream demo`` in ``cwd`` with these settings (a config file, as a user might write)."""
    (cwd / "settings.yaml").write_text(
        yaml.safe_dump({"contracts_dir": str(REPO / "examples/contracts"), **settings})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_STREAM_")}
    env["SLA_STREAM_CONFIG"] = str(cwd / "settings.yaml")
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "demo", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("sla-stream: error: ")
    return result.stderr


def test_a_broker_port_taken_by_another_program_is_one_line_saying_what_to_do(tmp_path, taken):
    result = demo(tmp_path, bootstrap_servers=f"127.0.0.1:{taken}", web_port=free_port())
    line = one_line(result)
    assert f"127.0.0.1:{taken}, the local broker's port, is taken by another program" in line
    assert "SLA_STREAM_BOOTSTRAP_SERVERS" in line
    assert not (tmp_path / "var" / "kafka" / "broker.pid").exists()


def test_the_workers_metrics_port_taken_is_one_line_naming_the_setting(tmp_path, taken):
    line = one_line(demo(tmp_path, bootstrap_servers=f"127.0.0.1:{free_port()}", web_port=taken))
    assert f"127.0.0.1:{taken}, the worker's metrics port, is already in use" in line
    assert "SLA_STREAM_WEB_PORT" in line


def test_prometheus_missing_is_one_line_naming_what_to_install(tmp_path):
    # A PATH with the tools the demo needs, but no prometheus.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("java", "mvn"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    result = demo(tmp_path, "--prometheus", path=str(bin_dir), web_port=free_port())
    line = one_line(result)
    assert "prometheus is not installed" in line
    assert "apt-get install prometheus" in line
    assert "make install" in line


def test_the_prometheus_port_taken_is_one_line_naming_the_option(tmp_path, taken):
    result = demo(tmp_path, "--prometheus", "--prometheus-port", str(taken), web_port=free_port())
    line = one_line(result)
    assert f"127.0.0.1:{taken} is already in use" in line
    assert "--prometheus-port" in line


@pytest.fixture
def debian_prometheus_port() -> Iterator[None]:
    """127.0.0.1:9090 taken, as Debian's prometheus service takes it where systemd runs."""
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", 9090))
            other.listen()
        except OSError:  # something listens there already
            assert port_in_use(9090)
        yield


@pytest.mark.usefixtures("debian_prometheus_port")
def test_the_demos_prometheus_does_not_want_the_port_debians_own_service_takes(tmp_path, taken):
    # The broker's port taken too, so that the demo stops just after its Prometheus checks.
    result = demo(tmp_path, "--prometheus", bootstrap_servers=f"127.0.0.1:{taken}", web_port=free_port())
    line = one_line(result)
    assert f"127.0.0.1:{taken}, the local broker's port, is taken" in line
    assert LocalPrometheus(tmp_path, []).url == "http://127.0.0.1:19090"


def test_the_demos_prometheus_config_is_the_stacks_with_the_worker_as_target_and_the_projects_rules(tmp_path):
    stack = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    made = config(["127.0.0.1:6066"], [str(RULES / "*.yml")], "5s")
    assert made["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    assert made["scrape_configs"][0]["job_name"] == stack["scrape_configs"][0]["job_name"] == "sla-stream"
    assert made["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:6066"]}]
    assert made["rule_files"] == [str(REPO / "deploy" / "prometheus" / "rules" / "*.yml")]

    # Prometheus's own check reads it, and finds the project's rules through the glob.
    server = LocalPrometheus(tmp_path, ["127.0.0.1:6066"])
    server.config_file.write_text(yaml.safe_dump(config(server.targets, server.rule_files)))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    checked = subprocess.run(
        [promtool, "check", "config", str(server.config_file)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "sla-stream.yml" in checked.stdout + checked.stderr
