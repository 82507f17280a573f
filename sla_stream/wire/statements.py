"""Penalty statements as they appear on ``sla.penalties`` and in ``replay --penalties``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from sla_stream.engine.model import LOWER_IS_BETTER
from sla_stream.engine.statements import Statement
from sla_stream.engine.time import format_ts, seconds

STATEMENT_VERSION = 1


def statement_record(statement: Statement) -> dict[str, Any]:
    """The statement object (docs/reference/statements.md): with ``customer``, each objective's ``tier`` and,
    for a versioned contract, the ``versions`` in force during the period."""
    contract = statement.contract
    objectives = []
    for attainment in statement.objectives:
        entry: dict[str, Any] = {"objective": attainment.objective, "attained": attainment.attained}
        if attainment.target is not None:
            entry["target"] = attainment.target
        entry.update(attainment.counts)
        entry["credit_percent"] = _number(attainment.credit_percent)
        if attainment.tier is not None:
            limit = "above" if attainment.objective in LOWER_IS_BETTER else "below"
            entry["tier"] = {
                limit: attainment.tier.limit,
                "credit_percent": _number(attainment.tier.credit_percent),
            }
        objectives.append(entry)
    record: dict[str, Any] = {
        "v": STATEMENT_VERSION,
        "statement_id": statement.statement_id,
        "contract_id": contract.id,
    }
    if contract.customer is not None:
        record["customer"] = contract.customer
    record["period"] = {
        "start": format_ts(statement.start, contract.zone),
        "end": format_ts(statement.end, contract.zone),
    }
    if statement.versions:
        record["versions"] = [
            {
                "name": version.version,
                "effective_from": None
                if version.effective_from is None
                else format_ts(version.effective_from, contract.zone),
                "from": format_ts(start, contract.zone),
                "to": format_ts(end, contract.zone),
            }
            for version, start, end in statement.versions
        ]
    record.update(
        objectives=objectives,
        credit_percent=_number(statement.credit_percent),
        credit={"amount": float(statement.credit), "currency": statement.currency},
        excluded_seconds=seconds(statement.excluded_ms),
    )
    if statement.compensation:
        record["compensation"] = [
            {
                "reason": paid.reason,
                **({"objective": paid.objective} if paid.objective is not None else {}),
                "count": paid.count,
                "each": float(paid.each),
                "amount": float(paid.amount),
            }
            for paid in statement.compensation
        ]
    return record


def encode_statement(statement: Statement) -> bytes:
    """One statement as compact JSON bytes: the same on the topic and in replay."""
    return orjson.dumps(statement_record(statement))


def _number(value: Decimal) -> int | float:
    """A percentage as JSON: ``10``, or ``12.5`` when not whole."""
    return int(value) if value == value.to_integral_value() else float(value)
