"""Starting the Faust worker: topics first, then the app, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import faust

from sla_stream.engine.model import Contract
from sla_stream.runtime.app import create_app
from sla_stream.runtime.topics import ensure_topics
from sla_stream.settings import Settings


def run_worker(settings: Settings, contracts: Mapping[str, Contract]) -> int:
    """Run until stopped; returns the process exit code."""
    created = asyncio.run(ensure_topics(settings))
    app = create_app(settings, contracts)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    logging.getLogger("sla_stream").info(
        "starting worker %s: %d contracts, topics created: %s",
        settings.app_id,
        len(contracts),
        ", ".join(created) or "none",
    )
    worker.execute_from_commandline()
    return 0
