"""Worker settings: defaults, then a config file, then ``SLA_STREAM_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sla_stream.engine.time import parse_duration
from sla_stream.wire.events import MAX_MESSAGE_BYTES


class SettingsError(Exception):
    """A setting with a value that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A password, shown as ``***`` however it is printed, logged or formatted."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names (``docs/reference/index.md``); ``ticks`` is the worker's internal clock topic."""

    tickets: str = "sla.tickets"
    """Input: ticket events."""
    calls: str = "sla.calls"
    """Input: call events."""
    requests: str = "sla.requests"
    """Input: request events and request batches."""
    items: str = "sla.items"
    """Input: events of the items a contract's ``items`` section tracks (parcels, claims)."""
    alerts: str = "sla.alerts"
    """Output: alerts."""
    penalties: str = "sla.penalties"
    """Output: penalty statements, one per contract and month."""
    deadletter: str = "sla.deadletter"
    """Output: rejected input, with the reason."""
    ticks: str = "sla.ticks"
    """Internal: the partition clocks' ticks (created with the input's partition count)."""
    contracts: str = "sla.contracts"
    """Compacted: contract files, for ``contracts_from: topic``."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the worker. Each field's docstring is its line in the configuration
    reference (``docs/reference/configuration.md``, generated from this class)."""

    bootstrap_servers: str = "127.0.0.1:19092"
    """Kafka bootstrap servers, ``host:port[,host:port...]``."""
    app_id: str = "sla-stream"
    """The workers' consumer group, and the prefix of their internal topics (the state changelog
    is ``<app_id>-state-changelog``)."""
    contracts_dir: str = "examples/contracts"
    """Directory of contract files (``*.yaml``), loaded at start."""
    contracts_from: str = "dir"
    """``dir``: the contract files in ``contracts_dir``; ``topic``: those published on the
    contracts topic (``sla-stream contracts publish``), followed while the worker runs."""
    contracts_poll_ms: int = 5_000
    """How often the contract files are checked for changes (reloaded if changed); ``0s``: only
    on SIGHUP."""
    partitions: int = 8
    """Partitions of every topic the worker creates. Input topics that already exist must have
    exactly this many (the worker refuses to start otherwise): a contract's events, its ticks and
    its state share one partition number."""
    replication_factor: int = 1
    """Replication factor of the topics the worker creates."""
    store: str = "memory://"
    """Faust table store for the state: ``memory://``, or ``rocksdb://`` (with the ``rocksdb``
    extra installed)."""
    data_dir: str = "var/worker"
    """Faust data directory (RocksDB tables, the clean-stop marker, contracts read from the topic)."""
    processing_guarantee: str = "at_least_once"
    """``at_least_once``, or ``exactly_once`` (alerts, dead letters, state and offsets in one
    Kafka transaction per input partition)."""
    allowed_lateness_ms: int = 5 * 60_000
    """Events further behind their partition's clock than this go to the dead-letter topic as
    ``late``; within it they are applied in their place by time."""
    max_future_ms: int = 5 * 60_000
    """Events (and ticks) further ahead of the worker's wall clock than this are rejected as
    ``invalid``, so one bad timestamp cannot fire deadlines early."""
    tick_interval_ms: int = 250
    """How often each partition's clock ticks at least (through the ticks topic); sooner when
    something falls due sooner."""
    session_timeout_ms: int = 10_000
    """How long a worker that died without leaving its group holds its partitions."""
    commit_interval_ms: int = 100
    """How often the agent commits input offsets (with ``exactly_once``: ends the transaction
    holding state changes and alerts, so alerts reach ``read_committed`` readers up to this much
    later)."""
    batch_size: int = 2000
    """At most this many messages are fetched and handled together: their alerts are sent
    together and each partition's state is written once per fetch (a ticket changed by ten
    messages is one changelog record)."""
    batch_wait_ms: int = 50
    """No longer used: a fetch is handled as soon as it comes, with what it holds (kept so that
    configurations naming it still load)."""
    changelog_segment_ms: int = 3_600_000
    """How often the state changelog starts a new segment (its ``segment.ms``, set when the worker
    creates it). Kafka compacts only closed segments: this bounds how much history a restarted
    worker reads back beyond the live state (finished tickets' records, superseded ones)."""
    ticket_cache: int = 4096
    """Tickets kept decoded per partition (those decoded or changed last); the others are held
    only as their JSON in the table."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Input messages longer than this go to the dead-letter topic unread, reason ``too_large``
    (1024 to 1000000; an event is a few hundred bytes). Replay applies the default."""
    group_instance_id: str = ""
    """Static group membership: a restarted worker with the same id takes its partitions straight
    back, without a rebalance."""
    tick_grace_ms: int = 100
    """How far behind the wall clock a tick stays (events still in flight arrive before it). Also
    how long after a deadline its tick comes: ticks come when something falls due, not only every
    tick interval."""
    stop_timeout_ms: int = 25_000
    """After SIGTERM, how long a graceful stop may take before the process exits anyway (status
    1, not marked clean, so what was not committed is processed again on restart): a stop waits
    for the broker, which may be gone. Keep it under the orchestrator's grace period."""
    web_host: str = "127.0.0.1"
    """Bind address of ``/metrics``, ``/healthz`` and ``/readyz`` (``0.0.0.0`` to be scraped from
    other hosts)."""
    web_port: int = 6066
    """Port of ``/metrics``, ``/healthz`` and ``/readyz``."""
    log_level: str = "info"
    """Log level: ``debug``, ``info``, ``warning``, ``error``."""
    log_format: str = "text"
    """``text``, or ``json``: one JSON object per line (``ts``, ``level``, ``logger``,
    ``message``; alert lines from ``sla_stream.alerts`` add ``contract``, ``objective``, ``kind``,
    ``subject``, ``alert_id``; statement lines from ``sla_stream.statements`` add ``contract``,
    ``statement_id``)."""
    topics: Topics = field(default_factory=Topics)
    """Topic names, each its own setting."""
    security_protocol: str = "PLAINTEXT"
    """How every Kafka client connects: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or
    ``SASL_SSL``."""
    sasl_mechanism: str = ""
    """``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; ``PLAIN`` when a SASL protocol is set
    without one."""
    sasl_username: str = ""
    """The SASL user (with a SASL protocol only)."""
    sasl_password: Secret | None = field(default=None, repr=False)
    """The SASL password: from ``SLA_STREAM_SASL_PASSWORD``, or from the file ``sasl_password_file``
    names (its line end dropped); never from the config file itself."""
    ssl_cafile: str = ""
    """CA certificates (PEM) the broker's certificate must chain to; the system's if empty
    (``SSL`` or ``SASL_SSL`` only)."""
    ssl_certfile: str = ""
    """The client's certificate (PEM), for brokers that require one (mutual TLS)."""
    ssl_keyfile: str = ""
    """The client certificate's private key (PEM), if it is not in ``ssl_certfile``."""
    ssl_key_password: Secret | None = field(default=None, repr=False)
    """The private key's password: from ``SLA_STREAM_SSL_KEY_PASSWORD``, or from the file
    ``ssl_key_password_file`` names; never from the config file itself."""
    ssl_check_hostname: bool = True
    """Whether the broker's certificate must name the host of the bootstrap address (``false``,
    e.g. for a test broker reached by IP, with ``SSL`` or ``SASL_SSL`` only)."""

    @property
    def source_topics(self) -> tuple[str, ...]:
        """The input topics the worker consumes (beside its tick topic)."""
        return (self.topics.tickets, self.topics.calls, self.topics.requests, self.topics.items)


