"""Settings: defaults, then the config file, then the environment; mistakes named in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sla_stream.settings import SettingsError, load_settings


def test_the_environment_wins_over_the_file_which_wins_over_defaults(tmp_path):
    config = tmp_path / "worker.yaml"
    config.write_text(
        "partitions: 3\nallowed_lateness: 10m\ntopics: {alerts: ops.alerts, tickets: in.tickets}\n"
    )
    settings = load_settings(
        config, environ={"SLA_STREAM_PARTITIONS": "6", "SLA_STREAM_TOPIC_TICKETS": "env.tickets"}
    )
    assert settings.partitions == 6
    assert settings.allowed_lateness_ms == 600_000
    assert settings.topics.alerts == "ops.alerts" and settings.topics.tickets == "env.tickets"
    assert settings.topics.deadletter == "sla.deadletter"
    assert settings.tick_interval_ms == 250


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLA_STREAM_PARTITIONS": "many"}, "partitions: expected int, got 'many'"),
        ({"SLA_STREAM_PROCESSING_GUARANTEE": "maybe"}, "processing_guarantee: expected one of at_least_once"),
        ({"SLA_STREAM_ALLOWED_LATENESS": "soon"}, "allowed_lateness: not a duration"),
        ({"SLA_STREAM_STORE": "redis://"}, "store: expected memory:// or rocksdb://"),
        ({"SLA_STREAM_BATCH_WAIT": "0s"}, "batch_wait: expected a positive duration"),
        ({"SLA_STREAM_TICKET_CACHE": "-1"}, "ticket_cache: expected a number of tickets"),
        (
            {"SLA_STREAM_CONFIG": "/nonexistent/worker.yaml"},
            "config file /nonexistent/worker.yaml: cannot be read",
        ),
    ],
)
def test_a_bad_setting_is_named(environ, message):
    with pytest.raises(SettingsError, match=message.replace("?", r"\?")):
        load_settings(environ=environ)


def test_the_worker_reports_a_bad_setting_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "worker"],
        env={"SLA_STREAM_PARTITIONS": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "sla-stream: error: environment: partitions: expected a positive number"


def test_every_duration_setting_is_read_from_the_environment_as_a_duration():
    from dataclasses import fields

    from sla_stream.settings import Settings

    durations = [f.name.removesuffix("_ms") for f in fields(Settings) if f.name.endswith("_ms")]
    assert durations
    environ = {f"SLA_STREAM_{name.upper()}": "1h2s" for name in durations}
    settings = load_settings(environ=environ)
    assert {name: getattr(settings, f"{name}_ms") for name in durations} == dict.fromkeys(
        durations, 3_602_000
    )
