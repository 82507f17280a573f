"""What the worker tells Faust's commit bookkeeping, on Faust's own consumer (no broker: the
bookkeeping is in memory until a commit is sent)."""

from __future__ import annotations

import pytest
from faust.types import TP
from helpers import REPO

from sla_stream.contracts import load_dir
from sla_stream.runtime.app import applied_up_to, create_app
from sla_stream.settings import Settings

TICKETS = TP("sla.tickets", 3)


@pytest.fixture
def consumer():
    app = create_app(Settings(), load_dir(REPO / "examples" / "contracts"))
    return app.consumer


def test_input_applied_from_a_read_of_kafka_is_committed_past_a_hole_the_consumer_left(consumer):
    # Restarted at committed offset 2721, the worker's state was already at 2861 (at-least-once
    # writes the state before it commits); the consumer brought nothing of 2721 to 2860 that it
    # acknowledged, then nothing more, and the worker read 2861 to 2913 from Kafka itself.
    consumer._committed_offset[TICKETS] = 2721
    applied_up_to(consumer, TICKETS, 2861, 2914)
    assert consumer._new_offset(TICKETS) == 2914


def test_the_marks_never_reach_below_the_committed_offset_nor_repeat_what_is_acknowledged(consumer):
    consumer._committed_offset[TICKETS] = 100
    consumer._acked[TICKETS].append(100)
    consumer._acked_index[TICKETS].add(100)
    applied_up_to(consumer, TICKETS, 50, 103)
    assert sorted(consumer._acked[TICKETS]) == [100, 101, 102]
    assert consumer._new_offset(TICKETS) == 103


def test_with_nothing_committed_yet_the_marks_start_at_the_first_offset_read(consumer):
    applied_up_to(consumer, TICKETS, 7, 10)
    assert sorted(consumer._acked[TICKETS]) == [7, 8, 9]
    assert consumer._new_offset(TICKETS) == 10
