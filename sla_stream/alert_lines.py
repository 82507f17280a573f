"""Alert records as one line for people: what is measured against its target, for every alert kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sla_stream.engine.time import format_duration

_COLOURS = {"breach": "\033[31m", "near_breach": "\033[33m", "recovered": "\033[32m", "retracted": "\033[36m"}
_RESET = "\033[0m"
#: Details the line says in its own words; any other (an item's target field) is shown as it is.
_MEASURED = frozenset(
    {
        "fraction", "retracts", "priority", "cycle", "contract_version", "long_window", "short_window",
        "factor", "burn_rate_long", "burn_rate_short", "target", "value", "interval_seconds", "answered",
        "answered_within", "abandoned", "short_abandoned", "waiting_missed", "window", "attained", "good",
        "total", "error_budget_remaining",
    }
)  # fmt: skip


def alert_line(record: Mapping[str, Any], colour: bool = False) -> str:
    """One alert record (as on the alert topic, or from replay) as a line, e.g.

    ``BREACH       acme-gold service_level queue support: service level 72% < 80% in
    10:00–10:30 (...), observed ...``; ``colour`` puts the kind in its terminal colour.
    """
    kind = str(record["kind"])
    subject = record["subject"]
    details: Mapping[str, Any] = record.get("details") or {}
    if subject["kind"] == "queue":
        measure = _queue(record, details)
    elif subject["kind"] == "service":
        measure = _burn(kind, details) if "factor" in details else _attainment(record, details)
    else:  # a ticket's clock, or an item's (its kind is the contract's, e.g. shipment)
        measure = _clock(record, details)
    label = f"{kind.upper():12}"
    if colour and kind in _COLOURS:
        label = f"{_COLOURS[kind]}{label}{_RESET}"
    observed = record["observed_at"]
    clock = subject["kind"] not in ("queue", "service")
    # A clock's breach is observed at its deadline, which the line says already.
    when = "" if clock and observed == record.get("deadline") else f", observed {observed}"
    return (
        f"{label} {record['contract_id']} {record['objective']} {subject['kind']} {subject['id']}"
        f"{_extras(details)}: {measure}{when}"
    )


def _extras(details: Mapping[str, Any]) -> str:
    """What tells the subject apart: a ticket's priority and reply cycle, an item's target field
    (e.g. ``service_class express``), the contract version."""
    said = []
    if "priority" in details:
        said.append(str(details["priority"]))
    if "cycle" in details:
        said.append(f"reply {details['cycle']}")
    said += [f"{name} {value}" for name, value in details.items() if name not in _MEASURED]
    if "contract_version" in details:
        said.append(f"version {details['contract_version']}")
    return f" ({', '.join(said)})" if said else ""


def _clock(record: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """A ticket or item clock: its target, the open time elapsed, its deadline."""
    target, elapsed = record["target_seconds"], record["elapsed_seconds"]
    used = f" ({details['fraction']:.0%})" if "fraction" in details else ""
    deadline = f", deadline {record['deadline']}" if record.get("deadline") else ""
    said = f"target {_human(target)}, elapsed {_human(elapsed)}{used}{deadline}"
    return f"retracts {details['retracts']}; {said}" if "retracts" in details else said


def _queue(record: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """A call queue's interval: the measure against its target, and the calls behind it."""
    objective, kind = record["objective"], record["kind"]
    value, target = float(details["value"]), float(details["target"])
    answered, abandoned = int(details.get("answered", 0)), int(details.get("abandoned", 0))
    short = int(details.get("short_abandoned", 0))
    if objective == "service_level":
        missed = int(details.get("waiting_missed", 0))
        counted = answered + abandoned - short + missed
        calls = f"{details.get('answered_within', 0)} of {counted} calls answered in time"
        calls += f", {missed} still waiting past it" if missed else ""
        said = _versus("service level", value, target, higher_is_better=True, render=_percent)
    elif objective == "abandon_rate":
        calls = f"{abandoned - short} of {answered + abandoned - short} calls abandoned"
        said = _versus("abandon rate", value, target, higher_is_better=False, render=_percent)
    else:
        calls = f"{answered} call answered" if answered == 1 else f"{answered} calls answered"
        said = _versus("average speed of answer", value, target, higher_is_better=False, render=_seconds)
    so_far = " so far" if kind == "near_breach" else ""
    return f"{said} in {_interval(record['subject'].get('interval_start'), details)}{so_far} ({calls})"


