"""Local RocksDB tables after an unclean stop: discarded under exactly-once, kept otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sla_stream.runtime.worker import CLEAN_STOP, discard_unclean_state
from sla_stream.settings import Settings


def tables(tmp_path: Path) -> Path:
    path = tmp_path / "v1" / "tables" / "state-0.db"
    path.mkdir(parents=True)
    return path.parent


@pytest.mark.parametrize(
    ("guarantee", "store", "clean", "discarded"),
    [
        ("exactly_once", "rocksdb://", False, True),
        ("exactly_once", "rocksdb://", True, False),
        ("at_least_once", "rocksdb://", False, False),
        ("exactly_once", "memory://", False, False),
    ],
)
def test_tables_left_by_a_crash_are_rebuilt_only_where_they_may_hold_aborted_writes(
    tmp_path: Path, guarantee: str, store: str, clean: bool, discarded: bool
) -> None:
    tabledir = tables(tmp_path)
    if clean:
        (tmp_path / CLEAN_STOP).touch()
    settings = Settings(data_dir=str(tmp_path), processing_guarantee=guarantee, store=store)
    assert discard_unclean_state(settings, tabledir) is discarded
    assert tabledir.exists() is not discarded
    # Running now: a crash from here on leaves no marker behind.
    assert not (tmp_path / CLEAN_STOP).exists()


def test_a_sigterm_while_the_worker_starts_waits_for_its_graceful_stop() -> None:
    """Importing Faust and building the app take seconds, before the worker's signal handlers
    exist: a SIGTERM then neither kills the process (-15) nor is lost; it is held, and handled
    as soon as the handlers are in place (the worker releases it when Faust installs them)."""
    script = (
        "import asyncio, os, signal, time\n"
        "from sla_stream.runtime.stopping import hold_sigterm, release_sigterm\n"
        "hold_sigterm()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.3)\n"
        "print('still starting', flush=True)\n"
        "loop = asyncio.new_event_loop()\n"
        "loop.add_signal_handler(signal.SIGTERM, lambda: (print('graceful stop', flush=True), loop.stop()))\n"
        "release_sigterm()\n"
        "loop.call_later(10, loop.stop)\n"
        "loop.run_forever()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=25)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == ["still starting", "graceful stop"]