_DURATIONS = {
    "allowed_lateness": "allowed_lateness_ms",
    "max_future": "max_future_ms",
    "tick_interval": "tick_interval_ms",
    "session_timeout": "session_timeout_ms",
    "commit_interval": "commit_interval_ms",
    "tick_grace": "tick_grace_ms",
    "batch_wait": "batch_wait_ms",
    "contracts_poll": "contracts_poll_ms",
    "stop_timeout": "stop_timeout_ms",
    "changelog_segment": "changelog_segment_ms",
}
_GUARANTEES = ("at_least_once", "exactly_once")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Passwords, and the settings naming a file to read each from instead.
_SECRETS = {"sasl_password": "sasl_password_file", "ssl_key_password": "ssl_key_password_file"}
_SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from a YAML file (``config_file`` or ``$SLA_STREAM_CONFIG``), then the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or environ.get("SLA_STREAM_CONFIG")
    if path:
        values.update(_read_file(Path(path)))
        for secret, file in _SECRETS.items():
            if secret in values:
                raise SettingsError(
                    f"config file {path}: {secret}: passwords are not read from the config file;"
                    f" set SLA_STREAM_{secret.upper()} or {file}"
                )
    for key, value in environ.items():
        if key.startswith("SLA_STREAM_") and key != "SLA_STREAM_CONFIG":
            name = key.removeprefix("SLA_STREAM_").lower()
            if name.startswith("topic_"):
                values.setdefault("topics", {})[name.removeprefix("topic_")] = value
            elif name in _NAMES or name in _DURATIONS or name in _FILES:
                values[name] = value
    values.update(overrides or {})
    return _build(values, str(path) if path else "environment")


