"""SASL/SCRAM users and TLS for the local broker (:mod:`sla_stream.local_kafka`): its listener
properties, the storage tool's SCRAM arguments, a CA and broker certificate made with ``openssl``,
and what clients need to connect.

With SCRAM users the broker's client port takes SASL only, with SCRAM-SHA-256 or SCRAM-SHA-512:
the users are created when the storage is formatted (a data dir formatted before keeps the users
it has). The first user is also the broker's own, on its inter-broker listener. With TLS the port
takes TLS only (SSL, or SASL_SSL with users), with a certificate for 127.0.0.1 that a CA made with
``openssl`` in ``data_dir/tls`` signs. The controller listener stays PLAINTEXT, on loopback. It is a
broker for tests and trials: the passwords are in its properties file and, while it formats, on
the command line of the storage tool.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def scram_user_problem(users: Mapping[str, str]) -> str | None:
    """What is wrong with a SCRAM user's name or password, if anything: the storage tool's
    ``--add-scram`` syntax, ``[name=...,password=...]``, cannot quote some characters."""
    for name, password in users.items():
        if not re.fullmatch(r"[\w.@-]+", name) or not re.fullmatch(r"[^\s,\[\]=\"\\;]+", password):
            return (
                f"SCRAM user {name!r}: names take letters, digits and . _ @ -; passwords take"
                ' no spaces or , [ ] = " \\ ;'
            )
    return None


def client_auth(protocol: str, ca_file: Path | None, users: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka security arguments: the first SCRAM user's (SHA-256) and a TLS context trusting
    ``ca_file`` (``None``: no TLS), as a broker speaking ``protocol`` wants them."""
    auth: dict[str, Any] = {}
    if protocol != "PLAINTEXT":
        auth["security_protocol"] = protocol
    if ca_file is not None:
        auth["ssl_context"] = create_ssl_context(cafile=ca_file)
    if users:
        name, password = next(iter(users.items()))
        auth.update(sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=name, sasl_plain_password=password)
    return auth


def listener_properties(
    protocol: str, port: int, controller_port: int, users: Mapping[str, str], ca_file: Path | None
) -> dict[str, str]:
    """server.properties for a client listener (also the inter-broker one) speaking ``protocol``,
    the first of ``users`` the broker's own, TLS with the keystore beside ``ca_file``."""
    if protocol == "PLAINTEXT":
        return {}
    props = {
        "listeners": f"{protocol}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{protocol}://127.0.0.1:{port}",
        "inter.broker.listener.name": protocol,
        "listener.security.protocol.map": f"{protocol}:{protocol},CONTROLLER:PLAINTEXT",
    }
    if users:
        name, password = next(iter(users.items()))
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{name}" password="{password}";'
        )
        props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
        props["sasl.mechanism.inter.broker.protocol"] = SCRAM_MECHANISMS[0]
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.{protocol.lower()}.{mechanism.lower()}.sasl.jaas.config"] = login
    if ca_file is not None:
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.location"] = str(ca_file.parent / "broker-keystore.pem")
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(ca_file)
    return props


def make_certificates(ca_file: Path, openssl: str, error: Callable[[str], Exception]) -> None:
    """A CA (``ca_file``), and a broker certificate it signs for 127.0.0.1 and localhost, in
    ``ca_file``'s directory (once: kept if there already)."""
    tls = ca_file.parent
    keystore = tls / "broker-keystore.pem"
    if keystore.exists():
        return
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=sla-stream-local-ca"
        f" -keyout ca.key -out {ca_file.name}",
        "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout broker.key -out broker.csr",
        f"x509 -req -in broker.csr -CA {ca_file.name} -CAkey ca.key -CAcreateserial -days 3650"
        " -extfile san.cnf -out broker.pem",
    ]
    for step in steps:
        res = subprocess.run([openssl, *step.split()], cwd=tls, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise error(f"openssl {step.split()[0]} failed:\n{res.stderr[-2000:]}")
    # Kafka's PEM keystore: the (unencrypted, PKCS#8) key and the certificate in one file.
    keystore.write_text((tls / "broker.key").read_text() + (tls / "broker.pem").read_text())


def scram_arguments(users: Mapping[str, str]) -> list[str]:
    """``--add-scram`` arguments of the storage tool: every user, for every mechanism."""
    return [
        argument
        for name, password in users.items()
        for mechanism in SCRAM_MECHANISMS
        for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]
