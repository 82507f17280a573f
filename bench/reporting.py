"""What the benchmark's reports share (``run.py``'s bench.md, ``replay_mixes.py``'s replay.md):
the progress line, the machine measured on, table rows, and each target judged and shown."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def judged(name: str, what: str, value: float, op: str, target: float) -> dict[str, Any]:
    """One target: what was measured, what is wanted (``op`` is ``>=``, ``<`` or ``<=``), whether
    it is met, measured ÷ wanted."""
    return {
        "name": name,
        "what": what,
        "value": round(value, 3),
        "target": target,
        "op": op,
        "met": {">=": value >= target, "<": value < target, "<=": value <= target}[op],
        "ratio_to_target": round(value / target, 3),
    }


def figure(value: float) -> str:
    """A measured or wanted figure as the report prints it: ratios to three places, rates and
    sizes with thousands separators."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}"


def target_table(targets: list[dict[str, Any]]) -> list[str]:
    """The targets' table (markdown lines): measured, wanted, met, measured ÷ wanted."""
    lines = [
        row("target", "measured", "wanted", "met", "measured ÷ wanted"),
        row("---", "---:", "---:", ":---:", "---:"),
    ]
    for t in targets:
        if "not_measured" in t:
            lines.append(row(t["what"], "not measured", t["not_measured"], "**no**", ""))
            continue
        met = "yes" if t["met"] else "**no**"
        wanted = f"{t['op']} {figure(t['target'])}"
        lines.append(row(t["what"], figure(t["value"]), wanted, met, f"{t['ratio_to_target']:.3f}"))
    return lines


def misses(targets: list[dict[str, Any]]) -> list[str]:
    """One line per missed target: by how much."""
    said = []
    for t in targets:
        if "not_measured" in t:
            said.append(f"- {t['what']}: not measured ({t['not_measured']}).")
            continue
        if t["met"]:
            continue
        value, target = t["value"], t["target"]
        if t["op"] == ">=":
            short = f"{target / value:.1f}× short" if value else "nothing measured"
        else:
            short = f"{value - target:,.3f}".rstrip("0").rstrip(".") + " over"
        ratio = t["ratio_to_target"]
        said.append(f"- {t['what']}: {figure(value)} is {ratio:.3f} of {figure(target)} ({short}).")
    return said
