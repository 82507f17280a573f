"""What the worker commits, on Faust's own consumer and its bookkeeping (no broker: the
offsets to commit are worked out in memory before a commit is sent)."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import TopicPartition
from faust.types import TP
from helpers import REPO

from sla_stream.contracts import load_dir
from sla_stream.runtime.app import create_app
from sla_stream.settings import Settings

SETTINGS = Settings()
TICKETS = TP(SETTINGS.topics.tickets, 3)
TICKS = TP(SETTINGS.topics.ticks, 3)


@pytest.fixture
def app():
    app = create_app(SETTINGS, load_dir(REPO / "examples" / "contracts"))
    # Faust's table takes writes only within its stream; the state's writes are not the matter here.
    app.pipeline.table = {}
    return app


def acknowledge(consumer, tp: TP, *offsets: int) -> None:
    """As Faust's consumer marks a message it has seen through."""
    consumer._acked[tp].extend(offsets)
    consumer._acked_index[tp].update(offsets)


def apply(app, tp: TP, offsets: range) -> None:
    """The worker's pipeline applies these input messages (from whichever read)."""
    for offset in offsets:
        created = {
            "event_id": f"e{offset}",
            "type": "ticket.created",
            "contract_id": "demo-fast",
            "occurred_at": "2026-11-24T09:00:00Z",
            "ticket_id": f"T-{offset}",
            "priority": "P3",
        }
        app.pipeline.on_event(tp.topic, tp.partition, offset, b"demo-fast", orjson.dumps(created))


def to_commit(app) -> dict[TP, int]:
    consumer = app.consumer
    return consumer._filter_committable_offsets(list(consumer._filter_tps_with_pending_acks()))


def test_input_the_state_has_applied_is_committed_past_a_hole_in_the_acknowledgements(app):
    # Restarted at committed offset 2721 with its state at 2861 (at-least-once writes the state
    # before it commits): the consumer acknowledged nothing of 2721 to 2860, and the worker
    # applied 2861 to 2913, some from its own read of Kafka. Faust alone would never commit.
    consumer = app.consumer
    consumer._committed_offset[TICKETS] = 2721
    app.pipeline.processed[TICKETS.topic, TICKETS.partition] = 2861
    acknowledge(consumer, TICKETS, *range(2861, 2880))
    apply(app, TICKETS, range(2861, 2914))
    app.pipeline.write(TICKETS.partition)
    assert to_commit(app) == {TICKETS: 2914}


def test_a_partition_with_nothing_acknowledged_is_committed_as_far_as_it_is_applied(app):
    app.consumer._committed_offset[TICKETS] = 10
    apply(app, TICKETS, range(10, 15))
    app.pipeline.write(TICKETS.partition)
    assert to_commit(app) == {TICKETS: 15}


def test_input_whose_state_is_not_written_yet_is_not_committed(app):
    app.consumer._committed_offset[TICKETS] = 10
    apply(app, TICKETS, range(10, 15))
    assert to_commit(app) == {}
    app.pipeline.write(TICKETS.partition)
    apply(app, TICKETS, range(15, 20))  # applied, its state not written: the last write counts
    assert to_commit(app) == {TICKETS: 15}
    app.pipeline.write(TICKETS.partition)
    assert to_commit(app) == {TICKETS: 20}


def test_never_below_the_committed_offset_and_ticks_as_faust_acknowledges_them(app):
    consumer = app.consumer
    consumer._committed_offset[TICKETS] = 100
    app.pipeline.processed[TICKETS.topic, TICKETS.partition] = 60  # an older state's position
    consumer._committed_offset[TICKS] = 5
    acknowledge(consumer, TICKS, 5, 6, 7, 9)
    assert to_commit(app) == {TICKS: 8}


def test_a_commit_for_some_topics_takes_only_theirs(app):
    consumer = app.consumer
    apply(app, TICKETS, range(0, 3))
    app.pipeline.write(TICKETS.partition)
    acknowledge(consumer, TICKS, 0, 1)
    pending = set(consumer._filter_tps_with_pending_acks({TICKS.topic}))
    assert pending == {TICKS}
    assert consumer._filter_committable_offsets(pending) == {TICKS: 2}


def test_the_offsets_are_keyed_as_aiokafka_takes_them(app):
    apply(app, TICKETS, range(0, 3))
    app.pipeline.write(TICKETS.partition)
    (key,) = to_commit(app)
    assert type(key) is TopicPartition  # aiokafka's commit refuses any other kind of key


def test_where_the_input_starts_for_a_state_with_no_position_is_not_committed(app):
    # Seeded (nothing of the partition applied yet): the state does not say so, so nothing
    # commits it, also where Faust holds no committed offset to compare with.
    app.pipeline.seed(TICKETS.topic, TICKETS.partition, 40)
    assert to_commit(app) == {}
    apply(app, TICKETS, range(40, 42))
    app.pipeline.write(TICKETS.partition)
    assert to_commit(app) == {TICKETS: 42}
