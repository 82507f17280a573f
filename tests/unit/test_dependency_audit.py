"""The dependency audit's decisions, with PyPI's answers faked (no network, pip-audit not started)."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from sla_stream import dependency_audit as audit


def project_json(version: str, vulnerabilities: list[dict[str, object]] | None = None) -> bytes:
    return json.dumps({"info": {"version": version}, "vulnerabilities": vulnerabilities or []}).encode()


def test_the_resolved_set_is_the_projects_runtime_and_dev_dependencies_as_installed():
    installed = audit.resolve()
    assert "sla-stream" not in installed
    for name in ("faust-streaming", "aiokafka", "orjson", "pydantic", "pytest", "mypy", "pip-audit"):
        assert installed[name] == metadata.version(name)
    assert "mode-streaming" in installed  # transitive, through faust-streaming


def test_a_missing_requirement_is_reported_not_skipped():
    with pytest.raises(audit.EnvironmentMismatch, match="no-such-distribution"):
        audit.resolve("no-such-distribution")


def test_the_probe_passes_only_when_a_release_that_exists_can_be_looked_up():
    answers = {
        "https://pypi.org/pypi/pip-audit/json": (200, project_json("2.10.1")),
        "https://pypi.org/pypi/pip-audit/2.10.1/json": (200, project_json("2.10.1")),
    }
    assert audit.probe(answers.__getitem__) is None

    answers["https://pypi.org/pypi/pip-audit/2.10.1/json"] = (404, b"")
    reason = audit.probe(answers.__getitem__)
    assert reason is not None
    assert "HTTP 404 for pip-audit 2.10.1" in reason

    def unreachable(url: str) -> tuple[int, bytes]:
        return 0, b"URLError: <urlopen error [Errno -2] Name or service not known>"

    reason = audit.probe(unreachable)
    assert reason is not None
    assert "no answer (URLError" in reason


def test_the_partial_check_covers_only_releases_that_are_pypis_latest():
    answers = {
        "https://pypi.org/pypi/current/json": (200, project_json("1.0")),
        "https://pypi.org/pypi/behind/json": (200, project_json("2.0")),
        "https://pypi.org/pypi/gone/json": (404, b""),
        "https://pypi.org/pypi/flawed/json": (
            200,
            project_json(
                "3.0.0",
                [
                    {"id": "PYSEC-1", "aliases": ["CVE-1"], "fixed_in": ["3.0.1"]},
                    {"id": "PYSEC-2", "aliases": [], "fixed_in": [], "withdrawn": "2026-01-01T00:00:00Z"},
                ],
            ),
        ),
    }
    installed = {"current": "1.0.0", "behind": "1.9", "gone": "0.1", "flawed": "3.0"}
    result = audit.partial_check(installed, answers.__getitem__)
    assert result.checked == ["current 1.0.0", "flawed 3.0"]
    assert result.uncovered == ["behind 1.9 (PyPI's latest is 2.0)", "gone 0.1 (project JSON: HTTP 404)"]
    assert result.findings == ["flawed 3.0: PYSEC-1 / CVE-1 (fixed in: 3.0.1)"]


def fake_pypi(per_release: int, vulnerable: str | None = None) -> audit.Fetch:
    def fetch(url: str) -> tuple[int, bytes]:
        if url.endswith("/pip-audit/json"):
            return 200, project_json("2.10.1")
        if url.endswith("/pip-audit/2.10.1/json"):
            return per_release, project_json("2.10.1") if per_release == 200 else b""
        name = url.removeprefix("https://pypi.org/pypi/").removesuffix("/json")
        vulns = [{"id": "GHSA-x", "aliases": [], "fixed_in": ["99"]}] if name == vulnerable else []
        return 200, project_json(metadata.version(name), vulns)

    return fetch


def test_unreachable_service_is_not_run_never_clean(monkeypatch, capsys):
    monkeypatch.setattr(audit, "run_pip_audit", lambda installed: pytest.fail("pip-audit started"))
    assert audit.main([], fetch=fake_pypi(404)) == audit.EXIT_NOT_RUN
    out = capsys.readouterr().out
    assert "dependency audit NOT RUN: PyPI's per-release JSON API" in out
    assert "PASSED" not in out

    assert audit.main(["--allow-not-run"], fetch=fake_pypi(404)) == 0
    out = capsys.readouterr().out
    assert "dependency audit NOT RUN:" in out
    assert "PASSED" not in out


def test_a_vulnerability_the_partial_check_sees_fails_even_when_not_run_is_allowed(monkeypatch, capsys):
    monkeypatch.setattr(audit, "run_pip_audit", lambda installed: pytest.fail("pip-audit started"))
    status = audit.main(["--allow-not-run"], fetch=fake_pypi(404, vulnerable="orjson"))
    assert status == audit.EXIT_VULNERABLE
    assert f"orjson {metadata.version('orjson')}: GHSA-x" in capsys.readouterr().out


@pytest.mark.parametrize(("pip_audit_status", "expected"), [(0, 0), (1, audit.EXIT_VULNERABLE)])
def test_a_reachable_service_makes_pip_audits_verdict_the_result(
    monkeypatch, capsys, pip_audit_status, expected
):
    audited: list[dict[str, str]] = []

    def run_pip_audit(installed: dict[str, str]) -> int:
        audited.append(installed)
        return int(pip_audit_status)

    monkeypatch.setattr(audit, "run_pip_audit", run_pip_audit)
    assert audit.main(["--allow-not-run"], fetch=fake_pypi(200)) == expected
    assert audited == [audit.resolve()]
    out = capsys.readouterr().out
    assert ("PASSED" in out) == (expected == 0)
    assert "NOT RUN" not in out
