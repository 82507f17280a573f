"""Reading a directory of contract files: YAML, ``extends`` merging, versions, validation, errors."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from sla_stream.contracts.build import build
from sla_stream.contracts.spec import ContractSpec
from sla_stream.engine.model import Contract
from sla_stream.engine.time import from_ms, to_ms


class ContractError(Exception):
    """Contract files that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load_dir(directory: str | Path) -> dict[str, Contract]:
    """Every concrete contract in ``directory`` (``*.yaml``/``*.yml``), by id: its first version,
    holding the later ones in ``versions``.

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
        documents = _versions(path, merged, errors)
        if documents is None:
            continue
        reported: set[str] = set()
        built = [_build(path, index, document, errors, reported) for index, document in enumerate(documents)]
        if any(found is None for found in built):
            continue
        head, *later = (found for found in built if found is not None)
        for index, ((before, _), (spec, _)) in enumerate(itertools.pairwise([head, *later])):
            errors.extend(
                f"{path}: versions[{index}].{section}: a version cannot add or remove a section"
                " (every version measures what the first one does)"
                for section in _SECTIONS
                if (getattr(spec, section) is None) != (getattr(before, section) is None)
            )
            errors.extend(
                f"{path}: versions[{index}].items.{name}: a version cannot change it"
                " (it says which events are the contract's items and which item each is about)"
                for name in ("kind", "key")
                if spec.items and before.items and getattr(spec.items, name) != getattr(before.items, name)
            )
        contract = replace(
            head[1], version=head[0].version_name or INITIAL, versions=tuple(c for _, c in later)
        )
        if not head[0].abstract:
            contracts[contract_id] = contract
    if errors:
        raise ContractError(errors)
    return contracts


INITIAL = "initial"
"""The name of a contract's first version when its file does not give one (``version_name``)."""
_WHOLE = ("id", "extends", "abstract", "version", "versions", "version_name", "timezone", "customer")
"""Fields of the whole contract, which a version cannot set."""
_SECTIONS = ("tickets", "calls", "requests", "items", "penalties")


def _versions(path: Path, merged: dict[str, Any], errors: list[str]) -> list[dict[str, Any]] | None:
    """The document of each version, the first (``merged`` itself) then each entry of
    ``versions`` merged over the one before it (see :func:`_overlay`), with ``name`` and
    ``effective_from`` (epoch ms) set on the later ones; ``None`` after adding a line per
    problem to ``errors``."""
    entries = merged.get("versions")
    if entries is None or entries == []:
        return [merged]
    if not isinstance(entries, list):
        errors.append(f"{path}: versions: expected a list of versions, each with effective_from")
        return None
    first = merged.get("version_name")
    names = {first if isinstance(first, str) else INITIAL: "the first version"}
    documents = [merged]
    document = {k: v for k, v in merged.items() if k not in ("versions", "version_name")}
    problems: list[str] = []
    previous: int | None = None
    for index, entry in enumerate(entries):
        where = f"versions[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping with effective_from and the terms that change")
            continue
        problems += (
            f"{where}.{key}: belongs to the whole contract; a version cannot set it"
            for key in entry
            if key in _WHOLE
        )
        written = entry.get("effective_from")
        start = _instant(written)
        if written is None:
            problems.append(f"{where}.effective_from: required field is missing")
        elif start is None:
            problems.append(
                f"{where}.effective_from: expected an RFC 3339 time with offset,"
                f" like 2027-01-01T00:00:00+07:00, got {_shown(written)}"
            )
        elif previous is not None and start <= previous:
            problems.append(f"{where}.effective_from: must be later than the version before it")
        name = entry.get("name", _local_date(written, merged.get("timezone")))
        if isinstance(name, date):  # YAML reads an unquoted 2027-01-01 as a date
            name = name.isoformat()
        if name is None and "name" not in entry:
            pass  # to be named after its effective_from, reported above as wrong
        elif not isinstance(name, str) or not name:
            problems.append(f"{where}.name: expected a non-empty string, got {name!r}")
        elif name in names:
            problems.append(f"{where}.name: {name!r} is already the name of {names[name]}")
        else:
            names[name] = where
        previous = start if start is not None else previous
        terms = {k: v for k, v in entry.items() if k not in ("name", "effective_from", *_WHOLE)}
        document = _overlay(document, terms)
        documents.append({**document, "name": name, "effective_from": start})
    errors.extend(f"{path}: {problem}" for problem in problems)
    return None if problems else documents


def _overlay(base: Mapping[str, Any], terms: Mapping[str, Any]) -> dict[str, Any]:
    """A version's ``terms`` over the version before it: :func:`deep_merge`, except that a null
    removes what it names (an objective, a priority's target, a tier list...)."""
    merged = dict(base)
    for key, value in terms.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def _instant(value: object) -> int | None:
    """Epoch ms of a time with an offset, written as text or read by YAML as a timestamp."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return to_ms(value)


def _shown(value: object) -> str:
    """A value as the file has it (YAML reads unquoted dates and times as objects)."""
    return repr(value.isoformat() if isinstance(value, date) else value)


def _local_date(value: object, zone: object) -> str | None:
    """The date of ``effective_from`` in the contract's zone (as written if the zone is not valid)."""
    at = _instant(value)
    if at is None:
        return None
    try:
        return from_ms(at, ZoneInfo(str(zone or "UTC"))).date().isoformat()
    except (ZoneInfoNotFoundError, ValueError):
        written = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(written, datetime)
        return written.date().isoformat()


def _build(
    path: Path, index: int, document: dict[str, Any], errors: list[str], reported: set[str]
) -> tuple[ContractSpec, Contract] | None:
    """Validate and build one version (``index`` 0 is the first); a line per problem not
    already reported for an earlier version goes to ``errors``."""
    terms = {k: v for k, v in document.items() if k not in ("name", "effective_from")} if index else document
    problems: list[str] = []
    contract = None
    try:
        spec = ContractSpec.model_validate(terms)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'])}: {_message(e)}" for e in exc.errors()]
    else:
        contract = build(spec, problems)
    for problem in problems:
        if problem not in reported:
            reported.add(problem)
            if index:  # the field path within the version's entry
                field, _, message = problem.partition(": ")
                field = "" if field == "(top level)" else f".{field}"
                problem = f"versions[{index - 1}]{field}: {message}"
            errors.append(f"{path}: {problem}")
    if contract is None or problems:
        return None
    if index:
        contract = replace(contract, version=document["name"], effective_from=document["effective_from"])
    return spec, contract


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
