"""Local RocksDB tables after an unclean stop: discarded under exactly-once, kept otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sla_stream.runtime.worker import CLEAN_STOP, discard_unclean_state
from sla_stream.settings import Settings

EXAMPLES = Path(__file__).parents[3] / "examples" / "contracts"


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


def test_sigterm_while_the_worker_is_still_starting_ends_it_cleanly(tmp_path: Path) -> None:
    """Importing Faust and building the app take seconds, before Faust's own signal handlers
    exist; an orchestrator's SIGTERM then must end the worker with status 0, not kill it by
    the default action (-15), and must not mark its local state as cleanly stopped."""
    script = (
        "import os, signal, sys, time\n"
        "import sla_stream.runtime.worker as worker\n"
        "from sla_stream.cli import main\n"
        "def starting(settings, contracts):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "    return 3\n"
        "worker.run_worker = starting\n"
        f"sys.exit(main(['worker', '--contracts', {str(EXAMPLES)!r}]))\n"
    )
    env = {**os.environ, "SLA_STREAM_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=25)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().strip() == "sla-stream: stopped by SIGTERM while starting"
    assert not (tmp_path / CLEAN_STOP).exists()
