"""The command line as a newcomer meets it: no broker, a mistyped flag or command, ``--version``,
and a replay whose clocks are still open at its last event."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from helpers import REPO

from sla_stream.local_kafka import free_port


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sla_stream.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["tail"],
        ["tail", "--lines", "--from-beginning"],
        ["simulate", "--contracts", "examples/contracts"],
    ],
    ids=" ".join,
)
def test_a_command_that_cannot_reach_kafka_says_so_in_one_line(command):
    closed = f"127.0.0.1:{free_port()}"
    result = cli(*command, env={"SLA_STREAM_BOOTSTRAP_SERVERS": closed})
    assert result.returncode == 2
    # One line, and nothing else: no traceback, no "Unclosed AIOKafkaConsumer" warning.
    assert result.stderr.startswith(f"sla-stream: error: cannot reach Kafka at {closed}: ")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_an_unknown_flag_gets_the_commands_usage_and_the_nearest_flag():
    result = cli("replay", "--contracts", "examples/contracts", "--untill", "2026-11-25T12:00:00Z", "e.jsonl")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: sla-stream replay ")
    assert result.stderr.splitlines()[-1] == (
        "sla-stream replay: error: unrecognized arguments: --untill (did you mean --until?)"
    )


def test_an_unknown_flag_written_with_its_value_gets_the_nearest_flag_too():
    result = cli("replay", "--contracts", "examples/contracts", "--untill=2026-11-25T12:00:00Z", "e.jsonl")
    assert result.stderr.splitlines()[-1] == (
        "sla-stream replay: error: unrecognized arguments: --untill=2026-11-25T12:00:00Z"
        " (did you mean --until?)"
    )


def test_an_unknown_flag_of_a_nested_command_gets_that_commands_usage():
    result = cli("contracts", "publish", "--bootstrap-severs=127.0.0.1:1", "examples/contracts")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: sla-stream contracts publish ")
    assert result.stderr.splitlines()[-1] == (
        "sla-stream contracts publish: error: unrecognized arguments: --bootstrap-severs=127.0.0.1:1"
        " (did you mean --bootstrap-servers?)"
    )


@pytest.mark.parametrize("args", [["--verison"], ["--verison", "replay", "--help"]], ids=" ".join)
def test_a_mistyped_flag_before_the_command_is_named_with_the_nearest_flag(args):
    # Not "the following arguments are required: COMMAND".
    result = cli(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "usage: sla-stream [-h] [--version] COMMAND ...",
        "sla-stream: error: unrecognized arguments: --verison (did you mean --version?)",
    ]


def test_an_extra_argument_with_no_near_flag_is_named_as_it_is():
    result = cli("contracts", "validate", "examples/contracts", "more")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: sla-stream contracts validate ")
    assert (
        result.stderr.splitlines()[-1] == "sla-stream contracts validate: error: unrecognized arguments: more"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["replya"], "sla-stream: error: unknown command 'replya' (did you mean replay?)"),
        (
            ["contracts", "validat", "x"],
            "sla-stream contracts: error: unknown action 'validat' (did you mean validate?)",
        ),
        (
            ["frobnicate"],
            "sla-stream: error: unknown command 'frobnicate' (choose from worker, replay, report, whatif,"
            " simulate, contracts, tail, demo)",
        ),
    ],
)
def test_an_unknown_command_gets_the_nearest_command(args, said):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == said


def test_version_prints_the_installed_version():
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"sla-stream {importlib.metadata.version('sla-stream')}\n"


#: The worked example's contract (acme-jakarta): business hours 08:00-12:00 and 13:00-17:00 in
#: Jakarta, first response within 30m (P1) or 2h (P2), a near-breach at 75%.
WORKED = REPO / "examples" / "worked-example" / "contracts"


def _event(n: int, type_: str, at: str, ticket: str, **fields: str) -> dict[str, str]:
    return {
        "event_id": f"e{n}",
        "type": type_,
        "contract_id": "acme-jakarta",
        "occurred_at": at,
        "ticket_id": ticket,
        **fields,
    }


def _replay_files(tmp_path: Path, *events: dict[str, str]) -> tuple[str, str]:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(WORKED), str(path)


def test_replay_says_on_stderr_that_the_clock_stopped_while_clocks_are_still_open(tmp_path: Path):
    contracts, events = _replay_files(
        tmp_path,
        _event(1, "ticket.created", "2026-11-24T16:00:00+07:00", "T-17", priority="P2"),
        _event(2, "ticket.created", "2026-11-24T16:10:00+07:00", "T-18", priority="P2"),
    )
    result = cli("replay", "--contracts", contracts, events)
    assert result.returncode == 0
    assert result.stdout == ""
    # T-17's near-breach at 08:30 on Wednesday (its 75% of two open hours) comes first.
    assert result.stderr == (
        "sla-stream replay: the clock stopped at the last event, 2026-11-24T16:10:00+07:00; 4 clocks are"
        " still open (the next alert is due once the clock passes 2026-11-25T08:30:00+07:00):"
        " pass --until TIME to see what happens after it\n"
    )
    later = cli("replay", "--contracts", contracts, "--until", "2026-11-25T12:00:00+07:00", events)
    assert later.stderr == ""
    kinds = [orjson.loads(line)["kind"] for line in later.stdout.splitlines()]
    assert kinds == ["near_breach", "near_breach", "breach", "breach"]


def test_the_hint_names_the_next_alert_after_the_clock_not_a_deadline_behind_it(tmp_path: Path):
    contracts, events = _replay_files(
        tmp_path,
        # T-1's half hour is used up at closing, 17:00: its breach is observed at 08:00 on Wednesday.
        _event(1, "ticket.created", "2026-11-24T16:30:00+07:00", "T-1", priority="P1"),
        # Created after hours: its clocks start at 08:00 on Wednesday.
        _event(2, "ticket.created", "2026-11-24T19:00:00+07:00", "T-2", priority="P1"),
    )
    result = cli("replay", "--contracts", contracts, events)
    assert result.stderr == (
        "sla-stream replay: the clock stopped at the last event, 2026-11-24T19:00:00+07:00; 4 clocks are"
        " still open (the next alert is due once the clock passes 2026-11-25T08:00:00+07:00):"
        " pass --until TIME to see what happens after it\n"
    )
    # And it is the next alert: one past that time fires T-1's breach, observed then.
    later = cli("replay", "--contracts", contracts, "--until", "2026-11-25T08:00:00.001+07:00", events)
    fired = [orjson.loads(line) for line in later.stdout.splitlines()]
    assert [(a["kind"], a["subject"]["id"], a["observed_at"]) for a in fired][-1:] == [
        ("breach", "T-1", "2026-11-25T08:00:00+07:00")
    ]
    assert [a["observed_at"] for a in fired] == ["2026-11-24T16:52:30+07:00", "2026-11-25T08:00:00+07:00"]


def test_replay_gives_the_hint_only_when_something_is_left_to_fall_due(tmp_path: Path):
    contracts, events = _replay_files(
        tmp_path,
        _event(1, "ticket.created", "2026-11-24T16:00:00+07:00", "T-17", priority="P2"),
        _event(2, "ticket.agent_replied", "2026-11-24T16:30:00+07:00", "T-17"),
        _event(3, "ticket.status_changed", "2026-11-24T16:40:00+07:00", "T-17", status="solved"),
        _event(4, "ticket.created", "2026-11-24T16:50:00+07:00", "T-18", priority="P2"),
    )
    result = cli("replay", "--contracts", contracts, events)
    assert result.stderr.startswith("sla-stream replay: the clock stopped at the last event")
    assert "2 clocks are still open" in result.stderr
    # Once T-18 is solved too, nothing is left to fall due: no hint.
    with Path(events).open("ab") as more:
        solved = _event(5, "ticket.status_changed", "2026-11-24T16:55:00+07:00", "T-18", status="solved")
        more.write(orjson.dumps(solved) + b"\n")
    result = cli("replay", "--contracts", contracts, events)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_hint_leaves_stdout_exactly_the_alerts(tmp_path: Path):
    contracts, events = _replay_files(
        tmp_path,
        _event(1, "ticket.created", "2026-11-24T16:00:00+07:00", "T-17", priority="P2"),
        # T-17's first response breaches at 09:00 before this event; its resolution is still open
        _event(2, "ticket.created", "2026-11-25T10:00:00+07:00", "T-18", priority="P1"),
    )
    replay = [sys.executable, "-m", "sla_stream.cli", "replay", "--contracts", contracts]
    hinted = subprocess.run([*replay, events], capture_output=True, check=False)
    # The same end given as --until: no hint, and the same bytes on stdout.
    until = ["--until", "2026-11-25T10:00:00+07:00"]
    same = subprocess.run([*replay, *until, events], capture_output=True, check=False)
    assert hinted.stderr.startswith(b"sla-stream replay: the clock stopped at the last event")
    assert same.stderr == b""
    assert hinted.stdout == same.stdout
    assert [orjson.loads(line)["kind"] for line in hinted.stdout.splitlines()] == ["near_breach", "breach"]


def test_a_worker_run_where_there_is_no_var_directory_creates_its_data_directory(tmp_path: Path):
    # As the own-helpdesk page runs it: from a directory of one's own, with no var/ in it yet.
    closed = f"127.0.0.1:{free_port()}"
    env = {"SLA_STREAM_BOOTSTRAP_SERVERS": closed, "SLA_STREAM_WEB_PORT": str(free_port())}
    env.pop("SLA_STREAM_DATA_DIR", None)
    result = cli("worker", "--contracts", str(REPO / "examples" / "contracts"), env=env, cwd=tmp_path)
    assert (tmp_path / "var" / "worker").is_dir()
    # It stops for want of a broker, in one line.
    assert result.returncode == 2
    assert result.stderr.startswith(f"sla-stream: error: cannot reach Kafka at {closed}: ")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_worker_data_directory_that_cannot_be_created_is_one_line(tmp_path: Path):
    (tmp_path / "var").write_text("a file where the directory would go")
    result = cli(
        "worker",
        "--contracts",
        str(REPO / "examples" / "contracts"),
        env={"SLA_STREAM_DATA_DIR": "var/worker"},
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "sla-stream: error: cannot create the worker's data directory var/worker (a file is in the way):"
        " set SLA_STREAM_DATA_DIR to a directory it can write\n"
    )


def _day(tmp_path: Path) -> Path:
    """A small event file, as simulate writes it."""
    events = tmp_path / "day.jsonl"
    made = cli("simulate", "--contracts", "examples/contracts", "--duration", "10m", "--output", str(events))
    assert made.returncode == 0, made.stderr
    return events


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", "--contracts", "examples/contracts", "--duration", "10m", "--output", "{out}"],
        ["replay", "--contracts", "examples/contracts", "--penalties", "{out}", "{events}"],
        ["replay", "--contracts", "examples/contracts", "--deadletter", "{out}", "{events}"],
    ],
    ids=["simulate --output", "replay --penalties", "replay --deadletter"],
)
def test_an_output_file_in_a_directory_not_there_yet_gets_its_directory(tmp_path: Path, command):
    # `make clean` removes var/, and `--output var/days.jsonl` follows.
    events = _day(tmp_path)
    out = tmp_path / "var" / "more" / "out.jsonl"
    result = cli(*(arg.format(out=out, events=events) for arg in command))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert out.is_file()
    if "--deadletter" in command:  # the simulator's default traffic has no bad messages
        assert out.read_bytes() == b""


@pytest.mark.parametrize("flag", ["--output", "--penalties", "--deadletter"])
def test_an_output_file_whose_directory_cannot_be_made_is_one_line_naming_it(tmp_path: Path, flag):
    events = _day(tmp_path)
    (tmp_path / "var").write_text("a file where the directory would go")
    out = tmp_path / "var" / "out.jsonl"
    if flag == "--output":
        result = cli("simulate", "--contracts", "examples/contracts", "--duration", "10m", flag, str(out))
    else:
        result = cli("replay", "--contracts", "examples/contracts", flag, str(out), str(events))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"sla-stream: error: {flag} {out}: cannot create its directory {out.parent} (a file is in the way)\n"
    )