def _burn(kind: str, details: Mapping[str, Any]) -> str:
    """A burn-rate rule: the error budget's burn rate over its long and short window."""
    factor = float(details["factor"])
    long, short = float(details["burn_rate_long"]), float(details["burn_rate_short"])
    rates = (
        f"burn rate {_times(long)} over {details['long_window']}"
        f" and {_times(short)} over {details['short_window']}"
    )
    target = f" (target {_percent(float(details['target']))})" if "target" in details else ""
    if kind == "recovered":
        return f"{rates}, no longer both above the threshold {_times(factor)}{target}"
    return f"{rates}, above the threshold {_times(factor)}{target}"


def _attainment(record: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """A request objective over its window: attained against target, and the error budget left."""
    objective = str(record["objective"])
    value, target = float(details["attained"]), float(details["target"])
    window = details.get("window", "")
    over = "the calendar month so far" if window == "calendar_month" else window
    said = _versus(objective.replace("_", " "), value, target, higher_is_better=True, render=_percent)
    good = "fast enough" if objective == "latency" else "good"
    counts = f"{details.get('good', 0)} of {details.get('total', 0)} requests {good}"
    budget = details.get("error_budget_remaining")
    if budget is not None:
        left = float(budget)
        spent = f"overspent by {_percent(-left)}" if left < 0 else f"{_percent(left)} left"
        counts += f"; error budget {spent}"
    return f"{said} over {over} ({counts})"


def _versus(
    name: str, value: float, target: float, higher_is_better: bool, render: Callable[[float, int], str]
) -> str:
    """``name value < target``: the comparison that makes it good or bad, the value shown with
    the digits the target needs, and more when it would look like the target (79.7% < 80%) or
    like a perfect 100% (99.95% > 99.9%)."""
    if value == target:
        sign = "="
    elif higher_is_better:
        sign = ">" if value > target else "<"
    else:
        sign = "<" if value < target else ">"
    digits = _digits(target * 100 if render is _percent else target)
    shown = digits
    while shown < 4 and _alike(value, target, shown, render):
        shown += 1
    return f"{name} {render(value, shown)} {sign} {render(target, digits)}"


def _alike(value: float, target: float, digits: int, render: Callable[[float, int], str]) -> bool:
    """Whether ``value`` would read as the target, or as a perfect 100% (or 0%) it is not."""
    shown = render(value, digits)
    if value != target and shown == render(target, digits):
        return True
    return (
        render is _percent and value not in (0.0, 1.0) and shown in (render(0.0, digits), render(1.0, digits))
    )


def _digits(number: float) -> int:
    """The decimals ``number`` needs, up to 2: 80 none, 99.9 one."""
    return next(d for d in range(3) if d == 2 or round(number, d) == round(number, 6))


def _percent(ratio: float, digits: int | None = None) -> str:
    """``0.8`` as ``80%``; ``0.999`` as ``99.9%``."""
    shown = _digits(ratio * 100) if digits is None else digits
    return f"{ratio * 100:.{shown}f}%"


def _seconds(value: float, digits: int) -> str:
    return f"{value:.{digits}f}s"


def _times(rate: float) -> str:
    """A burn rate to three significant digits (``15.2×``, ``2×``), whole from 100 (``1000×``,
    all requests failing on a 99.9% target)."""
    return f"{rate:.3g}×" if rate < 100 else f"{rate:.0f}×"


def _human(seconds: float) -> str:
    """A duration in seconds for people: ``1h30m``, ``2d``, ``45s``; below a minute to a tenth
    of a second (``28.4s``), above it to the second."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    return format_duration(round(seconds) * 1000)


def _interval(start: str | None, details: Mapping[str, Any]) -> str:
    """``10:00–10:30`` in the contract's time; with the date when it spans days."""
    length = int(details.get("interval_seconds", 0))
    if not start:
        return _human(length)
    begin = datetime.fromisoformat(start)
    end = datetime.fromtimestamp(begin.timestamp() + length, begin.tzinfo)
    if length >= 86_400:
        return f"{begin.date().isoformat()}–{end.date().isoformat()}"
    shown = "%H:%M:%S" if begin.second or end.second else "%H:%M"
    return f"{begin.strftime(shown)}–{end.strftime(shown)}"
