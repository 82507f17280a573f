"""``sla-stream whatif``: one known history against two contract sets, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

CONTRACT = """
version: 1
id: parcel-desk
timezone: UTC
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {{targets: {{P1: {target}}}}}
penalties:
  monthly_fee: {{amount: 1000, currency: GBP}}
  tiers:
    - {{objective: first_response, below: 0.9, credit_percent: {credit}}}
"""


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sla_stream.cli", *args], capture_output=True, check=False)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Ten P1 tickets in November: five answered in 10 s, five in 30 s."""
    lines = []
    for n in range(10):
        at = f"2026-11-{10 + n:02d}T09:00:00Z"
        base = {"contract_id": "parcel-desk", "ticket_id": f"T{n}"}
        lines.append(
            {**base, "event_id": f"c{n}", "type": "ticket.created", "occurred_at": at, "priority": "P1"}
        )
        reply = f"2026-11-{10 + n:02d}T09:00:{10 if n % 2 else 30}Z"
        lines.append({**base, "event_id": f"r{n}", "type": "ticket.agent_replied", "occurred_at": reply})
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def contracts(root: Path, name: str, target: str, credit: int) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "parcel-desk.yaml").write_text(CONTRACT.format(target=target, credit=credit))
    return directory


def test_whatif_compares_attainment_credits_and_breaches_under_two_contract_sets(tmp_path, history):
    signed = contracts(tmp_path, "signed", "20s", 10)
    proposed = contracts(tmp_path, "proposed", "45s", 10)
    until = ("--until", "2026-12-01T00:10:00Z")
    result = cli(
        "whatif", "--contracts", str(signed), "--against", str(proposed), *until, "--json", str(history)
    )
    assert result.returncode == 0, result.stderr
    compared = orjson.loads(result.stdout)
    assert compared["sets"] == ["signed", "proposed"]
    assert compared["rows"] == [
        {
            "contract_id": "parcel-desk",
            "period": "2026-11",
            "objective": "first_response",
            "attained": [0.5, 1.0],
            "credit_percent": [10, 0],
            "breaches": [5, 0],
        },
        {
            "contract_id": "parcel-desk",
            "period": "2026-11",
            "objective": "= total",
            "credit_percent": [10, 0],
            "credit": [{"amount": 100.0, "currency": "GBP"}, {"amount": 0.0, "currency": "GBP"}],
        },
    ]

    text = cli("whatif", "--contracts", str(signed), "--against", str(proposed), *until, str(history))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.decode().splitlines()
    assert lines[0].split() == ["A:", "signed", "B:", "proposed"]
    header = "contract period objective attained A B breaches A B credit A B change"
    assert lines[2].split() == header.split()
    assert lines[3].split() == ["parcel-desk", "2026-11", "first_response", "0.5", "1", "5", "0", "10%", "0%"]
    total = "parcel-desk 2026-11 = total 100.00 GBP 0.00 GBP -100.00 GBP"
    assert lines[4].split() == total.split()


def test_a_period_not_closed_by_the_end_of_the_history_gives_nothing_to_compare(tmp_path, history):
    signed = contracts(tmp_path, "signed", "20s", 10)
    proposed = contracts(tmp_path, "proposed", "45s", 5)
    result = cli("whatif", "--contracts", str(signed), "--against", str(proposed), str(history))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.decode() == "no statements: no period closed in the history under either contract set\n"
    )


def test_a_broken_contract_set_to_compare_with_is_one_line_per_problem(tmp_path, history):
    signed = contracts(tmp_path, "signed", "20s", 10)
    proposed = contracts(tmp_path, "proposed", "soon", 10)
    result = cli("whatif", "--contracts", str(signed), "--against", str(proposed), str(history))
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"sla-stream: error: {proposed / 'parcel-desk.yaml'}: tickets.objectives.first_response.targets.P1:"
        " expected a duration like 45s, 30m, 4h or 3d, got 'soon'"
    ]


def test_breaches_count_in_the_month_of_their_deadline(tmp_path, history):
    december = tmp_path / "december.jsonl"
    base = {"contract_id": "parcel-desk", "ticket_id": "D1"}
    lines = [
        {
            **base,
            "event_id": "d1",
            "type": "ticket.created",
            "occurred_at": "2026-12-02T09:00:00Z",
            "priority": "P1",
        },
        {**base, "event_id": "d2", "type": "ticket.agent_replied", "occurred_at": "2026-12-02T09:00:05Z"},
    ]
    december.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    signed = contracts(tmp_path, "signed", "20s", 10)
    proposed = contracts(tmp_path, "proposed", "45s", 10)
    result = cli(
        *("whatif", "--contracts", str(signed), "--against", str(proposed)),
        *("--until", "2027-01-01T00:10:00Z", "--json", str(history), str(december)),
    )
    assert result.returncode == 0, result.stderr
    rows = orjson.loads(result.stdout)["rows"]
    assert [(r["period"], r["objective"], r.get("breaches")) for r in rows] == [
        ("2026-11", "first_response", [5, 0]),
        ("2026-11", "= total", None),
        ("2026-12", "first_response", [0, 0]),
        ("2026-12", "= total", None),
    ]
    only = cli(
        *("whatif", "--contracts", str(signed), "--against", str(proposed), "--period", "2026-12"),
        *("--until", "2027-01-01T00:10:00Z", "--json", str(history), str(december)),
    )
    assert {r["period"] for r in orjson.loads(only.stdout)["rows"]} == {"2026-12"}
