"""Contracts reloaded while the worker runs: on SIGHUP, or when the files change.

A directory that fails to load leaves the worker on the last contracts that loaded; the
errors are logged (one line each, naming file and field) and counted, and the gauge
``sla_contract_reload_failing`` stays 1 until the files load again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mode
import yaml

from sla_stream.contracts import ContractError, load_dir
from sla_stream.engine.model import Contract
from sla_stream.engine.time import format_ts

log = logging.getLogger("sla_stream.contracts")


def fingerprint(directory: Path) -> str:
    """A digest of the contract files' names and contents (empty if the directory is unreadable)."""
    digest = hashlib.sha256()
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError as exc:
        return f"unreadable: {exc}"
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            content = f"unreadable: {exc}".encode()
        digest.update(path.name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def digests(directory: Path) -> dict[str, str]:
    """Per contract id, which version of it the files hold: a digest (12 hex digits) of its file
    and of the files it extends."""
    texts: dict[str, bytes] = {}
    parents: dict[str, object] = {}
    for path in sorted(directory.glob("*.y*ml")):
        try:
            text = path.read_bytes()
            document = yaml.safe_load(text)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            texts[document["id"]] = text
            parents[document["id"]] = document.get("extends")

    def digest(contract_id: str, chain: tuple[str, ...]) -> str:
        made = hashlib.sha256(texts[contract_id])
        parent = parents.get(contract_id)
        if isinstance(parent, str) and parent in texts and parent not in chain:
            made.update(digest(parent, (*chain, contract_id)).encode())
        return made.hexdigest()[:12]

    return {contract_id: digest(contract_id, ()) for contract_id in texts}


def log_versions(contracts: Mapping[str, Contract], now: int | None = None) -> None:
    """One line for each contract with versions: the version in force ``now`` (the wall clock
    by default) and the next change."""
    now = int(time.time() * 1000) if now is None else now
    for contract_id, contract in sorted(contracts.items()):
        if not contract.versions:
            continue
        version, following = contract.at(now), contract.changes_after(now)
        log.info(
            "contract %s: version %s in force (%d versions); next change: %s",
            contract_id,
            version.version,
            len(contract.versions) + 1,
            "none"
            if following is None
            else f"{contract.at(following).version} at {format_ts(following, contract.zone)}",
        )


class ContractSource:
    """The contracts in use and the directory they come from."""

    def __init__(
        self, directory: str | Path, contracts: Mapping[str, Contract], loaded: str | None = None
    ) -> None:
        self.directory = Path(directory)
        self.contracts = dict(contracts)
        #: The files as last tried (``loaded``: their fingerprint taken before ``contracts`` were
        #: read from them): a change from this starts a reload.
        self.tried = fingerprint(self.directory) if loaded is None else loaded
        self.reloads = {"ok": 0, "error": 0}
        #: The first error of the last reload, while the files on disk do not load.
        self.error: str | None = None
        #: Which version of each contract in use (see :func:`digests`).
        self.digests = {k: v for k, v in digests(self.directory).items() if k in self.contracts}
        self._pending: dict[str, Contract] | None = None
        self._pending_digests: dict[str, str] = {}

    def changed(self) -> bool:
        return fingerprint(self.directory) != self.tried

    def reload(self) -> bool:
        """Load the directory again; the new contracts wait for :meth:`take` (the agent, between
        batches). On errors the contracts in use stay, and ``False`` is returned."""
        self.tried = fingerprint(self.directory)
        try:
            contracts = load_dir(self.directory)
        except (ContractError, OSError) as exc:
            errors = exc.errors if isinstance(exc, ContractError) else [f"{self.directory}: {exc}"]
            self.reloads["error"] += 1
            self.error = errors[0]
            log.error(
                "contracts in %s not reloaded (%d problems); the %d contracts in use stay",
                *(self.directory, len(errors), len(self.contracts)),
            )
            for line in errors:
                log.error("contract error: %s", line)
            return False
        self.reloads["ok"] += 1
        self.error = None
        before = self._pending or self.contracts
        added = sorted(contracts.keys() - before.keys())
        removed = sorted(before.keys() - contracts.keys())
        changed = sorted(k for k in contracts.keys() & before.keys() if contracts[k] != before[k])
        log.info(
            "contracts in %s reloaded: %d in use; added %s, changed %s, removed %s",
            self.directory,
            len(contracts),
            ", ".join(added) or "none",
            ", ".join(changed) or "none",
            ", ".join(removed) or "none",
        )
        log_versions(contracts)
        if added or removed or changed:
            self._pending = contracts
            self._pending_digests = {k: v for k, v in digests(self.directory).items() if k in contracts}
        return True

    def take(self) -> dict[str, Contract] | None:
        """The contracts reloaded since the last call, if any; they are in use from now on."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.contracts, self.digests = pending, self._pending_digests
        return pending


class ContractWatcher(mode.Service):
    """Reloads ``source`` on SIGHUP and, every ``interval`` seconds (0: never), when its files changed."""

    def __init__(self, source: ContractSource, interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.interval = interval
        self._asked = asyncio.Event()

    def ask(self) -> None:
        """Reload now (as SIGHUP does)."""
        self._asked.set()

    async def on_start(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._asked.set)

    async def on_stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    @mode.Service.task
    async def _watching(self) -> None:
        while not self.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), self.interval or None)
            asked = self._asked.is_set()
            self._asked.clear()
            if asked:
                log.info("SIGHUP: reloading the contracts in %s", self.source.directory)
            # On the event loop, as the agent that takes the result: a few small files, read in
            # milliseconds, and no thread to race the agent.
            if asked or self.source.changed():
                self.source.reload()
