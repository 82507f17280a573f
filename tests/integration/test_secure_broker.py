"""Brokers that want SASL/SCRAM, and TLS too: the worker logs in with a password from a file,
its alerts arrive, the password never shows in its log; a wrong password stops it with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from broker_io import produce, read_topic

from sla_stream.engine.time import format_ts
from sla_stream.local_kafka import BrokerError, LocalBroker, free_port, wait_ready

if TYPE_CHECKING:
    from conftest import Worker

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Scram-pw-7781"
WRONG = "wrong-Scram-pw-4409"

CONTRACT = """
version: 1
id: secure
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {targets: {P1: 3s}}
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """This module's broker (it stands in for the session's in the ``worker`` fixture): clients
    must log in with SCRAM."""
    kafka = LocalBroker(
        tmp_path_factory.mktemp("kafka-scram"),
        port=free_port(),
        controller_port=free_port(),
        scram_users={"alice": PASSWORD},
    )
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker that wants TLS (a certificate its own CA signs) and SCRAM: SASL_SSL."""
    kafka = LocalBroker(
        tmp_path_factory.mktemp("kafka-tls"),
        port=free_port(),
        controller_port=free_port(),
        scram_users={"alice": PASSWORD},
        tls=True,
    )
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    directory = tmp_path / "contracts"
    directory.mkdir()
    (directory / "secure.yaml").write_text(CONTRACT)
    return directory


def scram_settings(tmp_path: Path, password: str) -> dict[str, str]:
    """Worker settings for the broker: user from the environment, password from a file."""
    file = tmp_path / f"password-{password}"
    file.write_text(password + "\n")
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_username": "alice",
        "sasl_password_file": str(file),
    }


@pytest.fixture(autouse=True)
def _no_password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLA_STREAM_SASL_PASSWORD", raising=False)


def breach_alerts(live: Worker, auth: dict[str, Any]) -> list[tuple[str, str]]:
    """Produce a ticket that breaches 3 s on; the alerts the worker then sends, as (kind, ticket)."""
    body = {
        "event_id": "SECURE-1",
        "type": "ticket.created",
        "contract_id": "secure",
        "occurred_at": format_ts(int(time.time() * 1000), UTC),
        "ticket_id": "SECURE-1",
        "priority": "P1",
    }
    produce(live.bootstrap, live.topics["tickets"], [(b"secure", orjson.dumps(body))], auth=auth)
    alerts = read_topic(
        live.bootstrap,
        live.topics["alerts"],
        until=lambda found: any(a["kind"] == "breach" for a in found),
        timeout=60,
        auth=auth,
    )
    return [(a["kind"], a["subject"]["id"]) for a in alerts]


def test_a_worker_logged_in_with_scram_sends_its_alerts_and_never_logs_the_password(
    worker, broker: LocalBroker, contracts: Path, tmp_path: Path
) -> None:
    # At debug level, so the check below covers every line the clients write too.
    live = worker(contracts, partitions=2, log_level="debug", **scram_settings(tmp_path, PASSWORD))
    live.start()
    assert breach_alerts(live, broker.auth) == [("breach", "SECURE-1")], live.tail()
    assert live.stop() == 0
    log = live.log.read_text(errors="replace")
    assert "Authenticated as alice via SCRAM-SHA-256" in log  # aiokafka, at info level
    assert PASSWORD not in log


def test_a_worker_reaches_a_tls_broker_with_scram_sha_512(
    worker, tls_broker: LocalBroker, contracts: Path, tmp_path: Path
) -> None:
    settings = {
        **scram_settings(tmp_path, PASSWORD),
        "bootstrap_servers": tls_broker.bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "ssl_cafile": str(tls_broker.ca_file),
    }
    live = worker(contracts, partitions=2, **settings)
    live.start()
    assert breach_alerts(live, tls_broker.auth) == [("breach", "SECURE-1")], live.tail()
    assert live.stop() == 0
    log = live.log.read_text(errors="replace")
    assert "Authenticated as alice via SCRAM-SHA-512" in log
    assert PASSWORD not in log


def test_a_worker_with_a_wrong_password_stops_and_says_why(
    worker, broker: LocalBroker, contracts: Path, tmp_path: Path
) -> None:
    refused = worker(contracts, partitions=2, **scram_settings(tmp_path, WRONG))
    refused.start(wait=False)
    assert refused.process is not None
    assert refused.process.wait(60) == 2
    log = refused.this_run()
    assert "sla-stream: error: cannot reach Kafka at" in log
    assert "SaslAuthenticationFailed" in log and "invalid credentials" in log
    assert WRONG not in log


def test_both_scram_mechanisms_let_a_client_in_and_no_credentials_keep_it_out(broker: LocalBroker) -> None:
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        assert wait_ready(broker.bootstrap, 10, auth={**broker.auth, "sasl_mechanism": mechanism})
    with pytest.raises(BrokerError, match="not ready after 5s"):
        wait_ready(broker.bootstrap, 5)
