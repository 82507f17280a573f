"""What each ``sla-stream`` command does (worker, replay, report, whatif, simulate, contracts,
tail, demo), and how a user's mistake ends: one line, exit 2."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sla_stream.cli_parser import parser
from sla_stream.contracts import ContractError, load_dir
from sla_stream.engine.model import Contract
from sla_stream.engine.time import format_ts, parse_duration, to_ms
from sla_stream.runtime.errors import TopicError
from sla_stream.runtime.stopping import hold_sigterm
from sla_stream.settings import Settings, SettingsError, load_settings


class UserError(Exception):
    """A mistake the user can fix: reported as one line, no traceback."""


_T = TypeVar("_T")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except (UserError, SettingsError, TopicError) as exc:
        print(f"sla-stream: error: {exc}", file=sys.stderr)
        return 2
    except ContractError as exc:
        for line in exc.errors:
            print(f"sla-stream: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _settings(args: argparse.Namespace, **flags: object) -> Settings:
    """The settings, with the command's ``--config`` and ``--bootstrap-servers`` and the other
    settings its flags give (``flags``: setting name -> the flag's value; those not given are
    ``None`` and leave the setting as it is)."""
    given = {"bootstrap_servers": args.bootstrap_servers, **flags}
    return load_settings(args.config, overrides={name: v for name, v in given.items() if v})


def _create(path: Path, flag: str) -> BinaryIO:
    """``path`` opened for writing, its directories created first (``make clean`` removes var/);
    where either fails, one line naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot create its directory {path.parent} ({_why(exc)})") from None
    try:
        return path.open("wb")
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write it ({_why(exc)})") from None


