"""``sla-stream whatif``: the same history measured against two contract sets, side by side.

"What if the P1 first response target had been 30 minutes, or the credit tier 5%?" Each set
replays the events with the engine, exactly as ``replay --penalties`` does; the comparison is
per contract, period and objective: attainment and credit under each set, and the breaches
each set's alerts report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sla_stream.engine.alerts import BREACH
from sla_stream.engine.model import Contract
from sla_stream.engine.periods import period_of
from sla_stream.replay import replay
from sla_stream.report import figure
from sla_stream.wire.statements import statement_record


@dataclass(slots=True)
class Outcome:
    """What one contract set made of the history."""

    statements: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By statement id (``contract/period``)."""
    breaches: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Breach alerts by contract, period and objective, the period being the month (in the
    contract's zone) of the deadline, or of the moment observed for breaches without one;
    as sent (a breach later retracted still counts)."""


def measure(
    contracts: Mapping[str, Contract],
    lines: Iterable[tuple[str, int, bytes]],
    until: int | None,
    allowed_lateness: int | None,
) -> Outcome:
    """Replay ``lines`` against ``contracts``: the statements of every period closed by the end,
    and the breaches alerted."""
    outcome = Outcome()

    def settle(statement: Any) -> None:
        record = statement_record(statement)
        outcome.statements[record["statement_id"]] = record

    for alert in replay(contracts, lines, until, allowed_lateness, on_statement=settle):
        if alert.kind == BREACH:
            at = alert.deadline_ms if alert.deadline_ms is not None else alert.observed_at_ms
            period = period_of(contracts[alert.contract_id].zone, at)
            outcome.breaches[alert.contract_id, period, alert.objective] += 1
    return outcome


def compare(base: Outcome, other: Outcome) -> list[dict[str, Any]]:
    """One row per contract, period and objective found in either outcome, then one per
    statement total (objective ``= total``); ``None`` where a set has no such thing."""
    rows: list[dict[str, Any]] = []
    ids = sorted(base.statements.keys() | other.statements.keys(), key=lambda i: (i.rsplit("/", 1)[1], i))
    for statement_id in ids:
        contract_id, period = statement_id.rsplit("/", 1)
        a, b = base.statements.get(statement_id), other.statements.get(statement_id)
        objectives = _objectives(a) | _objectives(b)
        for name in sorted(objectives, key=lambda n: _order(a, b, n)):
            x, y = _objectives(a).get(name), _objectives(b).get(name)
            rows.append(
                {
                    "contract_id": contract_id,
                    "period": period,
                    "objective": name,
                    "attained": [x and x["attained"], y and y["attained"]],
                    "credit_percent": [x and x["credit_percent"], y and y["credit_percent"]],
                    "breaches": [
                        base.breaches.get((contract_id, period, name), 0) if a else None,
                        other.breaches.get((contract_id, period, name), 0) if b else None,
                    ],
                }
            )
        rows.append(
            {
                "contract_id": contract_id,
                "period": period,
                "objective": "= total",
                "credit_percent": [a and a["credit_percent"], b and b["credit_percent"]],
                "credit": [a and a["credit"], b and b["credit"]],
            }
        )
    return rows


def table(rows: list[dict[str, Any]], names: tuple[str, str]) -> str:
    """The comparison as a readable table: for each contract set (A and B, named on the first
    line) attainment, breaches alerted and credit; and the change in credit."""
    if not rows:
        return "no statements: no period closed in the history under either contract set\n"
    header = [
        "contract",
        "period",
        "objective",
        "attained A",
        "B",
        "breaches A",
        "B",
        "credit A",
        "B",
        "change",
    ]
    lines = [header]
    for row in rows:
        if row["objective"] == "= total":
            credit = [_money(c) for c in row["credit"]]
            totals = ["", "", "", "", *credit, _change_money(row["credit"])]
            lines.append([row["contract_id"], row["period"], "= total", *totals])
            continue
        attained = ["-" if v is None else figure(v) for v in row["attained"]]
        breaches = ["-" if v is None else str(v) for v in row["breaches"]]
        credit = ["-" if v is None else f"{figure(v)}%" for v in row["credit_percent"]]
        lines.append([row["contract_id"], row["period"], row["objective"], *attained, *breaches, *credit, ""])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"A: {names[0]}   B: {names[1]}", ""]
    for index, line in enumerate(lines):
        if index > 1 and line[:2] != lines[index - 1][:2]:
            out.append("")
        cells = [
            c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def as_json(rows: list[dict[str, Any]], names: tuple[str, str]) -> bytes:
    return orjson.dumps({"sets": list(names), "rows": rows}, option=orjson.OPT_INDENT_2) + b"\n"


def _objectives(statement: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {o["objective"]: o for o in statement["objectives"]} if statement else {}


def _order(a: dict[str, Any] | None, b: dict[str, Any] | None, name: str) -> tuple[int, str]:
    """Objectives in the statements' own order (a's first)."""
    listed = [o["objective"] for s in (a, b) if s for o in s["objectives"]]
    return (listed.index(name), name)


def _money(credit: dict[str, Any] | None) -> str:
    return "-" if credit is None else f"{credit['amount']:,.2f} {credit['currency']}"


def _change_money(credits: list[dict[str, Any] | None]) -> str:
    a, b = credits
    if a is None or b is None or a["currency"] != b["currency"]:
        return ""
    change = b["amount"] - a["amount"]
    return f"{change:+,.2f} {a['currency']}"
