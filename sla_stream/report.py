"""``sla-stream report``: attainment and credits per contract and period, as a table or JSON.

Statements come from a replay of event files, from statement files (``replay
--penalties``), or from the statements topic itself. On the topic a statement
may appear twice (at-least-once delivery); the statement id says it is the
same one, and it is shown once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from sla_stream.kafka_client import client_kwargs
from sla_stream.runtime.topics import quiet_kafka
from sla_stream.settings import Settings


class ReportError(Exception):
    """A statement source that cannot be read: one line for the user."""


def from_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Statements from JSON-lines files."""
    found = []
    for path in paths:
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise ReportError(f"{path}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            if line.strip():
                found.append(_statement(line, f"{path}:{number}"))
    return found


async def from_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every committed statement on ``topic``, read from the beginning to the end as of now."""
    timeout_ms = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=timeout_ms)
    try:
        with quiet_kafka():
            await admin.start()
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise ReportError(f"cannot read topic {topic!r} on {settings.bootstrap_servers}: {exc}") from None
    finally:
        await admin.close()
    numbers = [p["partition"] for p in described[0]["partitions"]] if not described[0]["error_code"] else []
    if not numbers:
        raise ReportError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=timeout_ms,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found = []
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                found += [
                    _statement(r.value or b"", f"{tp.topic}[{tp.partition}]@{r.offset}") for r in records
                ]
        return found
    finally:
        await consumer.stop()


def select(
    statements: Iterable[dict[str, Any]], period: str | None = None, contract: str | None = None
) -> list[dict[str, Any]]:
    """One statement per id (the last seen), filtered, ordered by period then contract."""
    unique = {s["statement_id"]: s for s in statements}
    chosen = [
        s
        for s in unique.values()
        if (period is None or s["statement_id"].endswith("/" + period))
        and (contract is None or s["contract_id"] == contract)
    ]
    return sorted(chosen, key=lambda s: (s["statement_id"].rsplit("/", 1)[1], s["contract_id"]))


def table(statements: list[dict[str, Any]]) -> str:
    """A readable table: one block per statement, one row per objective."""
    if not statements:
        return "no statements\n"
    rows: list[list[str]] = [
        ["contract", "period", "objective", "attained", "target", "counted", "tier", "credit"]
    ]
    for s in statements:
        period = s["statement_id"].rsplit("/", 1)[1]
        for o in s["objectives"]:
            tier = o.get("tier") or {}
            limit = next((f"{side} {figure(tier[side])}" for side in ("below", "above") if side in tier), "")
            rows.append(
                [
                    s["contract_id"],
                    period,
                    o["objective"],
                    figure(o["attained"]),
                    figure(o["target"]) if "target" in o else "",
                    _counted(o),
                    limit,
                    f"{figure(o['credit_percent'])}%",
                ]
            )
        credit = s["credit"]
        for version in s.get("versions", ()):
            rows.append(
                [
                    s["contract_id"],
                    period,
                    f"~ version {version['name']}",
                    "",
                    "",
                    f"from {version['from'][:16]}",
                    f"to {version['to'][:16]}",
                    "",
                ]
            )
        for paid in s.get("compensation", ()):
            rows.append(
                [
                    s["contract_id"],
                    period,
                    f"+ {paid['reason']}",
                    "",
                    "",
                    f"{paid['count']} x {paid['each']:,.2f}",
                    "",
                    f"{paid['amount']:,.2f} {credit['currency']}",
                ]
            )
        excluded = s.get("excluded_seconds") or 0
        rows.append(
            [
                s["contract_id"],
                period,
                "= total" if s["objectives"] else "= nothing counted",
                "",
                "",
                f"excluded {figure(excluded / 3600)}h" if excluded else "",
                "",
                f"{figure(s['credit_percent'])}%{' + compensation' if s.get('compensation') else ''}"
                f" = {credit['amount']:,.2f} {credit['currency']}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 4, 7}
    lines: list[str] = []
    for index, row in enumerate(rows):
        if index > 1 and row[:2] != rows[index - 1][:2]:
            lines.append("")  # a blank line between statements
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def as_json(statements: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(statements, option=orjson.OPT_INDENT_2) + b"\n"


def _counted(objective: dict[str, Any]) -> str:
    total = objective["total"]
    for part in ("met", "good", "abandoned"):
        if part in objective:
            return f"{objective[part]}/{total}"
    return f"{total} answered"


def figure(value: float) -> str:
    """A figure as the statement has it, to at most six places (30.000001 stays 30.000001)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _statement(raw: bytes, where: str) -> dict[str, Any]:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"{where}: not JSON ({exc})") from None
    if not isinstance(record, dict) or not {"statement_id", "contract_id", "objectives"} <= record.keys():
        raise ReportError(f"{where}: not a penalty statement (no statement_id, contract_id or objectives)")
    return record
