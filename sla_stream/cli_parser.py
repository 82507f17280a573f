"""The ``sla-stream`` command line's interface: every command, its flags and help, and how a
mistyped command or flag is reported (the command's own usage, and the nearest right name)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

_SERVERS = "HOST:PORT[,HOST:PORT...]"
_EPILOG = (
    "Settings (the broker, topics, security, ...) come from SLA_STREAM_* environment variables,"
    " or a YAML file named by --config or $SLA_STREAM_CONFIG."
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose commands report their own mistakes, with a suggestion.

    argparse hands a command's unknown flags up to the top-level parser, which names them under
    the top-level usage; here the command that was given them says so, under its own usage.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._subparsers is not None:
            # A mistyped flag before the command (``sla-stream --verison``) would otherwise be
            # reported as the command missing.
            given = sys.argv[1:] if args is None else list(args)
            unknown = [flag for flag in _leading_flags(given) if not self._knows(flag)]
            if unknown:
                self.error("unrecognized arguments: " + " ".join(self._suggest(flag) for flag in unknown))
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + " ".join(self._suggest(extra) for extra in extras))
        return parsed, extras

    def _knows(self, flag: str) -> bool:
        """Whether ``flag`` is one of this parser's own, or (as argparse allows) a prefix of just one."""
        name = flag.partition("=")[0]
        flags = [option for action in self._actions for option in action.option_strings]
        return name in flags or (name.startswith("--") and len([f for f in flags if f.startswith(name)]) == 1)

    def _suggest(self, extra: str) -> str:
        if not extra.startswith("-"):
            return extra
        flags = [flag for action in self._actions for flag in action.option_strings]
        close = difflib.get_close_matches(extra.partition("=")[0], flags, n=1)
        return f"{extra} (did you mean {close[0]}?)" if close else extra

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # A command name is the choice of a subparsers action, whose choices map names to parsers.
        if isinstance(action.choices, dict) and value not in action.choices:
            names = list(action.choices)
            close = difflib.get_close_matches(str(value), names, n=1)
            what = str(action.metavar or "command").lower()
            hint = f"did you mean {close[0]}?" if close else "choose from " + ", ".join(names)
            raise argparse.ArgumentError(None, f"unknown {what} {value!r} ({hint})")
        super()._check_value(action, value)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _leading_flags(args: Sequence[str]) -> list[str]:
    """The flags given before the first other argument (a command's name) or ``--``."""
    flags: list[str] = []
    for arg in args:
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        flags.append(arg)
    return flags


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("sla-stream")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown (not installed)"
        print(f"sla-stream {found}")
        parser.exit()


def parser() -> Parser:
    """The whole command line; each command sets ``command`` (e.g. ``contracts validate``)."""
    top = Parser(
        prog="sla-stream",
        description="Event-driven SLA breach detection: ticket, call, request and item events in,"
        " breach and near-breach alerts, penalty statements and metrics out.",
        epilog="Run 'sla-stream COMMAND --help' for a command's options. " + _EPILOG,
    )
    top.add_argument("--version", action=_Version, help="print sla-stream's version and exit")
    commands = top.add_subparsers(required=True, metavar="COMMAND", title="commands")
    _worker(commands)
    _replay(commands)
    _report(commands)
    _whatif(commands)
    _simulate(commands)
    _contracts(commands)
    _tail(commands)
    _demo(commands)
    return top


_Commands = Any  # argparse's subparsers action, a private class


def _command(
    commands: _Commands, name: str, summary: str, more: str = "", under: str = "", **kwargs: Any
) -> Parser:
    """A command (of the command ``under``): ``summary`` in the list of commands, with ``more``
    in its own help."""
    command: Parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + (f" {more}" if more else ""),
        **kwargs,
    )
    command.set_defaults(command=f"{under} {name}".strip())
    return command


def _kafka_flags(command: Parser, config: bool = True) -> None:
    if config:
        command.add_argument("--config", metavar="FILE", help="YAML settings file (also $SLA_STREAM_CONFIG)")
    command.add_argument(
        "--bootstrap-servers", metavar=_SERVERS, help="the Kafka brokers (default: the settings')"
    )


