"""Writes deploy/grafana/dashboards/sla-stream.json: ``python deploy/grafana/build_dashboard.py``.

The dashboard is generated so its panels stay uniform; edit this file, not the JSON.
Every expression here is also queried against a real Prometheus in
``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
C = '{contract=~"$contract"}'


def panel(
    pid: int,
    kind: str,
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    grid: tuple[int, int, int, int],
    unit: str = "short",
    **defaults: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    field: dict[str, Any] = {"unit": unit, "color": {"mode": "palette-classic"}, **defaults}
    options: dict[str, Any] = {"legend": {"displayMode": "table", "placement": "right", "showLegend": True}}
    if kind in ("gauge", "stat", "bargauge"):
        field["color"] = {"mode": "thresholds"}
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "auto",
        }
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": field, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(65 + n), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for n, (expr, legend) in enumerate(targets)
        ],
    }


def ratio_thresholds(red: float, amber: float) -> dict[str, Any]:
    steps = [
        {"color": "red", "value": None},
        {"color": "orange", "value": red},
        {"color": "green", "value": amber},
    ]
    return {"thresholds": {"mode": "absolute", "steps": steps}, "min": 0, "max": 1}


PANELS = [
    panel(
        1,
        "gauge",
        "Compliance (attained so far)",
        "Requests: good ÷ total over the objective's window, summed over services. Calls: answered in"
        " time ÷ handled this month.",
        [(f"sla_compliance_ratio{C}", "{{contract}} {{objective}}")],
        (0, 0, 12, 8),
        "percentunit",
        **ratio_thresholds(0.95, 0.99),
    ),
    panel(
        2,
        "bargauge",
        "Error budget left",
        "Share of the window's error budget left; below 0 when overspent.",
        [(f"sla_error_budget_remaining_ratio{C}", "{{contract}} {{objective}}")],
        (12, 0, 12, 8),
        "percentunit",
        **ratio_thresholds(0.1, 0.25),
    ),
    panel(
        3,
        "stat",
        "Time to the next ticket or item deadline",
        "Nearest deadline of a running ticket or item clock (a parcel delivery), by contract and objective.",
        [(f"sla_next_deadline_seconds{C}", "{{contract}} {{objective}}")],
        (0, 8, 12, 8),
        "s",
    ),
    panel(
        4,
        "timeseries",
        "Open ticket and item clocks by state",
        "Open clocks: running, paused, at_risk (a near-breach fired), breached.",
        [(f"sum by (state) (sla_open_clocks{C})", "{{state}}")],
        (12, 8, 12, 8),
    ),
    panel(
        5,
        "timeseries",
        "Burn rates",
        "How fast each window spends the error budget (1 spends it exactly over the objective's window);"
        " the SRE Workbook pages at 14.4 over 1h and 5m.",
        [(f"sla_burn_rate{C}", "{{contract}} {{objective}} {{window}}")],
        (0, 16, 12, 9),
    ),
    panel(
        6,
        "timeseries",
        "Call service level (current interval)",
        "Answered in time ÷ handled, calls still waiting past answer_within counted as missed.",
        [(f"sla_call_service_level_ratio{C}", "{{contract}} {{queue}}")],
        (12, 16, 12, 9),
        "percentunit",
        min=0,
        max=1,
    ),
    panel(
        7,
        "timeseries",
        "Alerts per minute by kind and contract",
        "Alerts emitted to the alert topic.",
        [(f"sum by (contract, kind) (increase(sla_alerts_total{C}[1m]))", "{{contract}} {{kind}}")],
        (0, 25, 24, 8),
    ),
    panel(
        8,
        "timeseries",
        "Events per second by outcome",
        "Input events processed, by outcome (ok, invalid, unknown_contract, duplicate, late, expired, too_large,"
        " error).",
        [("sum by (outcome) (rate(sla_events_total[1m]))", "{{outcome}}")],
        (0, 33, 8, 8),
        "cps",
    ),
    panel(
        9,
        "stat",
        "Dead-letter share",
        "Share of input events sent to the dead-letter topic over 5 minutes.",
        [("sla:deadletter:ratio_rate5m", "dead letters")],
        (8, 33, 4, 8),
        "percentunit",
    ),
    panel(
        10,
        "timeseries",
        "Consumer lag",
        "Input messages in Kafka not yet applied, by topic.",
        [("sla:consumer_lag_messages:sum", "{{topic}}")],
        (12, 33, 6, 8),
    ),
    panel(
        11,
        "timeseries",
        "Event lag and alert delay (p99)",
        "Processing time minus event time; emission time minus the deadline an alert reports.",
        [
            ("sla:event_lag_seconds:p99_5m", "event lag {{topic}}"),
            ("sla:alert_delay_seconds:p99_5m", "alert delay {{kind}}"),
        ],
        (18, 33, 6, 8),
        "s",
    ),
    panel(
        12,
        "stat",
        "Workers up",
        "Workers Prometheus can scrape.",
        [('sum(up{job="sla-stream"})', "up")],
        (0, 41, 4, 4),
    ),
    panel(
        13,
        "stat",
        "Service credit if the month closed now",
        "Share of the monthly fee this month's penalty statement would credit with what it has counted"
        " so far (tiers of the contract's penalties).",
        [(f"max by (contract) (sla_penalty_credit_ratio{C})", "{{contract}}")],
        (4, 41, 12, 4),
        "percentunit",
    ),
    panel(
        14,
        "stat",
        "Workers whose contract files do not load",
        "Workers running on their last good contracts because the changed files do not load"
        " (their log names each problem).",
        [("sum(sla_contract_reload_failing) or vector(0)", "failing")],
        (16, 41, 8, 4),
    ),
]

DASHBOARD = {
    "uid": "sla-stream",
    "title": "sla-stream",
    "description": "Live SLA gauges (compliance, error budgets, deadlines, burn rates, call service"
    " level), alerts, and the processor's health.",
    "tags": ["sla-stream"],
    "editable": False,
    "graphTooltip": 1,
    "timezone": "browser",
    "refresh": "10s",
    "time": {"from": "now-30m", "to": "now"},
    "schemaVersion": 39,
    "version": 4,
    "templating": {
        "list": [
            {
                "name": "contract",
                "label": "Contract",
                "type": "query",
                "datasource": DATASOURCE,
                "definition": "label_values(sla_alerts_total, contract)",
                "query": "label_values(sla_alerts_total, contract)",
                "refresh": 2,
                "sort": 1,
                "multi": True,
                "includeAll": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            }
        ]
    },
    "panels": PANELS,
}


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard, ``$contract`` meaning every contract."""
    return [t["expr"].replace("$contract", ".*") for p in PANELS for t in p["targets"]]


if __name__ == "__main__":
    out = Path(__file__).parent / "dashboards" / "sla-stream.json"
    out.write_text(json.dumps(DASHBOARD, indent=2) + "\n")
    print(f"wrote {out}")
