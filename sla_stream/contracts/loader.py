"""Reading a directory of contract files: YAML, ``extends`` merging, validation, errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sla_stream.contracts.build import build
from sla_stream.contracts.spec import ContractSpec
from sla_stream.engine.model import Contract


class ContractError(Exception):
    """Contract files that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load_dir(directory: str | Path) -> dict[str, Contract]:
    """Every concrete contract in ``directory`` (``*.yaml``/``*.yml``), by id.

    Raises :class:`ContractError` listing every problem found in every file.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ContractError([f"{root}: not a directory of contract files"])
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ContractError([f"{root}: no contract files (*.yaml) found"])
    errors: list[str] = []
    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in files:
        document = _read(path, errors)
        if document is None:
            continue
        contract_id = document.get("id")
        if not isinstance(contract_id, str) or not contract_id:
            errors.append(f"{path}: id: expected the contract id, a non-empty string")
            continue
        if contract_id in raw:
            errors.append(f"{path}: id: {contract_id!r} is already used by {raw[contract_id][0]}")
            continue
        raw[contract_id] = (path, document)
    contracts: dict[str, Contract] = {}
    for contract_id, (path, _) in raw.items():
        merged = _merged(contract_id, raw, errors, chain=())
        if merged is None:
            continue
        try:
            spec = ContractSpec.model_validate(merged)
        except ValidationError as exc:
            errors.extend(f"{path}: {_where(e['loc'])}: {_message(e)}" for e in exc.errors())
            continue
        problems: list[str] = []
        contract = build(spec, problems)
        errors.extend(f"{path}: {problem}" for problem in problems)
        if contract is not None and not problems and not spec.abstract:
            contracts[contract_id] = contract
    if errors:
        raise ContractError(errors)
    return contracts


def _read(path: Path, errors: list[str]) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        errors.append(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot be read ({exc})")
        return None
    if not isinstance(document, dict):
        errors.append(f"{path}: expected a mapping of contract fields at the top level")
        return None
    return document


def _merged(
    contract_id: str,
    raw: Mapping[str, tuple[Path, dict[str, Any]]],
    errors: list[str],
    chain: tuple[str, ...],
) -> dict[str, Any] | None:
    path, document = raw[contract_id]
    base_id = document.get("extends")
    if base_id is None:
        return document
    if base_id in chain or base_id == contract_id:
        errors.append(f"{path}: extends: {' -> '.join((*chain, contract_id, base_id))} is a cycle")
        return None
    if base_id not in raw:
        errors.append(f"{path}: extends: no contract with id {base_id!r} in this directory")
        return None
    base = _merged(base_id, raw, errors, (*chain, contract_id))
    if base is None:
        return None
    merged = deep_merge({k: v for k, v in base.items() if k not in ("id", "abstract")}, document)
    return merged


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in (str(p) for p in loc):
        if part == "[key]" or part.startswith(("function-", "literal[", "int", "list[")):
            continue
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (check its spelling and where it is nested)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and error["type"] not in ("value_error",):
        return f"{message}, got {error['input']!r}"
    return message
