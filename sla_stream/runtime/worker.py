"""Starting the Faust worker: topics first, then the app, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust

from sla_stream.engine.model import Contract
from sla_stream.runtime.app import create_app
from sla_stream.runtime.logs import logging_config, quiet_repeats
from sla_stream.runtime.reload import log_versions
from sla_stream.runtime.stopping import ignore_sigterm, release_sigterm
from sla_stream.runtime.topics import ensure_topics
from sla_stream.settings import Settings

log = logging.getLogger("sla_stream")

# Written when the worker stops cleanly, removed while it runs.
CLEAN_STOP = "clean-stop"


def run_worker(settings: Settings, contracts: Mapping[str, Contract], loaded: str | None = None) -> int:
    """Run until stopped; returns the process exit code. ``loaded``: the fingerprint of the
    contract files taken before ``contracts`` were read (an edit since is reloaded)."""
    quiet_repeats()
    created = asyncio.run(ensure_topics(settings))
    app = create_app(settings, contracts, loaded)
    discard_unclean_state(settings, Path(app.conf.tabledir))
    worker = _Worker(
        app,
        stop_timeout=settings.stop_timeout_ms / 1000,
        loglevel=settings.log_level.upper(),
        logging_config=logging_config(settings.log_format, settings.log_level),
        quiet=True,
        redirect_stdouts=False,
    )
    # Faust's terminal spinner (on at warning level and above) sets the root logger to DEBUG, so
    # every debug line of aiokafka and Faust was built and thrown away: a tenth of the CPU.
    worker.spinner = None
    log.info(
        "starting worker %s: %d contracts, topics created: %s",
        settings.app_id,
        len(contracts),
        ", ".join(created) or "none",
    )
    log_versions(contracts)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    ignore_sigterm()
    if code != 0 and app.failed is None and worker.stopped_while_starting:
        # Stopping services that are still starting can trip Faust up (an InvalidStateError
        # from a topic declaration cut short); nothing was processed: a stop asked for, done.
        log.info("stopped while starting, as asked (SIGTERM)")
        code = 0
    if app.failed is not None:
        code = 1
    elif code == 0:
        _mark_clean(settings)
    # Everything is stopped and committed by now. Faust's consumer thread is not a daemon, and
    # one caught out by the event loop closing under it keeps the process alive for good.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _Worker(faust.Worker):
    #: A SIGTERM arrived before the worker had finished starting.
    stopped_while_starting = False
    _startup_done = False

    def __init__(self, *args: Any, stop_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_timeout = stop_timeout
        self._watchdog: threading.Timer | None = None

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        release_sigterm()  # a SIGTERM held while starting now stops the worker gracefully

    def _on_sigterm(self) -> None:
        if not self._startup_done:
            self.stopped_while_starting = True
        if self._watchdog is None:
            # A graceful stop flushes and commits through the broker; with the broker gone it
            # waits for good (Faust waits for its streams, they for their sends). The state is
            # on the changelog either way: exit, without marking the stop clean.
            self._watchdog = threading.Timer(self._stop_timeout, _stop_now, (self._stop_timeout,))
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._on_sigterm()

    async def on_startup_finished(self) -> None:
        self._startup_done = True
        await super().on_startup_finished()


def _stop_now(timeout: float) -> None:
    log.error(
        "the worker did not stop within %gs of SIGTERM (is the broker reachable?): exiting now;"
        " what was not committed is processed again on restart",
        timeout,
    )
    logging.shutdown()
    os._exit(1)


def discard_unclean_state(settings: Settings, tabledir: Path) -> bool:
    """Under exactly-once, local RocksDB tables left by a worker that did not stop cleanly go.

    Faust writes RocksDB at once, inside transactions that a crash aborts, so
    after a crash those files hold state that never committed. Rebuilt from
    the changelog (read committed) instead, as Kafka Streams does under
    exactly-once. The in-memory store is always rebuilt from the changelog.
    """
    marker = Path(settings.data_dir) / CLEAN_STOP
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    unclean = (
        not clean
        and settings.processing_guarantee == "exactly_once"
        and settings.store.startswith("rocksdb")
        and tabledir.exists()
    )
    if unclean:
        log.warning(
            "the last run did not stop cleanly: rebuilding local tables in %s from the changelog", tabledir
        )
        shutil.rmtree(tabledir)
    return unclean


def _mark_clean(settings: Settings) -> None:
    path = Path(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / CLEAN_STOP).touch()
