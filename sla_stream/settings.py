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
class Topics:
    """Topic names (SPEC section 1); ``ticks`` is the worker's internal clock topic."""

    tickets: str = "sla.tickets"
    calls: str = "sla.calls"
    requests: str = "sla.requests"
    alerts: str = "sla.alerts"
    penalties: str = "sla.penalties"
    deadletter: str = "sla.deadletter"
    ticks: str = "sla.ticks"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the worker; see the README's configuration table."""

    bootstrap_servers: str = "127.0.0.1:19092"
    app_id: str = "sla-stream"
    contracts_dir: str = "examples/contracts"
    partitions: int = 8
    replication_factor: int = 1
    store: str = "memory://"
    data_dir: str = "var/worker"
    processing_guarantee: str = "at_least_once"
    allowed_lateness_ms: int = 5 * 60_000
    max_future_ms: int = 5 * 60_000
    tick_interval_ms: int = 250
    session_timeout_ms: int = 10_000
    commit_interval_ms: int = 100
    batch_size: int = 500
    """At most this many messages are handled together (their state written once)."""
    batch_wait_ms: int = 50
    """How long a batch waits to fill before it is handled with what it has."""
    ticket_cache: int = 4096
    """Tickets kept decoded per partition (the busiest); the rest are only JSON in the table."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Input messages longer than this are dead-lettered unread (reason ``too_large``)."""
    group_instance_id: str = ""
    tick_grace_ms: int = 250
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "info"
    log_format: str = "text"
    topics: Topics = field(default_factory=Topics)

    @property
    def source_topics(self) -> tuple[str, ...]:
        """The input topics the worker consumes (beside its tick topic)."""
        return (self.topics.tickets, self.topics.calls, self.topics.requests)


_DURATIONS = {
    "allowed_lateness": "allowed_lateness_ms",
    "max_future": "max_future_ms",
    "tick_interval": "tick_interval_ms",
    "session_timeout": "session_timeout_ms",
    "commit_interval": "commit_interval_ms",
    "tick_grace": "tick_grace_ms",
    "batch_wait": "batch_wait_ms",
}
_GUARANTEES = ("at_least_once", "exactly_once")


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
    for key, value in environ.items():
        if key.startswith("SLA_STREAM_") and key != "SLA_STREAM_CONFIG":
            name = key.removeprefix("SLA_STREAM_").lower()
            if name.startswith("topic_"):
                values.setdefault("topics", {})[name.removeprefix("topic_")] = value
            elif name in _NAMES or name in _DURATIONS:
                values[name] = value
    values.update(overrides or {})
    return _build(values, str(path) if path else "environment")


_NAMES = {f.name for f in fields(Settings)}


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
    if result.ticket_cache < 0:
        raise SettingsError(f"{source}: ticket_cache: expected a number of tickets, 0 or more")
    if not 1024 <= result.max_message_bytes <= 1_000_000:
        raise SettingsError(
            f"{source}: max_message_bytes: expected 1024 to 1000000 (Kafka's default message limit),"
            f" got {result.max_message_bytes}"
        )
    if not result.store.startswith(("memory://", "rocksdb://")):
        raise SettingsError(f"{source}: store: expected memory:// or rocksdb://, got {result.store!r}")
    return result
