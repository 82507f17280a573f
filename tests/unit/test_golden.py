"""Golden files: contracts and events in, alerts out, byte for byte (``tests/golden/<case>/``).

Each case's ``expected.jsonl`` was checked by hand against the clock rules (docs/reference/events.md); the
reasoning is in the case's ``README.md``. Set ``UPDATE_GOLDEN=1`` to rewrite them after an
intended change, then read the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

GOLDEN = REPO / "tests" / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "events.jsonl").exists())


def replay_cli(case: Path) -> bytes:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sla_stream.cli",
            "replay",
            "--contracts",
            str(case / "contracts"),
            "--until",
            (case / "until").read_text().strip(),
            str(case / "events.jsonl"),
        ],
        capture_output=True,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("name", CASES)
def test_replay_gives_the_golden_alerts_byte_for_byte(name: str) -> None:
    case = GOLDEN / name
    got = replay_cli(case)
    expected = case / "expected.jsonl"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_bytes(got)
    assert got == expected.read_bytes()


def test_there_are_golden_cases():
    assert len(CASES) >= 2