def _worker(commands: _Commands) -> None:
    worker = _command(
        commands,
        "worker",
        "run the stream processor (Faust worker) with its metrics endpoint",
        "It reads the input topics, keeps each contract's clocks, and writes alerts, dead letters"
        " and penalty statements to their topics; it stops cleanly on SIGTERM or Ctrl-C, and"
        " reloads the contracts on SIGHUP and when their files change.",
        epilog=_EPILOG,
    )
    _kafka_flags(worker)
    worker.add_argument(
        "--contracts", metavar="DIR", help="directory of contract files (also $SLA_STREAM_CONTRACTS_DIR)"
    )
    worker.add_argument("--web-port", type=int, metavar="PORT", help="port of /metrics, /healthz and /readyz")


def _replay(commands: _Commands) -> None:
    rep = _command(
        commands,
        "replay",
        "run the engine over event files, no Kafka; alerts as JSON lines on stdout",
        "The clock is the events' own time, so a replay gives the alerts the live worker would"
        " have sent for the same events (without emitted_at), byte for byte the same every run.",
    )
    rep.add_argument("--contracts", required=True, metavar="DIR", help="directory of contract files")
    rep.add_argument(
        "--until",
        metavar="TIME",
        help="move the clock to this RFC 3339 time at the end, firing what falls due until then"
        " (default: the clock stops at the last event's time)",
    )
    rep.add_argument(
        "--allowed-lateness",
        default="5m",
        metavar="DURATION",
        help="events further behind the clock are rejected as late (default 5m)",
    )
    rep.add_argument(
        "--deadletter",
        metavar="FILE",
        help="write rejected lines here as dead-letter records (default: count them on stderr)",
    )
    rep.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="one clock per partition, as a worker with this many partitions has (default: one clock)",
    )
    rep.add_argument(
        "--penalties",
        metavar="FILE",
        help="write the penalty statement of every period closed by the end here, as JSON lines",
    )
    rep.add_argument("--stats", action="store_true", help="print events per second to stderr at the end")
    rep.add_argument(
        "events",
        nargs="+",
        type=Path,
        metavar="EVENTS",
        help="JSON-lines event files, applied in the order given",
    )


def _report(commands: _Commands) -> None:
    report = _command(
        commands,
        "report",
        "attainment and credits per contract and period: from a replay, statement files or the topic",
        epilog=_EPILOG,
    )
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events",
        nargs="+",
        type=Path,
        metavar="EVENTS",
        help="replay these event files (needs --contracts)",
    )
    source.add_argument(
        "--statements",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="statement files, as replay --penalties writes them",
    )
    source.add_argument(
        "--from-topic", action="store_true", help="read the statements topic (the settings' broker and name)"
    )
    report.add_argument("--contracts", metavar="DIR", help="directory of contract files (with --events)")
    report.add_argument(
        "--until", metavar="TIME", help="with --events: move the clock to this RFC 3339 time at the end"
    )
    report.add_argument(
        "--allowed-lateness", default="5m", metavar="DURATION", help="with --events (default 5m)"
    )
    _kafka_flags(report)
    report.add_argument("--period", metavar="YYYY-MM", help="only this period")
    report.add_argument("--contract", metavar="ID", help="only this contract")
    report.add_argument("--json", action="store_true", help="print the statements as a JSON array")


def _whatif(commands: _Commands) -> None:
    whatif = _command(
        commands,
        "whatif",
        "what if the contracts had been different: one history measured against two contract sets",
        "Per contract, period and objective: the attainment, the breaches alerted and the credit"
        " under each set, and the change in credit.",
    )
    whatif.add_argument(
        "--contracts", required=True, metavar="DIR", help="directory of the contracts as they are"
    )
    whatif.add_argument(
        "--against", required=True, metavar="DIR", help="directory of the contracts to compare with"
    )
    whatif.add_argument("--until", metavar="TIME", help="move the clock to this RFC 3339 time at the end")
    whatif.add_argument(
        "--allowed-lateness", default="5m", metavar="DURATION", help="as in replay (default 5m)"
    )
    whatif.add_argument("--period", metavar="YYYY-MM", help="only this period")
    whatif.add_argument("--contract", metavar="ID", help="only this contract")
    whatif.add_argument("--json", action="store_true", help="print the comparison as JSON")
    whatif.add_argument(
        "events", nargs="+", type=Path, metavar="EVENTS", help="JSON-lines event files, in order"
    )