def _why(exc: OSError) -> str:
    """Why a directory could not be made, as a user would say it."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return "a file is in the way"  # mkdir's own words, "File exists", say the opposite
    return exc.strerror or str(exc)


def _contracts(directory: str | Path) -> dict[str, Contract]:
    return load_dir(directory)


def _instant(text: str, flag: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{flag}: expected an RFC 3339 time like 2026-11-24T09:00:00+07:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise UserError(f"{flag}: {text!r} has no UTC offset; add one, e.g. +00:00")
    return to_ms(moment)


def _duration(text: str, flag: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserError(f"{flag}: {exc}") from None


def _worker(args: argparse.Namespace) -> int:
    # Until the worker's own handlers are in place, a SIGTERM waits for them (a graceful stop),
    # and a SIGHUP (reload the contracts) is ignored: the contracts are about to be read anyway.
    hold_sigterm()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = _settings(args, contracts_dir=args.contracts, web_port=args.web_port)
    # Faust creates its data directory, but not the directories above it (var/, for a worker run
    # where there is none).
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the worker's data directory {settings.data_dir} ({_why(exc)}):"
            " set SLA_STREAM_DATA_DIR to a directory it can write"
        ) from None
    if settings.contracts_from == "topic":
        settings = _contracts_from_topic(settings)
    from sla_stream.runtime.reload import fingerprint

    loaded = fingerprint(Path(settings.contracts_dir))
    contracts = _contracts(settings.contracts_dir)
    from sla_stream.runtime.worker import run_worker

    return run_worker(settings, contracts, loaded)


def _replay(args: argparse.Namespace) -> int:
    from sla_stream.engine.statements import Statement
    from sla_stream.replay import ReplayStats, encode_replay_alert, read_lines, replay, still_open
    from sla_stream.wire.statements import encode_statement

    contracts = _contracts(args.contracts)
    until = _instant(args.until, "--until") if args.until else None
    lateness = _duration(args.allowed_lateness, "--allowed-lateness")
    for path in args.events:
        if not path.is_file():
            raise UserError(f"{path}: no such event file")
    if args.partitions is not None and args.partitions < 1:
        raise UserError(f"--partitions: {args.partitions} is not a partition count (1 or more)")
    stats = ReplayStats()
    out = sys.stdout.buffer
    started = time.perf_counter()
    with (
        _create(Path(args.deadletter), "--deadletter") if args.deadletter else _Null() as rejected,
        _create(Path(args.penalties), "--penalties") if args.penalties else _Null() as penalties,
    ):

        def settle(statement: Statement) -> None:
            assert penalties is not None  # passed only with --penalties
            penalties.write(encode_statement(statement) + b"\n")

        for alert in replay(
            contracts,
            read_lines(args.events),
            until,
            lateness,
            rejected,
            stats,
            args.partitions,
            settle if penalties is not None else None,
        ):
            out.write(encode_replay_alert(alert) + b"\n")
    out.flush()
    spent = time.perf_counter() - started
    if stats.rejected and not args.deadletter:
        print(
            f"sla-stream: {stats.rejected} event lines rejected (keep them with --deadletter FILE)",
            file=sys.stderr,
        )
    if until is None and (open_ := still_open(stats)) is not None:
        # On stderr: stdout is exactly the alerts, for pipes and golden files.
        last, due = format_ts(stats.last or 0, open_.zone), format_ts(open_.next_due, open_.zone)
        clocks = f"{open_.clocks} clock is" if open_.clocks == 1 else f"{open_.clocks} clocks are"
        print(
            f"sla-stream replay: the clock stopped at the last event, {last}; {clocks} still open"
            f" (the next alert is due once the clock passes {due}):"
            " pass --until TIME to see what happens after it",
            file=sys.stderr,
        )
    if args.stats:
        rate = stats.events / spent if spent else 0.0
        print(
            f"sla-stream: replayed {stats.events} events in {spent:.2f}s ({rate:,.0f} events/s),"
            f" {stats.alerts} alerts, {stats.rejected} rejected, {stats.duplicates} duplicates",
            file=sys.stderr,
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from sla_stream import report

    _check_period(args.period)
    try:
        if args.events:
            found = _replayed_statements(args)
        elif args.statements:
            found = report.from_files(args.statements)
        else:
            settings = _settings(args)
            found = _kafka(settings, report.from_topic(settings, settings.topics.penalties))
    except report.ReportError as exc:
        raise UserError(str(exc)) from None
    chosen = report.select(found, args.period, args.contract)
    sys.stdout.buffer.write(report.as_json(chosen) if args.json else report.table(chosen).encode())
    return 0


def _contracts_from_topic(settings: Settings) -> Settings:
    """``settings`` with the contracts the topic holds, written to a directory of the worker's."""
    from sla_stream.runtime.contract_topic import ensure_contract_topic, materialize, read_contracts

    async def read() -> dict[str, bytes]:
        await ensure_contract_topic(settings)
        return await read_contracts(settings)

    files = _kafka(settings, read())
    if not files:
        raise UserError(
            f"contracts_from is topic, but {settings.topics.contracts} holds no contracts"
            " (publish them with: sla-stream contracts publish DIR)"
        )
    directory = Path(settings.data_dir) / "contracts-from-topic"
    materialize(files, directory)
    return replace(settings, contracts_dir=str(directory))


