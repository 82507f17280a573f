"""The documentation site: the generated reference pages are what the code gives now, the records
the reference shows are tested example files and what the engine really writes, and the site
builds with ``mkdocs build --strict`` (so a broken link or anchor fails)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from helpers import REPO, ms

from sla_stream import reference_docs
from sla_stream.contracts import load_dir
from sla_stream.contracts.build import default_burn_rates
from sla_stream.engine.alerts import Alert
from sla_stream.engine.time import parse_duration
from sla_stream.metrics import conventions
from sla_stream.replay import ReplayStats, read_lines, replay
from sla_stream.runtime.pipeline import Pipeline
from sla_stream.settings import Settings, load_settings
from sla_stream.wire.alerts import alert_record
from sla_stream.wire.statements import statement_record

REFERENCE = REPO / "docs" / "reference"
#: An example record in a page: the file it copies, then the copy.
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```json\n(.*?)```", re.DOTALL)
RECORD_PAGES = ("events.md", "alerts.md", "dead-letters.md", "statements.md")
HISTORIES = REPO / "tests" / "schemas" / "histories"
EXAMPLES = REPO / "examples"


@pytest.mark.parametrize("name", reference_docs.GENERATED)
def test_generated_page_is_what_the_code_gives_now(name: str) -> None:
    committed = (REFERENCE / name).read_text(encoding="utf-8")
    assert committed == reference_docs.pages()[name], (
        f"docs/reference/{name} differs from what the code gives now: run `make docs-gen`"
    )


def test_the_metrics_page_names_every_metric() -> None:
    page = (REFERENCE / "metrics.md").read_text(encoding="utf-8")
    names = [
        v for k, v in vars(conventions).items() if k.isupper() and isinstance(v, str) and v[:4] == "sla_"
    ]
    assert len(names) > 10
    missing = [n for n in names if f"| `{n}` |" not in page and f"| `{n}_total` |" not in page]
    assert not missing, f"metrics the worker serves but the metrics page does not list: {missing}"


def shown() -> list[tuple[str, str, str]]:
    """(page, file, text) of every example record a reference page shows."""
    return [
        (page.name, found[1], found[2])
        for page in sorted(REFERENCE.glob("*.md"))
        for found in EXAMPLE.finditer(page.read_text(encoding="utf-8"))
    ]


def test_every_record_a_reference_page_shows_is_a_tested_example_file_verbatim() -> None:
    examples = shown()
    assert len(examples) > 20
    for page, file, text in examples:
        path = REPO / file
        assert path.is_file(), f"{page} shows {file}, which does not exist"
        assert text == path.read_text(encoding="utf-8"), (
            f"{page}: the copy of {file} differs from the file: run `make docs-gen`"
        )
    for page in RECORD_PAGES:
        text = (REFERENCE / page).read_text(encoding="utf-8")
        untested = text.count("```json") - len(EXAMPLE.findall(text))
        assert not untested, f"{page}: {untested} JSON blocks are not copies of example files"


def documented(record: str) -> list[dict[str, Any]]:
    """The example records of one kind (``alert``, ``penalty-statement``, ``deadletter``) a page shows."""
    folder = f"tests/schemas/valid/{record}/"
    files = sorted({file for _, file, _ in shown() if file.startswith(folder)})
    assert files, f"no {record} example is shown"
    return [json.loads((REPO / file).read_text(encoding="utf-8")) for file in files]


def replayed(
    contracts: str, files: list[Path], until: str, partitions: int | None = None
) -> tuple[list[Alert], list[dict[str, Any]]]:
    statements: list[dict[str, Any]] = []
    stats = ReplayStats()
    alerts = list(
        replay(
            load_dir(EXAMPLES / contracts),
            read_lines(files),
            ms(until),
            300_000,
            None,
            stats,
            partitions,
            lambda statement: statements.append(statement_record(statement)),
        )
    )
    assert stats.rejected == 0, f"{files}: {stats.rejected} lines rejected"
    return alerts, statements


def histories() -> tuple[list[Alert], list[dict[str, Any]]]:
    """Every alert and statement of the histories the reference pages show, as replay gives them."""
    alerts: list[Alert] = []
    statements: list[dict[str, Any]] = []
    for contracts, files, until, partitions in [
        ("contracts", ["tickets.jsonl"], "2026-11-24T12:00:00+07:00", None),
        ("contracts", ["calls.jsonl"], "2026-11-24T12:00:00+07:00", None),
        ("contracts", ["requests.jsonl"], "2026-11-24T12:00:00+07:00", None),
        # The three inputs of one contract, each with its own clock as in a worker: November, then December.
        ("contracts", ["tickets.jsonl", "calls.jsonl", "requests.jsonl"], "2027-01-01T00:10:00+07:00", 1),
        ("contracts", ["items.jsonl"], "2026-12-01T00:10:00+01:00", None),
        ("versioned", ["../../golden/versioned-renewal/events.jsonl"], "2027-01-01T00:10:00+07:00", None),
    ]:
        found, settled = replayed(contracts, [HISTORIES / f for f in files], until, partitions)
        alerts += found
        statements += settled
    return alerts, statements


def test_every_alert_the_reference_shows_is_what_replay_gives_for_its_history() -> None:
    alerts, _ = histories()
    for example in documented("alert"):
        emitted = example.get("emitted_at")
        found = [
            a
            for a in alerts
            if {**alert_record(a), "emitted_at": emitted} == {**example, "emitted_at": emitted}
        ]
        assert found, f"no history gives the alert {example['alert_id']} the reference shows"
        rendered = alert_record(found[0], None if emitted is None else ms(emitted))
        assert list(rendered.items()) == list(example.items())


def test_every_statement_the_reference_shows_is_what_replay_gives_for_its_history() -> None:
    _, statements = histories()
    for example in documented("penalty-statement"):
        assert any(list(s.items()) == list(example.items()) for s in statements), example["statement_id"]


NOW = ms("2026-11-24T10:10:00+07:00")


def created(event_id: str, at: str, ticket: str, contract: str = "acme-gold", **fields: str) -> bytes:
    """A ``ticket.created`` message as a producer might write it (``json.dumps``' spacing)."""
    record = {"event_id": event_id, "type": "ticket.created", "contract_id": contract, "occurred_at": at}
    return json.dumps({**record, "ticket_id": ticket, **fields}).encode()


#: Messages on (topic, partition, offset, key): the dead letters the reference shows are among what
#: the worker writes for them.
MESSAGES: list[tuple[str, int, int, bytes | None, bytes | None]] = [
    ("sla.tickets", 2, 40, b"acme-gold", created("t9", "2026-11-24T10:00:00+07:00", "T-20", priority="P2")),
    ("sla.tickets", 2, 41, b"acme-gold", created("t10", "2026-11-24T10:01:00+07:00", "T-21")),
    ("sla.tickets", 2, 43, b"acme-gold", created("t12", "2026-11-24T10:02:00+07:00", "T-22", priority="P9")),
    ("sla.tickets", 2, 45, b"acme-gold", created("t14", "2026-11-24T09:50:00+07:00", "T-23", priority="P2")),
    (
        "sla.tickets",
        5,
        7,
        b"acme-silver",
        created("t1", "2026-11-24T10:04:00+07:00", "T-1", contract="acme-silver", priority="P2"),
    ),
    ("sla.tickets", 2, 47, b"acme-gold", b"\xff\xfe"),
    ("sla.tickets", 2, 48, b"acme-gold", None),
]


def test_every_dead_letter_the_reference_shows_is_what_the_worker_writes_for_its_message() -> None:
    pipeline = Pipeline(Settings(), load_dir(EXAMPLES / "contracts"), table={}, clock=lambda: NOW)
    written = [
        orjson.loads(out.value)
        for message in MESSAGES
        for out in pipeline.on_event(*message)
        if out.topic == "sla.deadletter" and out.value is not None
    ]
    for example in documented("deadletter"):
        assert any(list(w.items()) == list(example.items()) for w in written), example["detail"]
        if example["value_encoding"] == "base64":
            assert base64.b64decode(example["value"]) in [m[4] for m in MESSAGES]


def test_the_site_builds_with_strict_checks(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    # --strict counts warnings (a link to a missing page or anchor); --quiet would hide them from it.
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr}"
    assert "WARNING" not in built.stderr, built.stderr
    assert (tmp_path / "site" / "reference" / "events.html").is_file()


def test_every_contract_the_contracts_page_shows_loads(tmp_path: Path) -> None:
    text = (REFERENCE / "contracts.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
    contracts = [b for b in blocks if isinstance(b, dict) and "version" in b]
    bases = {b["id"]: b for b in contracts if b.get("abstract")}
    assert len(contracts) >= 5
    for number, contract in enumerate(contracts):
        folder = tmp_path / str(number)
        folder.mkdir()
        for needed in (contract, bases.get(contract.get("extends", ""))):
            if needed is not None:
                (folder / f"{needed['id']}.yaml").write_text(yaml.safe_dump(needed), encoding="utf-8")
        loaded = load_dir(folder)
        assert contract.get("abstract") or contract["id"] in loaded


def test_the_configuration_page_example_file_loads(tmp_path: Path) -> None:
    text = (REFERENCE / "configuration.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    (tmp_path / "settings.yaml").write_text(example, encoding="utf-8")
    loaded = load_settings(tmp_path / "settings.yaml", environ={})
    assert loaded != Settings()
    assert loaded.topics.tickets == yaml.safe_load(example)["topics"]["tickets"]


def test_the_default_burn_rate_rules_are_the_ones_the_contracts_page_lists() -> None:
    text = (REFERENCE / "contracts.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (page|ticket) \| (\w+) \| (\w+) \| ([\d.]+) \|", text, re.MULTILINE)
    listed = [
        (severity, parse_duration(long), parse_duration(short), float(f)) for severity, long, short, f in rows
    ]
    assert listed == [(r.severity, r.long, r.short, r.factor) for r in default_burn_rates()]
