"""Dependency audit: `pip-audit --strict` over exactly sla-stream's resolved runtime and dev dependencies.

`make audit` runs `python -m sla_stream.dependency_audit` in the project's environment (the dev
extra installs pip-audit). It lists the distributions that `sla-stream[dev]` resolves to, as
installed (the project itself left out: it is not on PyPI), and hands them to
`pip-audit --strict` with PyPI's vulnerability service (the PyPA advisory database as PyPI serves
it, per release). Strict means a distribution that could not be looked up fails the audit instead
of being skipped.

Before that it asks PyPI's per-release JSON API, the one pip-audit queries, for a release that
certainly exists: pip-audit's own latest. When that lookup fails (no connection, or an answer other
than 200, e.g. the 404 that a network letting through only PyPI's project pages gives), the
audit cannot run and is reported as NOT RUN, never as clean. In that case a partial check runs
instead: for every distribution whose installed version is PyPI's latest, the project JSON's
`vulnerabilities` field lists the known vulnerabilities of exactly that release, so those are
checked; the others are listed as not covered.

Exit status: 0 audited, no known vulnerability; 1 known vulnerabilities (from the audit or the
partial check), or the audit failed while the service answered; 3 NOT RUN (0 with
--allow-not-run, the NOT RUN line still printed); 2 the environment does not hold what the
project requires.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PROJECT = "sla-stream"
EXTRAS = ("dev",)
PYPI = "https://pypi.org/pypi"
CONTROL = "pip-audit"  # a distribution that is on PyPI for certain: the auditor itself
TIMEOUT = 20.0
EXIT_VULNERABLE = 1
EXIT_BROKEN_ENV = 2
EXIT_NOT_RUN = 3

# fetch(url) -> (HTTP status, body); status 0 with the error text as body when there was no answer
Fetch = Callable[[str], tuple[int, bytes]]


class EnvironmentMismatch(Exception):
    """A distribution the project requires is not installed."""


def http_get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (OSError, ValueError) as error:  # URLError, timeouts, connection resets
        return 0, f"{type(error).__name__}: {error}".encode()


def resolve(project: str = PROJECT, extras: Iterable[str] = EXTRAS) -> dict[str, str]:
    """The installed distributions that `project[extras]` requires, transitively: name -> version.

    Markers are evaluated for this interpreter and the requested extras; the project itself is
    left out. Raises EnvironmentMismatch if a required distribution is missing.
    """
    resolved: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending: list[tuple[str, frozenset[str], str]] = [(project, frozenset(extras), "")]
    while pending:
        name, wanted, required_by = pending.pop()
        key = canonicalize_name(name)
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise EnvironmentMismatch(f"{name} (required by {required_by}) is not installed") from None
        if key != canonicalize_name(project):
            resolved[key] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in {"", *wanted}
            ):
                continue
            pending.append((requirement.name, frozenset(requirement.extras), dist.metadata["Name"]))
    return dict(sorted(resolved.items()))


def probe(fetch: Fetch, control: str = CONTROL) -> str | None:
    """None when PyPI's per-release JSON API answers; otherwise why the audit cannot run."""
    status, body = fetch(f"{PYPI}/{control}/json")
    if status != 200:
        return f"PyPI's JSON API gave {_answer(status, body)} for {control} (/pypi/{control}/json)"
    try:
        latest = str(json.loads(body)["info"]["version"])
    except (ValueError, KeyError, TypeError):
        return f"PyPI's JSON API gave an answer for {control} that is not a project's JSON"
    release_url = f"{PYPI}/{control}/{latest}/json"
    status, body = fetch(release_url)
    if status != 200:
        return (
            f"PyPI's per-release JSON API, which pip-audit queries, gave {_answer(status, body)} "
            f"for {control} {latest}, a release PyPI lists as its latest (/pypi/{control}/{latest}/json)"
        )
    return None


def _answer(status: int, body: bytes) -> str:
    return f"HTTP {status}" if status else f"no answer ({body.decode(errors='replace')})"


