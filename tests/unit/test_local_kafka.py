"""The local broker's configuration for SASL/SCRAM and TLS (no JVM started)."""

from __future__ import annotations

import pytest

from sla_stream import local_kafka_security as security
from sla_stream.local_kafka import BrokerError, LocalBroker


def test_scram_users_make_the_client_listener_sasl_and_are_created_at_format(tmp_path):
    broker = LocalBroker(tmp_path, port=9100, controller_port=9101, scram_users={"alice": "pw-1"})
    props = broker.properties()
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9100,CONTROLLER://127.0.0.1:9101"
    assert props["listener.security.protocol.map"] == "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    assert (
        'username="alice" password="pw-1"'
        in props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    )
    assert security.scram_arguments(broker.scram_users) == [
        "--add-scram",
        "SCRAM-SHA-256=[name=alice,password=pw-1]",
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=pw-1]",
    ]
    assert broker.auth == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw-1",
    }
    assert "pw-1" not in repr(broker)


def test_tls_with_scram_is_sasl_ssl_with_pem_stores(tmp_path):
    broker = LocalBroker(tmp_path, port=9100, controller_port=9101, scram_users={"a": "b"}, tls=True)
    props = broker.properties()
    assert broker.security_protocol == "SASL_SSL"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9100"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["ssl.truststore.location"] == str(broker.ca_file)


def test_a_plain_broker_keeps_its_plaintext_listener(tmp_path):
    broker = LocalBroker(tmp_path, port=9100, controller_port=9101)
    assert broker.properties()["listeners"] == "PLAINTEXT://127.0.0.1:9100,CONTROLLER://127.0.0.1:9101"
    assert broker.auth == {}


def test_a_password_the_storage_tool_cannot_take_is_refused(tmp_path):
    with pytest.raises(BrokerError, match="SCRAM user 'alice'") as refused:
        LocalBroker(tmp_path, scram_users={"alice": "a,b"})
    assert "a,b" not in str(refused.value)
