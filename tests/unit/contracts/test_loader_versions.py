"""Versioned contract files: each version deep-merged over the one before, checked like a contract,
and the version in force at an instant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, contracts_from, ms

from sla_stream.contracts import ContractError, load_dir

BASE = """
version: 1
id: acme
timezone: Asia/Jakarta
tickets:
  priorities: [P1, P2]
  near_breach: [0.75]
  objectives:
    first_response: {targets: {P1: 30m, P2: 2h}}
    resolution: {targets: {P1: 4h, P2: 1d}, pause_on: [pending]}
"""

VERSIONS = """
versions:
  - effective_from: 2027-01-01T00:00:00+07:00
    tickets: {objectives: {first_response: {targets: {P1: 15m}}}}
  - name: summer
    effective_from: "2027-06-01T00:00:00+07:00"
    tickets: {near_breach: [0.5]}
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "acme.yaml").write_text(text)
    with pytest.raises(ContractError) as caught:
        load_dir(tmp_path)
    prefix = f"{tmp_path / 'acme.yaml'}: "
    assert all(line.startswith(prefix) for line in caught.value.errors)
    return [line.removeprefix(prefix) for line in caught.value.errors]


def test_each_version_is_merged_over_the_one_before_it(tmp_path):
    acme = contracts_from(tmp_path, acme=BASE + VERSIONS)["acme"]
    assert (acme.version, acme.effective_from) == ("initial", None)
    renewal, summer = acme.versions
    # Named after the local date of effective_from unless named.
    assert (renewal.version, renewal.effective_from) == ("2027-01-01", ms("2027-01-01T00:00:00+07:00"))
    assert (summer.version, summer.effective_from) == ("summer", ms("2027-06-01T00:00:00+07:00"))
    for version in (renewal, summer):
        assert version.tickets is not None and version.versions == ()
        assert dict(version.tickets.objectives["first_response"].targets) == {
            "P1": 15 * 60_000,
            "P2": 7_200_000,
        }
        assert version.tickets.objectives["resolution"].pause_on == {"pending"}
        assert (version.id, str(version.zone)) == ("acme", "Asia/Jakarta")
    assert (acme.tickets and acme.tickets.near_breach, renewal.tickets.near_breach) == ((0.75,), (0.75,))
    assert summer.tickets.near_breach == (0.5,)  # cumulative: summer keeps the renewal's 15m too


def test_the_first_version_is_named_by_version_name(tmp_path):
    acme = contracts_from(tmp_path, acme=BASE + "version_name: gold-2026\n" + VERSIONS)["acme"]
    assert [acme.version, *(v.version for v in acme.versions)] == ["gold-2026", "2027-01-01", "summer"]


def test_the_version_in_force_is_the_last_to_take_effect_at_or_before_the_instant(tmp_path):
    acme = contracts_from(tmp_path, acme=BASE + VERSIONS)["acme"]
    change = ms("2027-01-01T00:00:00+07:00")
    assert acme.at(change - 1) is acme
    assert acme.at(change).version == "2027-01-01"
    assert acme.at(ms("2027-05-31T23:59:59.999+07:00")).version == "2027-01-01"
    assert acme.at(ms("2027-06-01T00:00:00+07:00")).version == "summer"
    assert acme.at(ms("2099-01-01T00:00:00Z")).version == "summer"
    assert acme.changes_after(change - 1) == change
    assert acme.changes_after(change) == ms("2027-06-01T00:00:00+07:00")
    assert acme.changes_after(ms("2027-06-01T00:00:00+07:00")) is None


def test_an_unversioned_contract_is_its_own_only_version(tmp_path):
    acme = contracts_from(tmp_path, acme=BASE)["acme"]
    assert (acme.version, acme.versions, acme.versioned) == ("initial", (), False)
    assert acme.at(0) is acme and acme.changes_after(0) is None