_NAMES = {f.name for f in fields(Settings)}
_FILES = {file: secret for secret, file in _SECRETS.items()}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: expected a mapping of settings")
    return data


def _build(values: Mapping[str, Any], source: str) -> Settings:
    settings = Settings()
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name == "topics":
            if not isinstance(value, Mapping):
                raise SettingsError(f"{source}: topics: expected a mapping of topic names")
            known = {f.name for f in fields(Topics)}
            unknown = set(value) - known
            if unknown:
                raise SettingsError(
                    f"{source}: topics: unknown topic {sorted(unknown)[0]!r}"
                    f" (expected one of {', '.join(sorted(known))})"
                )
            changes["topics"] = replace(settings.topics, **{k: str(v) for k, v in value.items()})
        elif name in _DURATIONS:
            try:
                changes[_DURATIONS[name]] = (
                    parse_duration(str(value)) if not isinstance(value, int) else value
                )
            except ValueError as exc:
                raise SettingsError(f"{source}: {name}: {exc}") from None
        elif name in _SECRETS or name in _FILES:
            secret = _FILES.get(name, name)
            if name in _FILES:
                given = _read_secret(name, value, source)
            else:
                # An empty password (an empty variable) counts as none.
                text = value.value if isinstance(value, Secret) else str(value)
                given = Secret(text) if text else None
            if given is not None:
                if changes.get(secret) is not None:
                    raise SettingsError(f"{source}: set {secret} or {_SECRETS[secret]}, not both")
                changes[secret] = given
        elif isinstance(getattr(settings, name, None), bool):
            changes[name] = _boolean(name, value, source)
        elif name in _NAMES:
            expected = type(getattr(settings, name))
            try:
                changes[name] = expected(value)
            except (TypeError, ValueError):
                raise SettingsError(
                    f"{source}: {name}: expected {expected.__name__}, got {value!r}"
                ) from None
        else:
            raise SettingsError(f"{source}: unknown setting {name!r}")
    result = replace(settings, **changes)
    if result.processing_guarantee not in _GUARANTEES:
        raise SettingsError(
            f"{source}: processing_guarantee: expected one of {', '.join(_GUARANTEES)},"
            f" got {result.processing_guarantee!r}"
        )
    if result.contracts_from not in ("dir", "topic"):
        raise SettingsError(f"{source}: contracts_from: expected dir or topic, got {result.contracts_from!r}")
    if result.log_format not in ("text", "json"):
        raise SettingsError(f"{source}: log_format: expected text or json, got {result.log_format!r}")
    if result.partitions < 1:
        raise SettingsError(f"{source}: partitions: expected a positive number")
    if result.batch_size < 1:
        raise SettingsError(f"{source}: batch_size: expected a positive number")
    if result.batch_wait_ms <= 0:
        raise SettingsError(
            f"{source}: batch_wait: expected a positive duration (0 would wait for full batches)"
        )
    if result.changelog_segment_ms <= 0:
        raise SettingsError(f"{source}: changelog_segment: expected a positive duration")
    if result.stop_timeout_ms <= 0:
        raise SettingsError(f"{source}: stop_timeout: expected a positive duration")
    if result.ticket_cache < 0:
        raise SettingsError(f"{source}: ticket_cache: expected a number of tickets, 0 or more")
    if not 1024 <= result.max_message_bytes <= 1_000_000:
        raise SettingsError(
            f"{source}: max_message_bytes: expected 1024 to 1000000 (Kafka's default message limit),"
            f" got {result.max_message_bytes}"
        )
    if not result.store.startswith(("memory://", "rocksdb://")):
        raise SettingsError(f"{source}: store: expected memory:// or rocksdb://, got {result.store!r}")
    return _secured(result, source)


