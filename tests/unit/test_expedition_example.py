"""The expedition example as `make expedition` runs it: the Makefile's own commands, with the
output paths moved to a temporary directory, give the statement docs/guide/items.md shows."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import orjson
from helpers import REPO


def recipe() -> list[list[str]]:
    """The `sla-stream` commands of the Makefile's `expedition` target, one argument list each."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    lines = text.split("\nexpedition:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [shlex.split(line.split("sla-stream", 1)[1]) for line in lines if "$(BIN)/sla-stream" in line]


def test_make_expedition_gives_the_statement_the_items_guide_shows(tmp_path: Path) -> None:
    commands = recipe()
    assert [c[0] for c in commands] == ["simulate", "replay", "report"]
    for command in commands:
        args = [a.replace("var/", f"{tmp_path}/") for a in command if a != ">"]
        if command[0] == "replay":  # the recipe sends the alerts to a file with ">"
            args = args[:-1]
        ran = subprocess.run(
            [sys.executable, "-m", "sla_stream.cli", *args], cwd=REPO, capture_output=True, check=False
        )
        assert ran.returncode == 0, ran.stderr.decode()
    [statement] = [
        s
        for s in map(orjson.loads, (tmp_path / "shipment-statements.jsonl").read_bytes().splitlines())
        if s["contract_id"] == "swiftparcel-eu"
    ]
    delivery = statement["objectives"][0]
    assert (delivery["objective"], delivery["met"], delivery["total"]) == ("delivery", 11203, 12257)
    assert [(c["reason"], c["count"], c["amount"]) for c in statement["compensation"]] == [
        ("late_delivery", 1054, 8959.0),
        ("damaged", 238, 5950.0),
    ]
    assert statement["credit"] == {"amount": 16909.0, "currency": "EUR"}
    assert "5% + compensation = 16,909.00 EUR" in (REPO / "docs" / "guide" / "items.md").read_text()
