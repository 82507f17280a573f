"""Alert records as they appear on ``sla.alerts`` and in ``replay`` output."""

from __future__ import annotations

from typing import Any

import orjson

from sla_stream.engine.alerts import Alert
from sla_stream.engine.time import format_ts, format_utc, seconds

ALERT_VERSION = 1


def alert_record(alert: Alert, emitted_at_ms: int | None = None) -> dict[str, Any]:
    """The alert object (docs/reference/alerts.md); ``emitted_at`` is left out when not given (replay)."""
    subject: dict[str, Any] = {"kind": alert.subject_kind, "id": alert.subject_id}
    if alert.interval_start_ms is not None:
        subject["interval_start"] = format_ts(alert.interval_start_ms, alert.zone)
    record: dict[str, Any] = {
        "v": ALERT_VERSION,
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "contract_id": alert.contract_id,
        "objective": alert.objective,
        "subject": subject,
        "severity": alert.severity,
        "target_seconds": seconds(alert.target_ms),
        "elapsed_seconds": seconds(alert.elapsed_ms),
        "deadline": None if alert.deadline_ms is None else format_ts(alert.deadline_ms, alert.zone),
        "observed_at": format_ts(alert.observed_at_ms, alert.zone),
    }
    if emitted_at_ms is not None:
        record["emitted_at"] = format_utc(emitted_at_ms)
    record["details"] = alert.details
    return record


def encode_alert(alert: Alert, emitted_at_ms: int | None = None) -> bytes:
    """One alert as compact JSON bytes."""
    return orjson.dumps(alert_record(alert, emitted_at_ms))
