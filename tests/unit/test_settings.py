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
        ({"SLA_STREAM_STOP_TIMEOUT": "0s"}, "stop_timeout: expected a positive duration"),
        ({"SLA_STREAM_CHANGELOG_SEGMENT": "0s"}, "changelog_segment: expected a positive duration"),
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


SASL = {
    "SLA_STREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "SLA_STREAM_SASL_MECHANISM": "SCRAM-SHA-256",
    "SLA_STREAM_SASL_USERNAME": "alice",
}


def test_the_sasl_password_is_read_from_a_file_without_its_line_end(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("pa ss\n")
    settings = load_settings(environ={**SASL, "SLA_STREAM_SASL_PASSWORD_FILE": str(secret)})
    assert settings.sasl_password is not None and settings.sasl_password.value == "pa ss"
    assert settings.security_protocol == "SASL_PLAINTEXT" and settings.sasl_mechanism == "SCRAM-SHA-256"


def test_an_empty_password_variable_leaves_the_password_file_to_give_it(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file\r\n")
    environ = {**SASL, "SLA_STREAM_SASL_PASSWORD": "", "SLA_STREAM_SASL_PASSWORD_FILE": str(secret)}
    settings = load_settings(environ=environ)
    assert settings.sasl_password is not None and settings.sasl_password.value == "from-file"


def test_the_sasl_password_is_read_from_the_environment_and_the_file_names_the_rest(tmp_path):
    config = tmp_path / "worker.yaml"
    config.write_text("security_protocol: sasl_ssl\nsasl_username: bob\n")
    settings = load_settings(config, environ={"SLA_STREAM_SASL_PASSWORD": "pw"})
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "PLAIN"  # what a SASL protocol without a mechanism uses
    assert (settings.sasl_username, settings.sasl_password and settings.sasl_password.value) == ("bob", "pw")


@pytest.mark.parametrize("secret", ["sasl_password", "ssl_key_password"])
def test_a_password_in_the_config_file_is_refused(tmp_path, secret):
    config = tmp_path / "worker.yaml"
    config.write_text(f"security_protocol: SASL_SSL\nsasl_username: bob\n{secret}: hunter2\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, environ={})
    message = str(refused.value)
    assert message == (
        f"config file {config}: {secret}: passwords are not read from the config file;"
        f" set SLA_STREAM_{secret.upper()} or {secret}_file"
    )
    assert "hunter2" not in message


def test_a_password_file_that_cannot_be_read_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={**SASL, "SLA_STREAM_SASL_PASSWORD_FILE": str(missing)})
    assert str(refused.value) == (
        f"environment: sasl_password_file: cannot read {missing} (No such file or directory)"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLA_STREAM_SECURITY_PROTOCOL": "TLS"}, "security_protocol: expected one of PLAINTEXT, SSL,"),
        ({**SASL, "SLA_STREAM_SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism: expected one of PLAIN,"),
        (
            {**SASL},
            "security_protocol SASL_PLAINTEXT needs sasl_username and a password"
            " (SLA_STREAM_SASL_PASSWORD or sasl_password_file)",
        ),
        (
            {**SASL, "SLA_STREAM_SASL_USERNAME": "", "SLA_STREAM_SASL_PASSWORD": "pw"},
            "needs sasl_username and a password",
        ),
        (
            {**SASL, "SLA_STREAM_SASL_PASSWORD": ""},  # an empty variable is no password
            "needs sasl_username and a password",
        ),
        (
            {**SASL, "SLA_STREAM_SASL_PASSWORD": "pw", "SLA_STREAM_SASL_PASSWORD_FILE": "/etc/hostname"},
            "set sasl_password or sasl_password_file, not both",
        ),
        (
            {"SLA_STREAM_SASL_USERNAME": "alice", "SLA_STREAM_SASL_PASSWORD": "pw"},
            "sasl_username is set but security_protocol is PLAINTEXT (set it to SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            {"SLA_STREAM_SASL_MECHANISM": "PLAIN"},
            "sasl_mechanism is set but security_protocol is PLAINTEXT",
        ),
        (
            {**SASL, "SLA_STREAM_SASL_PASSWORD": "pw", "SLA_STREAM_SSL_CAFILE": "/etc/hostname"},
            "ssl_cafile is set but security_protocol is SASL_PLAINTEXT (set it to SSL or SASL_SSL",
        ),
        (
            {"SLA_STREAM_SSL_CHECK_HOSTNAME": "false"},
            "ssl_check_hostname is set but security_protocol is PLAINTEXT",
        ),
        (
            {"SLA_STREAM_SECURITY_PROTOCOL": "SSL", "SLA_STREAM_SSL_CHECK_HOSTNAME": "maybe"},
            "ssl_check_hostname: expected true or false, got 'maybe'",
        ),
        (
            {"SLA_STREAM_SECURITY_PROTOCOL": "SSL", "SLA_STREAM_SSL_CAFILE": "/nonexistent/ca.pem"},
            "ssl_cafile: cannot read /nonexistent/ca.pem",
        ),
        (
            {"SLA_STREAM_SECURITY_PROTOCOL": "SSL", "SLA_STREAM_SSL_KEYFILE": "/etc/hostname"},
            "ssl_keyfile is set without ssl_certfile",
        ),
    ],
)
def test_a_bad_security_setting_is_named(environ, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ=environ)


def test_no_password_shows_in_the_settings_repr_or_str(tmp_path):
    key_password = tmp_path / "key-password"
    key_password.write_text("key-hunter2\n")
    settings = load_settings(
        environ={
            **SASL,
            "SLA_STREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "SLA_STREAM_SASL_PASSWORD": "sasl-hunter2",
            "SLA_STREAM_SSL_CERTFILE": "/etc/hostname",
            "SLA_STREAM_SSL_KEY_PASSWORD_FILE": str(key_password),
        }
    )
    assert settings.ssl_key_password is not None and settings.ssl_key_password.value == "key-hunter2"
    for shown in (
        repr(settings),
        str(settings),
        f"{settings.sasl_password}",
        repr(settings.ssl_key_password),
    ):
        assert "hunter2" not in shown
    assert "alice" in repr(settings)


def test_contracts_come_from_a_directory_or_the_topic():
    assert load_settings(environ={}).contracts_from == "dir"
    assert load_settings(environ={"SLA_STREAM_CONTRACTS_FROM": "topic"}).contracts_from == "topic"
    with pytest.raises(SettingsError, match="contracts_from: expected dir or topic, got 'kafka'"):
        load_settings(environ={"SLA_STREAM_CONTRACTS_FROM": "kafka"})
