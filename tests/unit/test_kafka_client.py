"""The Kafka client arguments and Faust credentials made from the security settings."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from sla_stream.kafka_client import client_kwargs
from sla_stream.runtime.app import _credentials
from sla_stream.settings import SettingsError, load_settings

SCRAM = {
    "SLA_STREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "SLA_STREAM_SASL_MECHANISM": "SCRAM-SHA-512",
    "SLA_STREAM_SASL_USERNAME": "alice",
    "SLA_STREAM_SASL_PASSWORD": "pw",
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, encrypted with the password ``keypw``."""
    assert shutil.which("openssl"), "openssl is missing: install Debian's openssl package"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-days", "1", "-subj", "/CN=localhost"]
    files = ["-keyout", str(key), "-out", str(cert), "-passout", "pass:keypw"]
    subprocess.run(["openssl", *request, *files], check=True, capture_output=True)
    return cert, key


def test_plaintext_takes_no_security_arguments():
    assert client_kwargs(load_settings(environ={})) == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }
    assert _credentials(load_settings(environ={})) is None


def test_scram_credentials_reach_aiokafka_and_faust_alike():
    settings = load_settings(environ=SCRAM)
    expected = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw",
    }
    assert client_kwargs(settings) == {"bootstrap_servers": "127.0.0.1:19092", **expected}
    # Faust's own clients get theirs through this mapping of its driver.
    assert credentials_to_aiokafka_auth(_credentials(settings)) == {**expected, "ssl_context": None}
    assert "pw" not in repr(_credentials(settings))


def test_sasl_ssl_gives_both_a_tls_context_and_the_credentials(certificate):
    cert, _ = certificate
    settings = load_settings(
        environ={**SCRAM, "SLA_STREAM_SECURITY_PROTOCOL": "SASL_SSL", "SLA_STREAM_SSL_CAFILE": str(cert)}
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    faust = credentials_to_aiokafka_auth(_credentials(settings))
    assert faust["security_protocol"] == "SASL_SSL" and isinstance(faust["ssl_context"], ssl.SSLContext)


def test_mutual_tls_loads_the_client_key_with_its_password(certificate, tmp_path):
    cert, key = certificate
    password = tmp_path / "key-password"
    password.write_text("keypw\n")
    environ = {
        "SLA_STREAM_SECURITY_PROTOCOL": "SSL",
        "SLA_STREAM_SSL_CAFILE": str(cert),
        "SLA_STREAM_SSL_CERTFILE": str(cert),
        "SLA_STREAM_SSL_KEYFILE": str(key),
        "SLA_STREAM_SSL_CHECK_HOSTNAME": "false",
    }
    settings = load_settings(environ={**environ, "SLA_STREAM_SSL_KEY_PASSWORD_FILE": str(password)})
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SSL" and not kwargs["ssl_context"].check_hostname
    assert credentials_to_aiokafka_auth(_credentials(settings))["security_protocol"] == "SSL"


def test_a_wrong_or_missing_key_password_is_an_error_not_a_prompt(certificate):
    cert, key = certificate
    environ = {
        "SLA_STREAM_SECURITY_PROTOCOL": "SSL",
        "SLA_STREAM_SSL_CERTFILE": str(cert),
        "SLA_STREAM_SSL_KEYFILE": str(key),
    }
    for extra in ({}, {"SLA_STREAM_SSL_KEY_PASSWORD": "wrong-hunter2"}):
        settings = load_settings(environ={**environ, **extra})
        with pytest.raises(SettingsError, match=r"TLS: cannot load .*is the key's password") as refused:
            client_kwargs(settings)
        assert "hunter2" not in str(refused.value)
