"""Contract files: extends, validation errors a user can act on, and the validate command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from sla_stream.contracts import ContractError, load_dir


def write(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(ContractError) as caught:
        load_dir(directory)
    return caught.value.errors


def test_the_example_contracts_load_and_an_abstract_base_is_not_measured_itself():
    contracts = load_dir(REPO / "examples" / "contracts")
    assert "gold-standard" not in contracts
    assert {"acme-gold", "globex-silver", "demo-fast"} <= set(contracts)


def test_extends_deep_merges_the_base_and_the_file_wins():
    acme = load_dir(REPO / "examples" / "contracts")["acme-gold"]
    assert acme.tickets is not None
    first = acme.tickets.objectives["first_response"]
    assert first.targets["P1"] == 15 * 60_000  # overridden
    assert first.targets["P2"] == 2 * 3_600_000  # inherited
    assert acme.tickets.objectives["resolution"].pause_on == {"pending", "on_hold"}
    assert str(acme.zone) == "Asia/Jakarta"


def test_every_error_is_reported_with_file_field_path_and_what_was_expected(tmp_path):
    write(
        tmp_path,
        broken="""
version: 1
id: broken
timezone: Mars/Olympus
tickets:
  priorities: [P1]
  near_breach: [1.5]
  objectives:
    first_response: {targets: {P1: 30 minutes}}
    resoltion: {targets: {P1: 4h}}
""",
    )
    errors = errors_of(tmp_path)
    path = str(tmp_path / "broken.yaml")
    assert all(line.startswith(path + ": ") for line in errors)
    text = "\n".join(errors)
    assert "timezone: expected an IANA time zone like Europe/Paris, got 'Mars/Olympus'" in text
    assert "tickets.near_breach[0]:" in text
    assert "tickets.objectives.first_response.targets.P1: expected a duration like 45s, 30m, 4h or 3d" in text
    assert "tickets.objectives.resoltion" in text
    assert len(errors) == 4


def test_cross_field_mistakes_are_reported_too(tmp_path):
    write(
        tmp_path,
        c="""
version: 1
id: c
tickets:
  priorities: [P1, P2]
  objectives:
    first_response: {calendar: office, targets: {P1: 1h, P2: 2h}}
    resolution: {targets: {P1: 4h}}
""",
    )
    text = "\n".join(errors_of(tmp_path))
    assert "tickets.objectives.first_response.calendar: no calendar named 'office'" in text
    assert "tickets.objectives.resolution.targets: no target for priority P2" in text


def test_call_and_request_sections_are_checked_across_fields(tmp_path):
    write(
        tmp_path,
        c="""
version: 1
id: c
calls:
  service_level: {answer_within: 20s, target: 0.8, interval: 7m, short_abandon: 30s}
requests:
  availability: {target: 1, window: 90s}
  burn_rate_alerts: [{long: 5m, short: 1h, factor: 2}]
""",
    )
    assert errors_of(tmp_path) == [
        f"{tmp_path / 'c.yaml'}: calls.service_level.short_abandon: must be shorter than answer_within",
        f"{tmp_path / 'c.yaml'}: calls.service_level.interval: must divide a day evenly (like 15m or 30m),"
        " got 420s",
        f"{tmp_path / 'c.yaml'}: requests.availability.target: must be below 1"
        " (there is no error budget at 1)",
        f"{tmp_path / 'c.yaml'}: requests.availability.window: must be whole minutes",
        f"{tmp_path / 'c.yaml'}: requests.burn_rate_alerts[0].short: must be shorter than long",
    ]


def test_the_example_contracts_measure_calls_and_requests_with_the_workbook_burn_rates():
    acme = load_dir(REPO / "examples" / "contracts")["acme-gold"]
    assert acme.calls is not None and acme.requests is not None
    level = acme.calls.objectives["service_level"]
    assert (level.interval, level.target, acme.calls.answer_within, acme.calls.short_abandon) == (
        1_800_000,
        0.8,
        20_000,
        5_000,
    )
    rules = [(r.long // 60_000, r.short // 60_000, r.factor, r.severity) for r in acme.requests.burn_rates]
    assert rules == [
        (60, 5, 14.4, "page"),
        (360, 30, 6.0, "page"),
        (1440, 120, 3.0, "ticket"),
        (4320, 360, 1.0, "ticket"),
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a": "version: 1\nid: a\nextends: b\n", "b": "version: 1\nid: b\nextends: a\n"}, "is a cycle"),
        ({"a": "version: 1\nid: a\nextends: nowhere\n"}, "no contract with id 'nowhere'"),
        ({"a": "version: 1\nid: a\n", "b": "version: 1\nid: a\n"}, "'a' is already used by"),
        ({"a": "version: 1\nid: a\ntickets: [oops\n"}, "not valid YAML"),
        (
            {"a": "version: 1\nid: a\ncalendars:\n  office: {weekly: {mon-fri: ['17:00-09:00']}}\n"},
            "expected opening hours",
        ),
        (
            {"a": "version: 1\nid: a\ncalendars:\n  office: {weekly: {mon: []}, holidays: {country: XX}}\n"},
            "no opening hours",
        ),
    ],
    ids=["extends cycle", "missing base", "duplicate id", "bad yaml", "hours backwards", "no opening hours"],
)
def test_contract_directory_mistakes_name_the_problem(tmp_path, files, message):
    write(tmp_path, **files)
    assert message in "\n".join(errors_of(tmp_path))


def test_validate_prints_each_error_on_one_line_and_exits_1_without_a_traceback(tmp_path):
    write(tmp_path, bad="version: 1\nid: bad\ntimezone: Nowhere/Town\n")
    result = subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", "contracts", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sla-stream: error: {tmp_path / 'bad.yaml'}: timezone: expected an IANA time zone like "
        "Europe/Paris, got 'Nowhere/Town'"
    ]
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "sla_stream.cli",
            "contracts",
            "validate",
            str(REPO / "examples" / "contracts"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "ok acme-gold" in ok.stdout
