"""The engine stays pure: it imports the standard library and itself, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "sla_stream" / "engine"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("sla_stream.") and not node.module.startswith("sla_stream.engine"):
                roots.add(node.module)
    return roots


def test_the_engine_imports_only_the_standard_library_and_itself():
    files = sorted(ENGINE.glob("*.py"))
    assert files, "engine package not found"
    outside = {
        f"{path.name}: {root}"
        for path in files
        for root in imported_roots(path)
        if root not in sys.stdlib_module_names and root != "sla_stream"
    }
    assert outside == set()
