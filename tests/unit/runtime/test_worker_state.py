"""Local RocksDB tables after an unclean stop: discarded under exactly-once, kept otherwise."""

from __future__ import annotations

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
