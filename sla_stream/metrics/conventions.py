"""Metric names and label keys, in one place (docs/reference/metrics.md is generated from them)."""

from __future__ import annotations

EVENTS = "sla_events"
"""Counter (``_total``): input events by ``topic`` and ``outcome``."""
ALERTS = "sla_alerts"
"""Counter (``_total``): alerts by ``contract``, ``objective`` and ``kind``."""
COMPLIANCE = "sla_compliance_ratio"
"""Gauge: attained so far, by ``contract`` and ``objective``."""
ERROR_BUDGET = "sla_error_budget_remaining_ratio"
"""Gauge: share of the window's error budget left, by ``contract`` and ``objective``."""
BURN_RATE = "sla_burn_rate"
"""Gauge: burn rate by ``contract``, ``objective`` and ``window``."""
OPEN_CLOCKS = "sla_open_clocks"
"""Gauge: open ticket and item clocks by ``contract``, ``objective`` and ``state``."""
NEXT_DEADLINE = "sla_next_deadline_seconds"
"""Gauge: time until the nearest running deadline, by ``contract`` and ``objective``."""
CALL_SERVICE_LEVEL = "sla_call_service_level_ratio"
"""Gauge: the current interval's service level by ``contract`` and ``queue``."""
EVENT_LAG = "sla_event_lag_seconds"
"""Histogram: processing time minus event time, by ``topic``."""
ALERT_DELAY = "sla_alert_delay_seconds"
"""Histogram: emission time minus the deadline the alert reports, by ``kind``."""
CONSUMER_LAG = "sla_consumer_lag_messages"
"""Gauge: input messages in Kafka not yet applied, by ``topic`` and ``partition``."""
PENALTY_CREDIT = "sla_penalty_credit_ratio"
"""Gauge: share of the monthly fee the current month would credit if it closed now, by ``contract``."""
STATEMENTS = "sla_penalty_statements"
"""Counter (``_total``): penalty statements sent, by ``contract``."""
SERIES_DROPPED = "sla_metric_series_dropped"
"""Gauge: label sets left out of the last scrape because a contract passed its queue limit."""
CONTRACTS = "sla_contracts"
"""Gauge: contracts in use."""
CONTRACT_INFO = "sla_contract_info"
"""Gauge: 1 per contract in use, by ``contract``, ``digest`` (which version of its files) and
``version`` (the version of its terms in force now)."""
RELOADS = "sla_contract_reloads"
"""Counter (``_total``): contract reloads (SIGHUP or changed files) by ``outcome`` (``ok``, ``error``)."""
RELOAD_FAILING = "sla_contract_reload_failing"
"""Gauge: 1 while the contract files do not load; the worker runs on the last contracts that did."""

PARTITION = "partition"
DIGEST = "digest"
VERSION = "version"
CONTRACT, OBJECTIVE, KIND, STATE, WINDOW, QUEUE, TOPIC, OUTCOME = (
    "contract",
    "objective",
    "kind",
    "state",
    "window",
    "queue",
    "topic",
    "outcome",
)

MAX_QUEUES_PER_CONTRACT = 100
"""Queue names come from producers: past this many per contract (in name order) a contract's
further queues are left out of ``sla_call_service_level_ratio`` and counted in
``sla_metric_series_dropped`` instead, so a producer bug cannot explode the series count."""

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))
DELAY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0, 60.0, float("inf"))