@dataclass
class PartialCheck:
    """What PyPI's project JSON (latest release only) says about the installed distributions."""

    checked: list[str] = field(default_factory=list)  # "name version": installed == latest
    findings: list[str] = field(default_factory=list)  # "name version: ID (aliases) fixed in …"
    uncovered: list[str] = field(default_factory=list)  # "name version (why)"


def partial_check(installed: dict[str, str], fetch: Fetch) -> PartialCheck:
    def one(item: tuple[str, str]) -> tuple[str, str, int, bytes]:
        name, version = item
        status, body = fetch(f"{PYPI}/{name}/json")
        return name, version, status, body

    result = PartialCheck()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, installed.items()))
    for name, version, status, body in answers:
        label = f"{name} {version}"
        if status != 200:
            result.uncovered.append(f"{label} (project JSON: {_answer(status, body)})")
            continue
        try:
            document: dict[str, Any] = json.loads(body)
            latest = str(document["info"]["version"])
            vulnerabilities = document.get("vulnerabilities") or []
        except (ValueError, KeyError, TypeError):
            result.uncovered.append(f"{label} (project JSON unreadable)")
            continue
        if not _same_version(version, latest):
            result.uncovered.append(f"{label} (PyPI's latest is {latest})")
            continue
        result.checked.append(label)
        for vulnerability in vulnerabilities:
            if vulnerability.get("withdrawn"):
                continue
            ids = [vulnerability.get("id", "?"), *(vulnerability.get("aliases") or [])]
            fixed = ", ".join(vulnerability.get("fixed_in") or []) or "no fixed release"
            result.findings.append(f"{label}: {' / '.join(ids)} (fixed in: {fixed})")
    return result


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def run_pip_audit(installed: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as directory:
        requirements = Path(directory) / "requirements.txt"
        requirements.write_text("".join(f"{name}=={version}\n" for name, version in installed.items()))
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--strict",
            "--vulnerability-service",
            "pypi",
            "--requirement",
            str(requirements),
            "--no-deps",  # the list is already the full resolved set, pinned
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--desc",
        ]
        return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None, fetch: Fetch = http_get) -> int:
    parser = argparse.ArgumentParser(prog="python -m sla_stream.dependency_audit", description=__doc__)
    parser.add_argument(
        "--allow-not-run",
        action="store_true",
        help="exit 0 when the vulnerability service is unreachable (NOT RUN is still printed)",
    )
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # our lines and pip-audit's, in order

    try:
        installed = resolve()
    except EnvironmentMismatch as error:
        print(f"dependency audit FAILED: the environment does not match the project: {error}")
        return EXIT_BROKEN_ENV
    print(f"dependency audit: {len(installed)} distributions ({PROJECT}[{','.join(EXTRAS)}], resolved)")

    reason = probe(fetch)
    if reason is None:
        status = run_pip_audit(installed)
        if status == 0:
            print(
                f"dependency audit PASSED: pip-audit --strict looked up all {len(installed)} "
                "distributions in PyPI's advisories: no known vulnerability"
            )
            return 0
        print(f"dependency audit FAILED: pip-audit --strict exited {status} (its report is above)")
        return EXIT_VULNERABLE

    print(f"dependency audit NOT RUN: {reason}")
    partial = partial_check(installed, fetch)
    print(
        f"  partial check, not an audit: {len(partial.checked)} of {len(installed)} distributions "
        "are PyPI's latest release, whose known vulnerabilities PyPI's project JSON lists"
    )
    if partial.checked:
        print(f"    checked: {', '.join(partial.checked)}")
    if partial.uncovered:
        print(f"    not covered ({len(partial.uncovered)}): {', '.join(partial.uncovered)}")
    if partial.findings:
        print(f"dependency audit FAILED: {len(partial.findings)} known vulnerabilities in checked releases:")
        for finding in partial.findings:
            print(f"    {finding}")
        return EXIT_VULNERABLE
    print(f"    no known vulnerability in the {len(partial.checked)} checked releases")
    if args.allow_not_run:
        print("dependency audit NOT RUN (allowed by --allow-not-run: exit status 0)")
        return 0
    return EXIT_NOT_RUN


if __name__ == "__main__":
    sys.exit(main())
