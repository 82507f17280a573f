"""``replay --penalties`` and ``sla-stream report`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from helpers import REPO
from jsonschema import Draft202012Validator

CONTRACTS = REPO / "examples" / "contracts"


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sla_stream.cli", *args], capture_output=True, check=False)


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """100 minutes of simulated traffic across the end of November (London and Berlin) and
    before it in Jakarta, where December has begun."""
    path = tmp_path_factory.mktemp("traffic") / "events.jsonl"
    made = cli(
        *("simulate", "--contracts", str(CONTRACTS), "--output", str(path), "--seed", "7"),
        *("--start", "2026-11-30T22:40:00+00:00", "--duration", "100m", "--request-rate", "1"),
    )
    assert made.returncode == 0, made.stderr
    return path


def test_replay_writes_one_valid_statement_per_closed_period(tmp_path, events):
    penalties = tmp_path / "penalties.jsonl"
    result = cli("replay", "--contracts", str(CONTRACTS), "--penalties", str(penalties), str(events))
    assert result.returncode == 0, result.stderr
    statements = [orjson.loads(line) for line in penalties.read_bytes().splitlines()]
    # November closed in London and Berlin (five minutes after its end); Jakarta's was over
    # before the traffic started, so its first counted period, December, is still open.
    # (swiftparcel-eu's parcels take working days: none was decided in November's last hour.)
    assert sorted(s["statement_id"] for s in statements) == [
        "demo-fast/2026-11",
        "globex-silver/2026-11",
        "swiftparcel-demo/2026-11",
    ]
    validator = Draft202012Validator(
        json.loads((REPO / "schemas" / "penalty-statement.schema.json").read_text())
    )
    for statement in statements:
        validator.validate(statement)
        fee = {"demo-fast": 1000, "globex-silver": 4800, "swiftparcel-demo": 40000}[statement["contract_id"]]
        compensation = sum(paid["amount"] for paid in statement.get("compensation", ()))
        assert statement["credit"]["amount"] == round(
            fee * statement["credit_percent"] / 100 + compensation, 2
        )


def test_report_reads_statement_files_and_replays_events_alike(tmp_path, events):
    penalties = tmp_path / "penalties.jsonl"
    cli("replay", "--contracts", str(CONTRACTS), "--penalties", str(penalties), str(events))
    as_json = cli("report", "--statements", str(penalties), "--json")
    assert as_json.returncode == 0, as_json.stderr
    written = sorted(
        (orjson.loads(line) for line in penalties.read_bytes().splitlines()), key=lambda s: s["contract_id"]
    )
    assert orjson.loads(as_json.stdout) == written
    replayed = cli("report", "--events", str(events), "--contracts", str(CONTRACTS), "--json")
    assert orjson.loads(replayed.stdout) == written

    shown = cli("report", "--statements", str(penalties), "--contract", "demo-fast", "--period", "2026-11")
    lines = shown.stdout.decode().splitlines()
    assert lines[0].split() == [
        "contract",
        "period",
        "objective",
        "attained",
        "target",
        "counted",
        "tier",
        "credit",
    ]
    demo = next(s for s in written if s["contract_id"] == "demo-fast")
    for row, objective in zip(lines[1:], demo["objectives"], strict=False):
        assert row.split()[:3] == ["demo-fast", "2026-11", objective["objective"]]
        assert row.split()[-1] == f"{objective['credit_percent']}%"
    credit = demo["credit"]
    assert lines[-1].endswith(f"{demo['credit_percent']}% = {credit['amount']:,.2f} {credit['currency']}")
    assert "globex" not in shown.stdout.decode()
    assert cli("report", "--statements", str(penalties), "--period", "2026-10").stdout == b"no statements\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--statements", "missing.jsonl"), "missing.jsonl: No such file or directory"),
        (("--events", "x.jsonl"), "--events: needs --contracts DIR"),
        (("--statements", str(CONTRACTS / "acme-gold.yaml")), "acme-gold.yaml:1: not JSON"),
        (("--statements", "x", "--period", "2026-13"), "--period: expected a month like 2026-11"),
        (
            ("--from-topic", "--bootstrap-servers", "127.0.0.1:1"),
            "cannot read topic 'sla.penalties' on 127.0.0.1:1",
        ),
    ],
)
def test_report_mistakes_are_one_line(args, message):
    result = cli("report", *args)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("sla-stream: error: ") and message in line


def test_the_table_shows_figures_to_six_places_as_the_statement_has_them():
    from sla_stream.report import table

    statement = {
        "statement_id": "acme/2026-11",
        "contract_id": "acme",
        "objectives": [
            {
                "objective": "speed_of_answer",
                "attained": 30.000001,
                "target": 30.0,
                "total": 7,
                "wait_seconds": 210.000007,
                "credit_percent": 1,
                "tier": {"above": 30.0, "credit_percent": 1},
            },
        ],
        "credit_percent": 1,
        "credit": {"amount": 12.5, "currency": "USD"},
        "excluded_seconds": 5400,
    }
    row, total = table([statement]).splitlines()[1:]
    assert row.split() == [
        "acme",
        "2026-11",
        "speed_of_answer",
        "30.000001",
        "30",
        "7",
        "answered",
        "above",
        "30",
        "1%",
    ]
    assert total.split()[-4:] == ["1%", "=", "12.50", "USD"] and "excluded 1.5h" in total


def test_the_table_lists_each_compensation_rule_and_the_total_includes_it():
    from sla_stream.report import table

    statement = {
        "statement_id": "parcels/2026-11",
        "contract_id": "parcels",
        "objectives": [
            {
                "objective": "delivery",
                "attained": 0.7,
                "target": 0.95,
                "met": 7,
                "total": 10,
                "credit_percent": 5,
            }
        ],
        "credit_percent": 5,
        "credit": {"amount": 125.5, "currency": "EUR"},
        "excluded_seconds": 0,
        "compensation": [
            {"reason": "late_delivery", "objective": "delivery", "count": 3, "each": 8.5, "amount": 25.5},
            {"reason": "damaged", "count": 2, "each": 25.0, "amount": 50.0},
        ],
    }
    _, _, late, damaged, total = table([statement]).splitlines()
    assert late.split()[2:] == ["+", "late_delivery", "3", "x", "8.50", "25.50", "EUR"]
    assert damaged.split()[2:] == ["+", "damaged", "2", "x", "25.00", "50.00", "EUR"]
    assert total.split()[2:] == ["=", "total", "5%", "+", "compensation", "=", "125.50", "EUR"]


def test_the_table_names_the_versions_a_statement_spans():
    from sla_stream.report import table

    statement = {
        "statement_id": "acme/2026-12",
        "contract_id": "acme",
        "objectives": [],
        "credit_percent": 0,
        "credit": {"amount": 0.0, "currency": "USD"},
        "excluded_seconds": 0,
        "versions": [
            {
                "name": "gold-2026",
                "effective_from": None,
                "from": "2026-12-01T00:00:00+07:00",
                "to": "2026-12-15T00:00:00+07:00",
            },
            {
                "name": "gold-2027",
                "effective_from": "2026-12-15T00:00:00+07:00",
                "from": "2026-12-15T00:00:00+07:00",
                "to": "2027-01-01T00:00:00+07:00",
            },
        ],
    }
    _, first, second, _ = table([statement]).splitlines()
    assert first.split()[2:] == [
        "~",
        "version",
        "gold-2026",
        "from",
        "2026-12-01T00:00",
        "to",
        "2026-12-15T00:00",
    ]
    assert second.split()[2:] == [
        "~",
        "version",
        "gold-2027",
        "from",
        "2026-12-15T00:00",
        "to",
        "2027-01-01T00:00",
    ]