def test_mistakes_in_the_versions_list_are_one_line_each(tmp_path):
    errors = errors_of(
        tmp_path,
        BASE
        + """
versions:
  - effective_from: 2027-01-01T00:00:00+07:00
    timezone: UTC
    id: other
  - {name: later, effective_from: 2026-06-01T00:00:00+07:00}
  - {name: later, effective_from: 2027-03-01}
  - just a string
  - {name: initial, effective_from: 2028-01-01T00:00:00Z}
  - {name: x}
""",
    )
    assert errors == [
        "versions[0].timezone: belongs to the whole contract; a version cannot set it",
        "versions[0].id: belongs to the whole contract; a version cannot set it",
        "versions[1].effective_from: must be later than the version before it",
        "versions[2].effective_from: expected an RFC 3339 time with offset, like 2027-01-01T00:00:00+07:00,"
        " got '2027-03-01'",
        "versions[2].name: 'later' is already the name of versions[1]",
        "versions[3]: expected a mapping with effective_from and the terms that change",
        "versions[4].name: 'initial' is already the name of the first version",
        "versions[5].effective_from: required field is missing",
    ]


def test_a_mistake_in_a_version_names_the_version_and_the_field(tmp_path):
    errors = errors_of(
        tmp_path,
        BASE
        + """
versions:
  - effective_from: 2027-01-01T00:00:00+07:00
  - effective_from: 2027-02-01T00:00:00+07:00
    tickets: {objectives: {first_response: {targets: {P1: 15 minutes}}}}
  - effective_from: 2027-03-01T00:00:00+07:00
    tickets: {priorities: [P1, P2, P3]}
""",
    )
    # The bad duration stays in versions[2] by the merge, but is reported once, where it was written.
    assert errors == [
        "versions[1].tickets.objectives.first_response.targets.P1: expected a duration like 45s, 30m,"
        " 4h or 3d, got '15 minutes'",
    ]
    errors = errors_of(
        tmp_path,
        BASE
        + """
versions:
  - effective_from: 2027-01-01T00:00:00+07:00
  - effective_from: 2027-03-01T00:00:00+07:00
    tickets: {priorities: [P1, P2, P3]}
""",
    )
    assert errors == [
        "versions[1].tickets.objectives.first_response.targets: no target for priority P3",
        "versions[1].tickets.objectives.resolution.targets: no target for priority P3",
    ]


def test_a_version_cannot_add_or_remove_a_section(tmp_path):
    errors = errors_of(
        tmp_path,
        BASE
        + """
versions:
  - effective_from: 2027-01-01T00:00:00+07:00
    calls: {abandon_rate: {max: 0.05}}
""",
    )
    assert errors == [
        "versions[0].calls: a version cannot add or remove a section (every version measures what the"
        " first one does)"
    ]


def test_the_versioned_example_loads_and_is_the_golden_case_contract():
    example = REPO / "examples" / "versioned" / "acme-renewal.yaml"
    golden = REPO / "tests" / "golden" / "versioned-renewal" / "contracts" / "acme-renewal.yaml"
    assert example.read_bytes() == golden.read_bytes()
    contract = load_dir(example.parent)["acme-renewal"]
    assert [contract.version, *(v.version for v in contract.versions)] == ["gold-2026", "gold-2027"]


def test_validate_names_the_versions_of_a_versioned_contract():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sla_stream.cli",
            "contracts",
            "validate",
            str(REPO / "examples" / "versioned"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == (
        "ok acme-renewal (versions: gold-2026, gold-2027 from 2026-12-01T00:00:00+07:00)\n"
    )


def test_a_contract_extending_one_with_versions_inherits_them_over_its_own_terms(tmp_path):
    base = BASE.replace("id: acme", "id: base\nabstract: true") + VERSIONS
    child = "version: 1\nid: child\nextends: base\ntickets: {objectives: {resolution: {targets: {P1: 8h}}}}\n"
    contracts = contracts_from(tmp_path, base=base, child=child)
    assert list(contracts) == ["child"]
    renewal = contracts["child"].versions[0]
    assert renewal.tickets is not None
    assert renewal.tickets.objectives["resolution"].targets["P1"] == 8 * 3_600_000  # the child's
    assert renewal.tickets.objectives["first_response"].targets["P1"] == 15 * 60_000  # the renewal's