def _read_secret(name: str, value: object, source: str) -> Secret | None:
    """The password in the file ``value`` names, without its line end; none if no file is named."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{source}: {name}: cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{source}: {name}: {path} is not UTF-8 text") from None
    if not text:
        raise SettingsError(f"{source}: {name}: {path} is empty")
    return Secret(text)


def _boolean(name: str, value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise SettingsError(f"{source}: {name}: expected true or false, got {value!r}")
    return text in _TRUE


def _secured(settings: Settings, source: str) -> Settings:
    """``settings`` with the security settings checked together, and a SASL mechanism filled in.

    Credentials or certificates that the protocol would not use are refused rather than
    ignored: a worker that silently connects without them is harder to diagnose.
    """
    protocol = settings.security_protocol.strip().upper()
    mechanism = settings.sasl_mechanism.strip().upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(
            f"{source}: security_protocol: expected one of {', '.join(PROTOCOLS)},"
            f" got {settings.security_protocol!r}"
        )
    if mechanism and mechanism not in MECHANISMS:
        raise SettingsError(
            f"{source}: sasl_mechanism: expected one of {', '.join(MECHANISMS)},"
            f" got {settings.sasl_mechanism!r}"
        )
    sasl_password, key_password = settings.sasl_password, settings.ssl_key_password
    if protocol.startswith("SASL_"):
        if not settings.sasl_username or sasl_password is None:
            raise SettingsError(
                f"{source}: security_protocol {protocol} needs sasl_username and a password"
                " (SLA_STREAM_SASL_PASSWORD or sasl_password_file)"
            )
        mechanism = mechanism or "PLAIN"
    else:
        given = [
            name
            for name, value in (
                ("sasl_mechanism", mechanism),
                ("sasl_username", settings.sasl_username),
                ("sasl_password", sasl_password),
            )
            if value
        ]
        if given:
            raise SettingsError(
                f"{source}: {given[0]} is set but security_protocol is {protocol}"
                " (set it to SASL_PLAINTEXT or SASL_SSL to use SASL)"
            )
    if protocol in ("SSL", "SASL_SSL"):
        for name in _SSL_FILES:
            path = getattr(settings, name)
            if path and not os.access(path, os.R_OK):
                raise SettingsError(f"{source}: {name}: cannot read {path}")
        if settings.ssl_keyfile and not settings.ssl_certfile:
            raise SettingsError(f"{source}: ssl_keyfile is set without ssl_certfile")
        if key_password is not None and not settings.ssl_certfile:
            raise SettingsError(f"{source}: ssl_key_password is set without ssl_certfile")
    else:
        given = [name for name in _SSL_FILES if getattr(settings, name)]
        given += ["ssl_key_password"] if key_password is not None else []
        given += [] if settings.ssl_check_hostname else ["ssl_check_hostname"]
        if given:
            raise SettingsError(
                f"{source}: {given[0]} is set but security_protocol is {protocol}"
                " (set it to SSL or SASL_SSL to use TLS)"
            )
    return replace(settings, security_protocol=protocol, sasl_mechanism=mechanism)