def _kafka(settings: Settings, work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work``; Kafka failing on the way is one line for the user. (asyncio and Kafka's
    client are loaded here, not at the top: commands without Kafka, replay above all, would
    carry about 7 MiB of them for nothing.)"""
    import asyncio

    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(work)
    except KafkaError as exc:
        raise UserError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from None


def _publish(args: argparse.Namespace) -> int:
    from sla_stream.runtime.contract_topic import contract_files, publish

    settings = _settings(args)
    files = contract_files(args.directory)  # nothing is sent unless every file loads
    published, removed = _kafka(settings, publish(settings, files))
    print(f"published {published} contract files to {settings.topics.contracts}; removed {removed}")
    return 0


def _whatif(args: argparse.Namespace) -> int:
    from sla_stream import whatif
    from sla_stream.replay import read_lines

    _check_period(args.period)
    for path in args.events:
        if not path.is_file():
            raise UserError(f"{path}: no such event file")
    base, other = _contracts(args.contracts), _contracts(args.against)
    until = _instant(args.until, "--until") if args.until else None
    lateness = _duration(args.allowed_lateness, "--allowed-lateness")
    rows = whatif.compare(
        whatif.measure(base, read_lines(args.events), until, lateness),
        whatif.measure(other, read_lines(args.events), until, lateness),
    )
    rows = [
        r
        for r in rows
        if (args.period is None or r["period"] == args.period)
        and (args.contract is None or r["contract_id"] == args.contract)
    ]
    names = (Path(args.contracts).name or args.contracts, Path(args.against).name or args.against)
    if names[0] == names[1]:
        names = (args.contracts, args.against)
    out = whatif.as_json(rows, names) if args.json else whatif.table(rows, names).encode()
    sys.stdout.buffer.write(out)
    return 0


def _check_period(period: str | None) -> None:
    if period is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        raise UserError(f"--period: expected a month like 2026-11, got {period!r}")


def _replayed_statements(args: argparse.Namespace) -> list[dict[str, Any]]:
    from sla_stream.replay import read_lines, replay
    from sla_stream.wire.statements import statement_record

    if not args.contracts:
        raise UserError("--events: needs --contracts DIR to replay them against")
    for path in args.events:
        if not path.is_file():
            raise UserError(f"{path}: no such event file")
    contracts = _contracts(args.contracts)
    until = _instant(args.until, "--until") if args.until else None
    lateness = _duration(args.allowed_lateness, "--allowed-lateness")
    found: list[dict[str, Any]] = []
    for _ in replay(
        contracts,
        read_lines(args.events),
        until,
        lateness,
        on_statement=lambda statement: found.append(statement_record(statement)),
    ):
        pass
    return found


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _simulate(args: argparse.Namespace) -> int:
    from sla_stream.simulate import Traffic

    settings = _settings(args)
    contracts = _contracts(args.contracts or settings.contracts_dir)
    seed = args.seed if args.seed is not None else (1 if args.output else int(time.time()) % 100_000)
    traffic = Traffic(
        rate=args.rate,
        late_share=args.late_share,
        bad_share=args.bad_share,
        seed=seed,
        call_rate=args.call_rate,
        request_rate=args.request_rate,
        item_rate=args.item_rate,
    )
    duration = _duration(args.duration, "--duration") if args.duration else None
    if args.output:
        from sla_stream.simulate_io import write_file

        start = _instant(args.start, "--start") if args.start else int(time.time() * 1000)
        with _create(args.output, "--output") as out:
            count = write_file(out, contracts, traffic, start, duration)
        print(f"sla-stream: wrote {count} events to {args.output}", file=sys.stderr)
        return 0
    from sla_stream.simulate_io import produce_live

    _kafka(settings, produce_live(settings, contracts, traffic, duration))
    return 0


def _validate(args: argparse.Namespace) -> int:
    contracts = _contracts(args.directory)
    for contract_id in sorted(contracts):
        contract = contracts[contract_id]
        later = ", ".join(
            f"{v.version} from {format_ts(v.effective_from, contract.zone)}"
            for v in contract.versions
            if v.effective_from is not None
        )
        print(f"ok {contract_id}" + (f" (versions: {contract.version}, {later})" if later else ""))
    return 0


def _tail(args: argparse.Namespace) -> int:
    from sla_stream.simulate_io import tail

    settings = _settings(args)
    _kafka(settings, tail(settings, args.topic or settings.topics.alerts, args.from_beginning, args.lines))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sla_stream.demo import run_demo

    return run_demo(
        minutes=args.minutes, rate=args.rate, prometheus=args.prometheus, prometheus_port=args.prometheus_port
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "worker": _worker,
    "replay": _replay,
    "report": _report,
    "whatif": _whatif,
    "simulate": _simulate,
    "contracts validate": _validate,
    "contracts publish": _publish,
    "tail": _tail,
    "demo": _demo,
}


if __name__ == "__main__":
    raise SystemExit(main())
