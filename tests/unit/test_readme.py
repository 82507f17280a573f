"""The README as a newcomer follows it: the worked example's files and output, its commands' flags,
its links, its length; and the contract and alerts of its long version, docs/own-helpdesk.md."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from functools import cache
from pathlib import Path

import orjson
from helpers import REPO

from sla_stream.alert_lines import alert_line

README = (REPO / "README.md").read_text()
SLA_STREAM = Path(sys.executable).parent / "sla-stream"  # the command the README tells users to run
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next heading of that level."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of ``text``: (language, content), in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def worked_example() -> tuple[Path, str, str, list[str], str]:
    """The worked example's contract file (as the README links it), its YAML and events blocks,
    its replay command and its alert block."""
    text = section("A worked example")
    [contract] = re.findall(r"\]\((examples/[^)]+\.yaml)\)", text)
    (yaml_lang, yaml), (events_lang, events), (sh_lang, command), (alerts_lang, alerts) = blocks(text)
    assert (yaml_lang, events_lang, sh_lang, alerts_lang) == ("yaml", "json", "sh", "json")
    return REPO / contract, yaml, events, shlex.split(command), alerts


def test_the_worked_example_contract_is_the_file_in_the_repository() -> None:
    path, yaml, _events, command, _alerts = worked_example()
    assert path.read_text() == yaml
    assert path.parent == REPO / command[command.index("--contracts") + 1]


def test_the_worked_example_events_are_the_file_the_replay_command_reads() -> None:
    _path, _yaml, events, command, _alerts = worked_example()
    assert (REPO / command[-1]).read_text() == events


def test_the_readme_replay_command_prints_exactly_the_readme_alerts() -> None:
    _path, _yaml, _events, command, alerts = worked_example()
    assert command[:2] == ["sla-stream", "replay"]
    ran = subprocess.run([SLA_STREAM, *command[1:]], cwd=REPO, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == alerts


@cache
def flags_of(command: tuple[str, ...]) -> frozenset[str]:
    """The flags ``sla-stream <command> --help`` lists."""
    ran = subprocess.run([SLA_STREAM, *command, "--help"], capture_output=True, text=True, check=True)
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z-]*", ran.stdout))


def readme_commands() -> list[list[str]]:
    """Every ``sla-stream ...`` command the README shows: lines of its code blocks and inline code."""
    lines = [line for _lang, text in blocks(README) for line in text.splitlines()]
    lines += re.findall(r"`(sla-stream [^`]*)`", README)
    commands = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line.startswith("sla-stream ") and "<" not in line:
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_commands_use_only_flags_that_exist() -> None:
    commands = readme_commands()
    assert len(commands) >= 4
    for args in commands:
        words = [a for a in args if not a.startswith("-")]
        command = tuple(words[:2] if words[:1] == ["contracts"] else words[:1])
        used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
        unknown = used - flags_of(command) - {"--help"}
        assert not unknown, f"sla-stream {' '.join(args)}: no such flag {sorted(unknown)}"


def test_the_readme_links_point_at_files_in_the_repository() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert "docs/own-helpdesk.md" in local
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README links to files that are not in the repository: {missing}"


def test_the_readme_stays_short() -> None:
    assert len(README.splitlines()) <= 250, "the README is a page: the rest belongs in docs/"


def test_the_own_helpdesk_contract_gives_the_alerts_the_page_shows(tmp_path: Path) -> None:
    page = (REPO / "docs" / "own-helpdesk.md").read_text()
    languages = {lang: text for lang, text in reversed(blocks(page))}  # the first block of each
    contract, events = languages["yaml"], languages["json"]
    [command] = re.findall(r"`(sla-stream replay [^`]*)`", page)
    shown = page.split("shows live alerts this way):", 1)[1]
    [(_lang, lines)] = blocks(shown)[:1]
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "northwind.yaml").write_text(contract)
    (tmp_path / "events.jsonl").write_text(events)
    args = shlex.split(command)[1:]
    args[args.index("--contracts") + 1] = str(tmp_path / "contracts")
    args[-1] = str(tmp_path / "events.jsonl")
    ran = subprocess.run([SLA_STREAM, *args], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert [alert_line(orjson.loads(line)) for line in ran.stdout.splitlines()] == lines.splitlines()


def test_the_own_helpdesk_way_to_make_sample_events_of_now_gives_events_a_live_worker_takes(
    tmp_path: Path,
) -> None:
    page = (REPO / "docs" / "own-helpdesk.md").read_text()
    languages = {lang: text for lang, text in reversed(blocks(page))}
    contract, events = languages["yaml"], languages["json"]
    [(_lang, shown)] = blocks(page.split("**Events sent live must be of now.**", 1)[1])[:1]
    rewrite = shown.partition(" \\\n  | ")[0]  # the sed command, without the kcat it feeds
    assert rewrite.startswith("sed ") and rewrite.endswith(" nw.jsonl")
    (tmp_path / "nw.jsonl").write_text(events)
    began = time.time()
    ran = subprocess.run(["bash", "-c", rewrite], capture_output=True, text=True, cwd=tmp_path, check=True)
    made = [orjson.loads(line) for line in ran.stdout.splitlines()]
    given = [orjson.loads(line) for line in events.splitlines()]
    assert len(made) == len(given)
    for new, old in zip(made, given, strict=True):
        # Of now, within what a live worker accepts, and with ids never sent before.
        assert abs(datetime.fromisoformat(new["occurred_at"]).timestamp() - began) < 60
        assert new["event_id"] != old["event_id"] and new["ticket_id"] != old["ticket_id"]
        assert {k: v for k, v in new.items() if k not in ("event_id", "ticket_id", "occurred_at")} == {
            k: v for k, v in old.items() if k not in ("event_id", "ticket_id", "occurred_at")
        }
    # The contract takes them as they are: nothing rejected.
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "northwind.yaml").write_text(contract)
    (tmp_path / "now.jsonl").write_text(ran.stdout)
    replayed = subprocess.run(
        [SLA_STREAM, "replay", "--contracts", "contracts", "--stats", "now.jsonl"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert " 0 rejected, 0 duplicates" in replayed.stderr, replayed.stderr