def _simulate(commands: _Commands) -> None:
    sim = _command(
        commands,
        "simulate",
        "produce realistic ticket, call, request and item traffic to Kafka, or to a file",
        "Live, events are produced as their time comes, keyed by contract id; with --output they"
        " are written at once, in event time.",
        epilog=_EPILOG,
    )
    sim.add_argument(
        "--contracts",
        metavar="DIR",
        help="directory of contract files (default: the settings' contracts_dir)",
    )
    _kafka_flags(sim)
    sim.add_argument(
        "--rate", type=float, default=2.0, metavar="N", help="new tickets per second (default 2)"
    )
    sim.add_argument(
        "--late-share",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="share of tickets answered late (default 0.2)",
    )
    sim.add_argument(
        "--bad-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="chance that a new ticket comes with one deliberately malformed message (default 0)",
    )
    sim.add_argument(
        "--call-rate",
        type=float,
        default=1.0,
        metavar="N",
        help="calls offered per second (default 1; 0 for none)",
    )
    sim.add_argument(
        "--request-rate",
        type=float,
        default=20.0,
        metavar="N",
        help="requests per second per service (default 20; 0 for none)",
    )
    sim.add_argument(
        "--item-rate",
        type=float,
        default=0.2,
        metavar="N",
        help="new items (parcels) per second, for contracts with an items section (default 0.2; 0 for none)",
    )
    sim.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="random seed, also part of ticket ids (default: 1 for --output, else the time)",
    )
    sim.add_argument(
        "--duration",
        metavar="DURATION",
        help="stop after this much event time, e.g. 10m or 30d (default: run until stopped)",
    )
    sim.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write JSON lines here instead of producing to Kafka (event time, no pacing)",
    )
    sim.add_argument(
        "--start", metavar="TIME", help="RFC 3339 start of event time for --output (default: now)"
    )


def _contracts(commands: _Commands) -> None:
    con = _command(commands, "contracts", "check contract files, or publish them to the contracts topic")
    actions = con.add_subparsers(required=True, metavar="ACTION", title="actions")
    validate = _command(
        actions,
        "validate",
        "check every contract file in a directory",
        "Prints one ok line per contract (with its versions), or one error line per problem and exits 1.",
        under="contracts",
    )
    validate.add_argument("directory", type=Path, metavar="DIR", help="directory of contract files")
    pub = _command(
        actions,
        "publish",
        "put a directory's contract files on the contracts topic (for contracts_from: topic)",
        "Nothing is sent unless every file loads; contracts on the topic but not in DIR are removed.",
        under="contracts",
        epilog=_EPILOG,
    )
    pub.add_argument("directory", type=Path, metavar="DIR", help="directory of contract files")
    _kafka_flags(pub)


def _tail(commands: _Commands) -> None:
    tail = _command(
        commands,
        "tail",
        "print records of a topic as they arrive (default: the alert topic)",
        "One record a line, its value as it is on the topic (JSON), until Ctrl-C.",
        epilog=_EPILOG,
    )
    tail.add_argument("--topic", help="topic to read (default: the settings' alert topic)")
    _kafka_flags(tail)
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the topic's first record, not at its end"
    )
    tail.add_argument(
        "--lines",
        action="store_true",
        help="print each alert as one readable line, as the demo shows it, instead of its JSON",
    )


def _demo(commands: _Commands) -> None:
    demo = _command(
        commands,
        "demo",
        "the whole thing locally: broker, worker, simulated traffic, alerts on screen",
        "A local Kafka broker is started (its jars fetched the first time) unless"
        " $SLA_STREAM_BOOTSTRAP_SERVERS names one; state is kept in var/.",
    )
    demo.add_argument(
        "--minutes",
        type=float,
        default=0,
        metavar="N",
        help="stop after this many minutes (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--rate", type=float, default=2.0, metavar="N", help="new tickets per second (default 2)"
    )
    demo.add_argument(
        "--prometheus",
        action="store_true",
        help="also run a real Prometheus (Debian's package) scraping the worker with the project's rules",
    )
    demo.add_argument(
        "--prometheus-port",
        type=int,
        default=19090,  # local_prometheus.PORT, not imported here: --help stays quick
        metavar="PORT",
        help="the port of that Prometheus on 127.0.0.1 (default 19090)",
    )
