"""The worker's per-message path without a broker: decode, engine, outputs, ticks, state in a table."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP
from helpers import REPO, contracts_from, ms

from sla_stream.contracts import load_dir
from sla_stream.runtime.app import TickSender
from sla_stream.runtime.pipeline import Pipeline, tick_record, wall_ms
from sla_stream.settings import Settings

TOPIC = "sla.tickets"

# A tick made when Kafka held nothing on any input topic.
NOTHING = dict.fromkeys(Settings().source_topics, 0)


def event(n: int, kind: str, at: str, **fields: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "type": kind,
            "contract_id": "demo-fast",
            "occurred_at": at,
            "ticket_id": "T-1",
            **fields,
        }
    )


@pytest.fixture
def pipeline() -> Pipeline:
    contracts = load_dir(REPO / "examples" / "contracts")
    return Pipeline(Settings(), contracts, table={}, clock=lambda: ms("2026-11-24T10:00:00Z"))


def test_a_tick_waits_until_the_events_already_in_kafka_are_processed(pipeline):
    created = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    other = event(2, "ticket.created", "2026-11-24T09:00:00Z", priority="P3").replace(b"T-1", b"T-2")
    # The tick was made when the partition's highwater was 2: two events not processed yet.
    assert pipeline.on_tick(0, tick_record(ms("2026-11-24T09:05:00Z"), {**NOTHING, TOPIC: 2})) == []
    assert pipeline.on_event(TOPIC, 0, 0, b"demo-fast", created) == []
    assert pipeline.on_event(TOPIC, 0, 1, b"demo-fast", other) == []
    outputs = pipeline.on_tick(0, tick_record(ms("2026-11-24T09:05:00Z"), {**NOTHING, TOPIC: 2}))
    kinds = [
        orjson.loads(o.value)["kind"] for o in outputs if orjson.loads(o.value)["subject"]["id"] == "T-1"
    ]
    assert kinds == ["near_breach", "near_breach", "breach", "near_breach", "near_breach", "breach"]
    assert {o.topic for o in outputs} == {"sla.alerts"} and {o.key for o in outputs} == {b"demo-fast"}
    assert all(orjson.loads(o.value)["emitted_at"] == "2026-11-24T10:00:00.000Z" for o in outputs)


def test_state_lives_in_the_table_and_a_new_pipeline_resumes_from_it(pipeline):
    pipeline.on_event(
        TOPIC, 3, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P3")
    )
    table = pipeline.table
    # Nothing reaches the table (and its changelog) until the worker has sent the outputs.
    assert table == {}
    pipeline.write(3)
    assert any(key.startswith(b"t3\x1f") for key in table) and table[b"c3\x1fsla.tickets"] == b"%d" % ms(
        "2026-11-24T09:00:00Z"
    )
    # A restarted worker (a new pipeline over the same table) fires what came due meanwhile.
    resumed = Pipeline(Settings(), pipeline.contracts, table, clock=pipeline.clock)
    alerts = resumed.on_tick(3, tick_record(ms("2026-11-24T09:01:00.001Z"), NOTHING))
    assert [(a["objective"], a["kind"]) for a in map(orjson.loads, (o.value for o in alerts))] == [
        ("first_response", "near_breach"),
        ("first_response", "near_breach"),
        ("first_response", "breach"),
    ]


def test_bad_input_becomes_one_dead_letter_record_with_the_reason_and_the_original_bytes(pipeline):
    (out,) = pipeline.on_event(TOPIC, 2, 41, b"demo-fast", b'{"type": "ticket.created"')
    record = orjson.loads(out.value)
    assert out.topic == "sla.deadletter" and out.key == b"demo-fast"
    assert record["reason"] == "invalid" and record["detail"].startswith("not JSON")
    assert (record["topic"], record["partition"], record["offset"]) == (TOPIC, 2, 41)
    assert record["value"] == '{"type": "ticket.created"'
    assert pipeline.counts.events == {(TOPIC, "invalid"): 1}


def test_a_tick_never_moves_the_clock_past_offsets_not_applied_until_kafka_shows_nothing_is_there():
    now = [ms("2026-11-24T10:00:00Z")]
    contracts = load_dir(REPO / "examples" / "contracts")
    pipeline = Pipeline(Settings(), contracts, table={}, clock=lambda: now[0])
    pipeline.seed(TOPIC, 0, 0)
    pipeline.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:59:00Z", priority="P1")
    )
    # Offsets 1..4 were in Kafka when the tick was made; the consumer may still bring them.
    tick = tick_record(ms("2026-11-24T10:00:00Z"), {**NOTHING, TOPIC: 5})
    assert pipeline.on_tick(0, tick) == [] and pipeline.waiting_for(0, tick) == []
    # However long nothing comes, the clock waits; the worker is asked to read them from Kafka.
    now[0] += 60_000
    assert pipeline.on_tick(0, tick) == [] and 0 not in pipeline.ticked
    assert pipeline.waiting_for(0, tick) == [(TOPIC, 1, 5)]
    # Read up to the mark, with nothing there to apply (an aborted transaction, say): it goes ahead.
    pipeline.skip_to(TOPIC, 0, 5)
    assert pipeline.waiting_for(0, tick) == []
    assert [orjson.loads(o.value)["kind"] for o in pipeline.on_tick(0, tick)][-1] == "breach"
    assert pipeline.position(TOPIC, 0) == 5


def test_a_tick_without_a_known_mark_for_every_input_topic_never_moves_the_clock(pipeline):
    created = event(1, "ticket.created", "2026-11-24T09:59:00Z", priority="P1")
    pipeline.on_event(TOPIC, 0, 0, b"demo-fast", created)
    at = ms("2026-11-24T10:00:00Z")
    for marks in ({TOPIC: 1}, {**NOTHING, "sla.calls": None}):
        assert pipeline.on_tick(0, orjson.dumps({"at": at, "hw": marks})) == []
    assert 0 not in pipeline.ticked
    assert pipeline.on_tick(0, tick_record(at, {**NOTHING, TOPIC: 1}))


def test_a_tick_that_is_not_a_tick_is_dead_lettered_and_the_partition_goes_on(pipeline):
    for offset, junk in enumerate((b"hello", None, b"[1]", b"{}", b'{"at": "x"}', b'{"at": 1, "hw": "x"}')):
        (out,) = pipeline.on_tick(1, junk, offset=7 + offset)
        assert out.topic == "sla.deadletter" and orjson.loads(out.value)["reason"] == "invalid"
    assert pipeline.on_tick(1, tick_record(ms("2026-11-24T09:00:00Z"), NOTHING)) == []
    assert 1 in pipeline.ticked


def test_a_tick_from_far_ahead_of_the_wall_clock_fires_nothing(pipeline):
    pipeline.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:59:00Z", priority="P1")
    )
    (out,) = pipeline.on_tick(0, tick_record(ms("2026-11-25T10:00:00Z"), NOTHING), offset=4)
    record = orjson.loads(out.value)
    assert (out.topic, record["reason"], record["offset"]) == ("sla.deadletter", "invalid", 4)
    assert "ahead of this worker's clock" in record["detail"]
    # The ticket's 20 s first response has not passed on the worker's clock: nothing fired.
    assert pipeline.on_tick(0, tick_record(ms("2026-11-24T09:59:10Z"), NOTHING)) == []


def test_an_oversized_message_is_dead_lettered_unread_with_a_bounded_copy(pipeline):
    huge = b'{"type": "ticket.created", "pad": "' + b"x" * 200_000 + b'"}'
    (out,) = pipeline.on_event(TOPIC, 0, 5, b"k" * 70_000, huge)
    record = orjson.loads(out.value)
    assert record["reason"] == "too_large"
    assert record["detail"] == "message of 200037 bytes; at most 65536 are accepted"
    assert record["value"] == huge[:65_536].decode() and record["value_bytes"] == len(huge)
    assert record["value_truncated"] is record["key_truncated"] is True
    assert len(out.value) < 200_000
    assert pipeline.counts.events == {(TOPIC, "too_large"): 1}
    smaller = Pipeline(Settings(max_message_bytes=1024), pipeline.contracts, {}, clock=pipeline.clock)
    created = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1", status="x" * 1024)
    (out,) = smaller.on_event(TOPIC, 0, 0, b"demo-fast", created)
    assert orjson.loads(out.value)["reason"] == "too_large"


def test_deeply_nested_json_is_dead_lettered_as_invalid(pipeline):
    nested = b'{"type": "request", "x": ' + b"[" * 400_000 + b"]" * 400_000 + b"}"
    pipeline = Pipeline(Settings(max_message_bytes=1_000_000), pipeline.contracts, {}, clock=pipeline.clock)
    (out,) = pipeline.on_event("sla.requests", 0, 0, None, nested)
    record = orjson.loads(out.value)
    assert (record["reason"], record["detail"]) == (
        "invalid",
        "JSON nested more than 64 levels deep",
    )


def test_an_event_far_ahead_of_the_wall_clock_is_rejected_before_it_moves_the_clock(pipeline):
    (out,) = pipeline.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2199-12-31T00:00:00Z", priority="P1")
    )
    record = orjson.loads(out.value)
    assert record["reason"] == "invalid" and "ahead of this worker's clock" in record["detail"]
    assert pipeline.engine(TOPIC, 0).clock is None


def test_a_defect_while_processing_goes_to_the_dead_letter_topic_instead_of_stopping_the_worker(pipeline):
    def broken(event):
        raise KeyError("resolution")

    pipeline.engine(TOPIC, 0).apply = broken
    (out,) = pipeline.on_event(
        TOPIC, 0, 3, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    )
    record = orjson.loads(out.value)
    assert (record["reason"], record["detail"], record["offset"]) == ("error", "KeyError: 'resolution'", 3)
    assert pipeline.counts.events == {(TOPIC, "error"): 1}


def test_a_contract_changed_between_restarts_is_applied_to_the_stored_tickets(pipeline, tmp_path):
    pipeline.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    )
    pipeline.write(0)
    (tmp_path / "demo.yaml").write_text(
        "version: 1\nid: demo-fast\ntickets:\n  priorities: [P2]\n  near_breach: []\n"
        "  objectives:\n    first_response: {targets: {P2: 1h}}\n"
    )
    restarted = Pipeline(
        Settings(max_future_ms=86_400_000), load_dir(tmp_path), pipeline.table, clock=pipeline.clock
    )
    alerts = restarted.on_tick(0, tick_record(ms("2026-11-24T12:00:00Z"), NOTHING))
    # resolution is gone from the contract; first response keeps the P1 target it started with
    assert [
        (a["objective"], a["kind"], a["target_seconds"]) for a in map(orjson.loads, (o.value for o in alerts))
    ] == [("first_response", "breach", 20)]
    reply = event(2, "ticket.agent_replied", "2026-11-24T12:00:01Z")
    assert restarted.on_event(TOPIC, 0, 1, b"demo-fast", reply) == []
    assert restarted.counts.events == {(TOPIC, "ok"): 1}


def test_the_state_records_how_far_each_input_partition_is_applied(pipeline):
    assert pipeline.position(TOPIC, 1) is None
    pipeline.on_event(
        TOPIC, 1, 7, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    )
    pipeline.on_event(TOPIC, 1, 8, b"demo-fast", b"not json")  # a dead letter counts as applied too
    assert pipeline.position(TOPIC, 1) == 9
    resumed = Pipeline(Settings(), pipeline.contracts, pipeline.table, clock=pipeline.clock)
    assert resumed.position(TOPIC, 1) is None  # not written yet: written with the state
    pipeline.write(1)
    resumed = Pipeline(Settings(), pipeline.contracts, pipeline.table, clock=pipeline.clock)
    assert resumed.position(TOPIC, 1) == 9 and resumed.position(TOPIC, 2) is None
    # Where the group's input starts (its committed offset) counts only where the state knows
    # nothing, also when the state's position is 0.
    resumed.seed(TOPIC, 1, 3)
    resumed.seed(TOPIC, 2, 3)
    assert (resumed.processed[TOPIC, 1], resumed.processed[TOPIC, 2]) == (9, 3)
    resumed.processed[TOPIC, 3] = 0
    resumed.seed(TOPIC, 3, 3)
    assert resumed.position(TOPIC, 3) == 0


class WriteOrder(dict):
    """A table that remembers the order of its writes, as its changelog would receive them."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[bytes] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.order.append(key)
        super().__setitem__(key, value)

    def pop(self, key: bytes, *default: bytes | None) -> bytes | None:
        self.order.append(key)
        return super().pop(key, *default)

    def __delitem__(self, key: bytes) -> None:
        self.order.append(key)
        super().__delitem__(key)


def test_a_position_reaches_the_changelog_after_the_state_it_covers():
    # One producer keeps a changelog partition's order, so a position written last is on
    # Kafka only if the ticket and clock before it are: a stop in between can never leave
    # a state that counts an event as applied without it.
    table = WriteOrder()
    contracts = load_dir(REPO / "examples" / "contracts")
    pipeline = Pipeline(Settings(), contracts, table, clock=lambda: ms("2026-11-24T10:00:00Z"))
    pipeline.on_event(
        TOPIC, 2, 205, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    )
    pipeline.write(2)
    assert [key[:2] for key in table.order] == [b"t2", b"c2", b"o2"]
    assert table[table.order[-1]] == b"206"


def test_each_input_topic_has_its_own_engine_and_rejects_the_others_events(pipeline):
    call = orjson.dumps(
        {
            "event_id": "c1",
            "type": "call.queued",
            "contract_id": "demo-fast",
            "occurred_at": "2026-11-24T09:00:00Z",
            "call_id": "K-1",
            "queue": "sales",
        }
    )
    (out,) = pipeline.on_event(TOPIC, 0, 0, b"demo-fast", call)
    record = orjson.loads(out.value)
    assert (record["reason"], record["detail"]) == (
        "invalid",
        "a call.queued event does not belong on sla.tickets",
    )
    assert pipeline.on_event("sla.calls", 0, 0, b"demo-fast", call) == []
    # The call moved the calls clock only: a ticket event an hour earlier is not late on its own topic.
    assert pipeline.engine("sla.calls", 0).clock == ms("2026-11-24T09:00:00Z")
    early = event(1, "ticket.created", "2026-11-24T08:00:00Z", priority="P1")
    assert all(o.topic == "sla.alerts" for o in pipeline.on_event(TOPIC, 0, 1, b"demo-fast", early))
    pipeline.write(0)
    assert pipeline.table[b"k0\x1fdemo-fast"] and pipeline.table[b"c0\x1fsla.calls"] == b"%d" % ms(
        "2026-11-24T09:00:00Z"
    )


@pytest.fixture
def at_month_end(pipeline) -> Pipeline:
    """A worker whose wall clock reads 1 December 2026, 00:10 UTC."""
    return Pipeline(pipeline.settings, pipeline.contracts, table={}, clock=lambda: ms("2026-12-01T00:10:00Z"))


def test_a_statement_goes_out_once_per_period_and_a_restarted_worker_neither_repeats_nor_skips_one(
    at_month_end,
):
    pipeline = at_month_end
    # demo-fast (Europe/London, GMT in winter) has penalties; the default lateness is 5 minutes.
    created = event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    replied = event(2, "ticket.agent_replied", "2026-11-30T23:00:10Z")
    assert pipeline.on_event(TOPIC, 2, 0, b"demo-fast", created) == []
    assert pipeline.on_event(TOPIC, 2, 1, b"demo-fast", replied) == []
    # Clocks of the sources demo-fast measures (tickets, calls, requests) pass 1 December 00:05.
    close = tick_record(ms("2026-12-01T00:05:00Z"), NOTHING)
    outputs = [o for o in pipeline.on_tick(2, close) if o.topic == "sla.penalties"]
    assert len(outputs) == 1 and outputs[0].key == b"demo-fast" and outputs[0].partition == 2
    statement = orjson.loads(outputs[0].value)
    assert statement["statement_id"] == "demo-fast/2026-11"
    assert statement["objectives"][0] == {
        "objective": "first_response",
        "attained": 1.0,
        "met": 1,
        "total": 1,
        "credit_percent": 0,
    }
    assert pipeline.counts.statements == {"demo-fast": 1}
    assert pipeline.on_tick(2, tick_record(ms("2026-12-01T00:06:00Z"), NOTHING)) == []
    pipeline.write(2)

    # A new worker on the same state: November is not sent again; December goes out at its close.
    now = [ms("2026-12-01T00:10:00Z")]
    restarted = Pipeline(pipeline.settings, pipeline.contracts, pipeline.table, clock=lambda: now[0])
    assert restarted.on_tick(2, tick_record(ms("2026-12-01T00:07:00Z"), NOTHING)) == []
    now[0] = ms("2027-01-01T00:10:00Z")
    outputs = restarted.on_tick(2, tick_record(ms("2027-01-01T00:05:00Z"), NOTHING))
    assert [orjson.loads(o.value)["statement_id"] for o in outputs if o.topic == "sla.penalties"] == [
        "demo-fast/2026-12"
    ]
    assert orjson.loads(outputs[-1].value)["objectives"] == []


def test_a_statement_not_written_to_the_state_is_sent_again_after_a_crash(at_month_end):
    pipeline = at_month_end
    pipeline.on_event(
        TOPIC, 1, 0, b"demo-fast", event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    )
    pipeline.write(1)
    close = tick_record(ms("2026-12-01T00:05:00Z"), NOTHING)
    first = [o.value for o in pipeline.on_tick(1, close) if o.topic == "sla.penalties"]
    # Crash before write(): the state (with its mark) never reached the changelog.
    restarted = Pipeline(pipeline.settings, pipeline.contracts, pipeline.table, clock=pipeline.clock)
    again = [o.value for o in restarted.on_tick(1, close) if o.topic == "sla.penalties"]
    assert len(first) == 1 and again == first


def test_a_settled_periods_mark_reaches_the_changelog_before_the_ledger_without_it(at_month_end):
    # With at-least-once a stop can cut a partition's writes short: a ledger without November
    # and no mark would settle November again, from nothing.
    table = WriteOrder()
    pipeline = Pipeline(at_month_end.settings, at_month_end.contracts, table, clock=at_month_end.clock)
    pipeline.on_event(
        TOPIC, 2, 0, b"demo-fast", event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    )
    pipeline.write(2)
    table.order.clear()
    assert pipeline.on_tick(2, tick_record(ms("2026-12-01T00:06:00Z"), NOTHING))  # November settles
    pipeline.write(2)
    written = [key.split(b"\x1f")[0] for key in table.order]
    assert b"p2" in written and b"l2" in written  # a mark, then the trimmed ledger
    assert written.index(b"p2") < written.index(b"l2")


def _cut_after_ledgers(pipeline: Pipeline, partition: int, persisted: dict) -> None:
    """``write`` as a stop cuts it short: only its records up to the last ledger reach ``persisted``."""
    recorded = WriteOrder()
    pipeline.table, before = recorded, pipeline.table
    for store in [*pipeline.stores.values(), *pipeline.ledgers.values(), *pipeline.marks.values()]:
        store._table = recorded
    pipeline.write(partition)
    last = max(i for i, key in enumerate(recorded.order) if key.startswith(b"l%d" % partition))
    for key in recorded.order[: last + 1]:
        if key in recorded:
            persisted[key] = recorded[key]
        else:
            persisted.pop(key, None)
    pipeline.table = before


@pytest.mark.parametrize("restarted_under", ["at_least_once", "exactly_once"])
def test_a_stop_that_cuts_the_writes_short_neither_loses_nor_doubles_a_booking(at_month_end, restarted_under):
    # At-least-once: the ledger is written before the tickets it counts, and what it counted
    # is recognised when the messages are processed again, also by a worker restarted under
    # exactly-once (its guarantee changed at the restart).
    settings, contracts, clock = at_month_end.settings, at_month_end.contracts, at_month_end.clock
    persisted: dict = {}
    first = Pipeline(settings, contracts, persisted, clock=clock)
    first.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    )
    first.on_event(
        TOPIC,
        0,
        1,
        b"demo-fast",
        event(2, "ticket.created", "2026-11-30T23:00:00Z", priority="P1").replace(b"T-1", b"T-2"),
    )
    first.write(0)
    # In one batch a tick past T-1's deadline breaches it, and T-2 is answered in time: both
    # booked, and the stop cuts the batch's write after the ledgers.
    breach_tick = tick_record(ms("2026-11-30T23:00:30Z"), NOTHING)
    first.on_tick(0, breach_tick, 7)
    reply = event(3, "ticket.agent_replied", "2026-11-30T23:00:15Z").replace(b"T-1", b"T-2")
    first.on_event(TOPIC, 0, 2, b"demo-fast", reply)
    _cut_after_ledgers(first, 0, persisted)

    # Restarted on what reached Kafka: the reply is processed again (its position never got
    # there), and a later tick fires T-1's breach again, not the same tick.
    second = Pipeline(
        replace(settings, processing_guarantee=restarted_under), contracts, persisted, clock=clock
    )
    assert second.position(TOPIC, 0) == 2
    second.on_event(TOPIC, 0, 2, b"demo-fast", reply)
    outputs = second.on_tick(0, tick_record(ms("2026-12-01T00:05:00Z"), NOTHING), 9)
    [statement] = [orjson.loads(o.value) for o in outputs if o.topic == "sla.penalties"]
    first_response = statement["objectives"][0]
    assert (first_response["objective"], first_response["met"], first_response["total"]) == (
        "first_response",
        1,
        2,
    )


def _first_response(outputs: list) -> tuple[int, int]:
    """``(met, total)`` of first_response in the one statement among ``outputs``."""
    [statement] = [orjson.loads(o.value) for o in outputs if o.topic == "sla.penalties"]
    [found] = [o for o in statement["objectives"] if o["objective"] == "first_response"]
    return found["met"], found["total"]


def _breached_then_cut(settings, contracts, clock) -> dict:
    """The state a stop leaves when it cuts short the write of a batch in which T-1 (P1, 20 s to
    a first response) breached: the ledger counts the breach, T-1 as stored does not know it."""
    persisted: dict = {}
    first = Pipeline(settings, contracts, persisted, clock=clock)
    first.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    )
    first.write(0)
    assert first.on_tick(0, tick_record(ms("2026-11-30T23:00:30Z"), NOTHING), 7)  # the breach
    _cut_after_ledgers(first, 0, persisted)
    return persisted


CLOSE = tick_record(ms("2026-12-01T00:05:00Z"), NOTHING)


def test_a_late_event_deciding_again_a_ticket_older_than_its_ledger_counts_it_once(at_month_end):
    # At-least-once: restarted on a ledger that counted T-1's breach and a T-1 without it, the
    # worker gets a reply sent before the deadline that arrived late: T-1 is decided again (met),
    # and the month counts it once, as a worker that never stopped does.
    settings, contracts, clock = at_month_end.settings, at_month_end.contracts, at_month_end.clock
    late_reply = event(2, "ticket.agent_replied", "2026-11-30T23:00:10Z")
    second = Pipeline(settings, contracts, _breached_then_cut(settings, contracts, clock), clock=clock)
    second.on_event(TOPIC, 0, 1, b"demo-fast", late_reply)
    restarted = _first_response(second.on_tick(0, CLOSE, 9))

    never_stopped = Pipeline(settings, contracts, {}, clock=clock)
    never_stopped.on_event(
        TOPIC, 0, 0, b"demo-fast", event(1, "ticket.created", "2026-11-30T23:00:00Z", priority="P1")
    )
    never_stopped.on_tick(0, tick_record(ms("2026-11-30T23:00:30Z"), NOTHING), 7)
    never_stopped.on_event(TOPIC, 0, 1, b"demo-fast", late_reply)
    assert restarted == _first_response(never_stopped.on_tick(0, CLOSE, 9)) == (1, 1)


def test_a_breach_falling_due_again_after_a_write_on_older_tickets_counts_once(at_month_end):
    # At-least-once: the restarted worker writes its state (another ticket came in) before the
    # tick that breached T-1 comes round again; T-1's breach, falling due a second time on the
    # older T-1, is still counted once.
    settings, contracts, clock = at_month_end.settings, at_month_end.contracts, at_month_end.clock
    second = Pipeline(settings, contracts, _breached_then_cut(settings, contracts, clock), clock=clock)
    other = event(2, "ticket.created", "2026-11-30T23:00:05Z", priority="P1").replace(b"T-1", b"T-2")
    second.on_event(TOPIC, 0, 1, b"demo-fast", other)
    second.write(0)
    assert second.on_tick(0, tick_record(ms("2026-11-30T23:00:30Z"), NOTHING), 7)  # due again
    second.write(0)
    third = Pipeline(settings, contracts, second.table, clock=clock)  # and once more, from there
    assert _first_response(third.on_tick(0, CLOSE, 9)) == (0, 2)  # T-1 and T-2 breached, once each


RESOLUTION_ONLY = """
version: 1
id: demo-fast
timezone: UTC
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    resolution: {targets: {P1: 2m}, pause_on: [pending]}
"""


def _ticket(n: int, ticket: str, kind: str, at: str, **fields: str) -> bytes:
    return event(n, kind, at, **fields).replace(b"T-1", ticket.encode())


def test_a_ticket_older_than_its_ledger_is_counted_once_whatever_comes_first_after_a_restart(tmp_path):
    # At-least-once: T-1 breached and that was written; in the next batch a late "pending"
    # takes the breach back (T-1 never breached), and the stop cuts that batch's write after
    # the ledgers. Restarted, the worker processes the batch again, another ticket's event
    # first (it settles periods, and reads the state back): the month counts as a worker that
    # never stopped does, also after a second restart.
    contracts = contracts_from(tmp_path, c=RESOLUTION_ONLY)
    clock = lambda: ms("2026-11-24T10:10:00Z")  # noqa: E731
    created = _ticket(0, "T-1", "ticket.created", "2026-11-24T10:00:00Z", priority="P1")
    other = _ticket(1, "T-2", "ticket.created", "2026-11-24T10:02:30Z", priority="P1")
    pending = _ticket(2, "T-1", "ticket.status_changed", "2026-11-24T10:01:30Z", status="pending")
    breach = tick_record(ms("2026-11-24T10:03:00Z"), NOTHING)

    never_stopped = Pipeline(Settings(), contracts, {}, clock=clock)
    for n, message in enumerate([created, other, pending]):
        never_stopped.on_event(TOPIC, 0, n, b"demo-fast", message)
        if n == 0:
            never_stopped.on_tick(0, breach, 7)
    expected = never_stopped.engine(TOPIC, 0).ledgers["demo-fast"].periods

    persisted: dict = {}
    first = Pipeline(Settings(), contracts, persisted, clock=clock)
    first.on_event(TOPIC, 0, 0, b"demo-fast", created)
    assert first.on_tick(0, breach, 7)
    first.write(0)
    first.on_event(TOPIC, 0, 1, b"demo-fast", other)
    first.on_event(TOPIC, 0, 2, b"demo-fast", pending)
    _cut_after_ledgers(first, 0, persisted)

    second = Pipeline(Settings(), contracts, persisted, clock=clock)
    second.on_event(TOPIC, 0, 1, b"demo-fast", other)
    second.on_event(TOPIC, 0, 2, b"demo-fast", pending)
    assert second.engine(TOPIC, 0).ledgers["demo-fast"].periods == expected
    second.write(0)
    third = Pipeline(Settings(), contracts, second.table, clock=clock)
    assert third.engine(TOPIC, 0).ledgers["demo-fast"].periods == expected
    assert third.engine(TOPIC, 0).ledgers["demo-fast"].views == {}  # read back: none left behind


def test_a_partition_whose_ticks_stop_coming_is_stale_until_they_come_again():
    now = [ms("2026-11-24T10:00:00Z")]
    pipeline = Pipeline(Settings(), load_dir(REPO / "examples" / "contracts"), {}, clock=lambda: now[0])
    assert pipeline.stale({0, 1}) == {0, 1}  # no clock has run yet
    pipeline.on_tick(0, tick_record(now[0] - 250, NOTHING))
    pipeline.on_tick(1, tick_record(now[0] - 250, NOTHING))
    assert pipeline.stale({0, 1}) == set()
    now[0] += 4_000
    pipeline.on_tick(1, tick_record(now[0] - 250, NOTHING))
    now[0] += 2_000  # partition 0's last tick is 6 s old (the broker is away, say)
    assert pipeline.stale({0, 1}) == {0}
    pipeline.on_tick(0, tick_record(now[0] - 250, NOTHING))
    assert pipeline.stale({0, 1}) == set()


def _request(n: int, at: str, status: int, batch: bool = False) -> bytes:
    body = {"event_id": f"q{n}", "contract_id": "demo-fast", "occurred_at": at, "service": "api"}
    if batch:
        return orjson.dumps({**body, "type": "request.batch", "total": 10, "good": 10 - status // 500})
    return orjson.dumps({**body, "type": "request", "latency_ms": 12, "status": status})


def test_requests_processed_again_after_any_cut_of_the_writes_count_once(at_month_end):
    # At-least-once: a stop can end a batch's writes after any record. Whatever reached Kafka,
    # the restarted worker processes the batch again; the service's minutes and the month's
    # counts come out as if there had been no stop.
    settings, contracts, clock = at_month_end.settings, at_month_end.contracts, at_month_end.clock
    requests = "sla.requests"
    earlier = [_request(1, "2026-11-30T23:00:00Z", 200), _request(2, "2026-11-30T23:00:10Z", 503)]
    batch = [
        _request(3, "2026-11-30T23:00:20Z", 200),
        _request(4, "2026-11-30T23:01:05Z", 500),
        _request(5, "2026-11-30T23:01:30Z", 500, batch=True),
        _request(6, "2026-11-30T23:02:00Z", 200),
    ]
    close = tick_record(ms("2026-12-01T00:06:00Z"), NOTHING)

    def run(pipeline: Pipeline, messages: list[bytes], first: int) -> None:
        for offset, value in enumerate(messages, first):
            pipeline.on_event(requests, 0, offset, b"demo-fast", value)

    def outcome(pipeline: Pipeline) -> tuple[object, ...]:
        service = pipeline.engine(requests, 0).services[("demo-fast", "api")]
        statements = [orjson.loads(o.value) for o in pipeline.on_tick(0, close) if o.topic == "sla.penalties"]
        availability = [o for o in statements[0]["objectives"] if o["objective"] == "availability"]
        return dict(service.buckets), availability

    uncut = Pipeline(settings, contracts, {}, clock=clock)
    run(uncut, earlier + batch, 0)
    expected = outcome(uncut)
    assert (expected[1][0]["good"], expected[1][0]["total"]) == (12, 15)

    probe = WriteOrder()
    writer = Pipeline(settings, contracts, probe, clock=clock)
    run(writer, earlier, 0)
    writer.write(0)
    written = len(probe.order)
    run(writer, batch, len(earlier))
    writer.write(0)
    records = probe.order[written:]
    assert len(records) > 4  # ledger, minutes, service header, clock, position

    for cut in range(len(records)):
        persisted: dict = {}
        first = Pipeline(settings, contracts, persisted, clock=clock)
        run(first, earlier, 0)
        first.write(0)
        run(first, batch, len(earlier))
        reached = WriteOrder()
        _write_into(first, reached)
        for key in reached.order[:cut]:
            if key in reached:
                persisted[key] = reached[key]
            else:
                persisted.pop(key, None)
        restarted = Pipeline(settings, contracts, persisted, clock=clock)
        assert restarted.position(requests, 0) == len(earlier)  # the position is the last record
        run(restarted, batch, len(earlier))
        assert outcome(restarted) == expected, f"cut after {cut} of {len(records)} records"


def _write_into(pipeline: Pipeline, table: dict) -> None:
    """``pipeline.write(0)`` into ``table`` instead of the pipeline's own."""
    pipeline.table = table
    for store in [*pipeline.stores.values(), *pipeline.ledgers.values(), *pipeline.marks.values()]:
        store._table = table
    pipeline.write(0)


def parcel(n: int, kind: str, at: str, **fields: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"s{n}",
            "type": f"shipment.{kind}",
            "contract_id": "swiftparcel-demo",
            "occurred_at": at,
            "parcel_id": "P-1",
            **fields,
        }
    )


def test_item_events_on_the_items_topic_are_kept_in_the_table_and_breach_after_a_restart(pipeline):
    picked = parcel(1, "picked_up", "2026-11-24T09:58:00Z", service_class="express")
    assert pipeline.on_event("sla.items", 2, 0, b"swiftparcel-demo", picked) == []
    pipeline.write(2)
    assert any(key.startswith(b"i2\x1f") for key in pipeline.table)
    # A new worker over the same table: the express parcel's 1-minute delivery target passes.
    again = Pipeline(Settings(), pipeline.contracts, pipeline.table, clock=pipeline.clock)
    outputs = again.on_tick(2, tick_record(ms("2026-11-24T09:59:30Z"), {**NOTHING, "sla.items": 1}))
    alerts = [orjson.loads(o.value) for o in outputs]
    assert [(a["kind"], a["subject"], a["observed_at"]) for a in alerts] == [
        ("near_breach", {"kind": "shipment", "id": "P-1"}, "2026-11-24T10:58:45+01:00"),
        ("breach", {"kind": "shipment", "id": "P-1"}, "2026-11-24T10:59:00+01:00"),
    ]


def test_an_item_event_on_the_ticket_topic_and_a_ticket_on_the_items_topic_are_dead_letters(pipeline):
    picked = parcel(1, "picked_up", "2026-11-24T09:58:00Z", service_class="express")
    (out,) = pipeline.on_event(TOPIC, 0, 0, b"swiftparcel-demo", picked)
    assert out.topic == "sla.deadletter" and orjson.loads(out.value)["reason"] == "invalid"
    ticket = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    (out,) = pipeline.on_event("sla.items", 0, 0, b"demo-fast", ticket)
    assert "does not belong on sla.items" in orjson.loads(out.value)["detail"]
    assert pipeline.counts.events[TOPIC, "invalid"] == pipeline.counts.events["sla.items", "invalid"] == 1


def test_a_partition_says_when_its_clock_next_has_something_due(pipeline):
    assert pipeline.next_due({0}) is None  # nothing there yet
    created = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    pipeline.on_event(TOPIC, 0, 0, b"demo-fast", created)
    due = pipeline.next_due({0})
    assert due is not None and pipeline.next_due({1}) is None
    marks = {**NOTHING, TOPIC: 1}
    # A tick at the very instant leaves it due; one a millisecond later fires it.
    assert pipeline.on_tick(0, tick_record(due, marks)) == []
    fired = [orjson.loads(o.value) for o in pipeline.on_tick(0, tick_record(due + 1, marks))]
    assert fired and {ms(a["observed_at"]) for a in fired} == {due}
    assert pipeline.next_due({0}) is None or pipeline.next_due({0}) > due


class _Assigned:
    def __init__(self, ticks: str, partitions: list[int]) -> None:
        self.actives = {TP(ticks, p) for p in partitions}

    def assigned_actives(self) -> set[TP]:
        return self.actives


def test_ticks_come_sooner_than_the_interval_when_something_is_due_sooner():
    contracts = load_dir(REPO / "examples" / "contracts")
    settings = replace(Settings(), tick_interval_ms=1_000, tick_grace_ms=100)
    pipeline = Pipeline(settings, contracts, table={})
    app = SimpleNamespace(assignor=_Assigned(settings.topics.ticks, [0]))
    sender = TickSender(app, settings, pipeline)  # type: ignore[arg-type]
    assert sender.until_next() == 1.0  # nothing due: the interval
    # Long overdue (a backlog): as soon as ticks may follow each other.
    created = event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P1")
    pipeline.on_event(TOPIC, 0, 0, b"demo-fast", created)
    assert sender.until_next() == 0.05
    # Due in half a second: then, plus the grace.
    pipeline.next_due = lambda partitions: wall_ms() + 500  # type: ignore[method-assign]
    assert 0.55 < sender.until_next() <= 0.601
    # The overdue ticket's partition, 0, is not this worker's any more: nothing due.
    del pipeline.next_due
    app.assignor = _Assigned(settings.topics.ticks, [1])
    assert sender.until_next() == 1.0


def test_a_finished_ticket_leaves_the_table_a_marker_then_a_deletion_its_changelog_compacts_away():
    now = [ms("2026-11-24T09:30:00Z")]
    contracts = load_dir(REPO / "examples" / "contracts")
    pipeline = Pipeline(Settings(), contracts, table={}, clock=lambda: now[0])
    pipeline.on_event(
        TOPIC, 3, 0, b"demo-fast", event(1, "ticket.created", "2026-11-24T09:00:00Z", priority="P3")
    )
    pipeline.on_event(
        TOPIC, 3, 1, b"demo-fast", event(2, "ticket.status_changed", "2026-11-24T09:30:00Z", status="closed")
    )
    assert pipeline.counts.events[TOPIC, "ok"] == 2
    pipeline.write(3)
    key = b"t3\x1fdemo-fast\x1fT-1"
    assert orjson.loads(pipeline.table[key])["h"]

    def tick(at: str) -> None:
        now[0] = ms(at)
        pipeline.on_tick(3, tick_record(ms(at), {**NOTHING, TOPIC: 2}))
        pipeline.write(3)

    tick("2026-11-24T09:40:00.001Z")  # the allowed lateness (5 minutes) after the close, and again
    marker = orjson.loads(pipeline.table[key])
    assert (marker["gone"], [i for i, _ in marker["ids"]]) == (ms("2026-11-24T09:35:00Z"), ["e1", "e2"])
    # The ledger still holds its copy of what it counted of T-1 (written with the close): read
    # back, the copy of a ticket that left goes (nothing of it is decided again).
    ledger_key = next(k for k in pipeline.table if k.startswith(b"l3"))
    assert "T-1" in orjson.loads(pipeline.table[ledger_key])["v"]
    restarted = Pipeline(Settings(), contracts, dict(pipeline.table), clock=lambda: now[0])
    assert restarted.engine(TOPIC, 3).ledgers["demo-fast"].views == {}
    now[0] = ms("2026-11-24T09:40:00Z")
    # A reopen now is a dead letter, `expired`, and changes nothing.
    outputs = pipeline.on_event(
        TOPIC, 3, 2, b"demo-fast", event(3, "ticket.status_changed", "2026-11-24T09:40:00Z", status="open")
    )
    assert [orjson.loads(o.value)["reason"] for o in outputs] == ["expired"]
    assert pipeline.counts.events[TOPIC, "expired"] == 1
    # The marker goes after the contract's retention (7 days by default) and a lateness: the key
    # is deleted, which the table sends to its changelog as a tombstone.
    tick("2026-12-01T09:40:00.001Z")
    assert key not in pipeline.table


FIRST_RESPONSE = """
version: 1
id: demo-fast
timezone: UTC
tickets:
  priorities: [P1]
  near_breach: [0.5]
  objectives:
    first_response: {targets: {P1: 10m}}
"""


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed-and-left"])
def test_a_stop_cutting_the_writes_anywhere_leaves_a_clock_that_decides_as_before(tmp_path, closed):
    # At-least-once: one batch creates T-1 and, twenty minutes later, T-2 (T-1's first response
    # breaches on the way); a stop cuts its write short after any of its records, the clock's
    # included. Restarted, the worker processes the batch again (each event a recognised repeat,
    # which moves the clock as the first time), then gets a reply to T-1 from twelve minutes
    # before the clock: late (more than the 5-minute lateness), as for a worker that never
    # stopped, never a late event that takes T-1's breach back.
    contracts = contracts_from(tmp_path, c=FIRST_RESPONSE)
    clock = lambda: ms("2026-11-24T10:21:00Z")  # noqa: E731
    batch = [
        _ticket(0, "T-1", "ticket.created", "2026-11-24T10:00:00Z", priority="P1"),
        _ticket(1, "T-2", "ticket.created", "2026-11-24T10:20:00Z", priority="P1"),
    ]
    if closed:  # and T-1, closed at 10:03, has left the state by the end of the batch
        batch[1:1] = [
            _ticket(3, "T-1", "ticket.agent_replied", "2026-11-24T10:02:00Z"),
            _ticket(4, "T-1", "ticket.status_changed", "2026-11-24T10:03:00Z", status="closed"),
        ]
    reply = _ticket(2, "T-1", "ticket.agent_replied", "2026-11-24T10:08:00Z")

    def run(pipeline: Pipeline) -> tuple[set[str], list[str]]:
        outputs = [o for n, m in enumerate(batch) for o in pipeline.on_event(TOPIC, 0, n, b"demo-fast", m)]
        outputs += pipeline.on_event(TOPIC, 0, len(batch), b"demo-fast", reply)
        records = [orjson.loads(o.value) for o in outputs]
        return {r["alert_id"] for r in records if "alert_id" in r}, [
            r["reason"] for r in records if "reason" in r
        ]

    expected = run(Pipeline(Settings(), contracts, {}, clock=clock))
    if closed:  # answered in time, then left: the late reply is for a ticket that left
        assert expected == (set(), ["late"])
        assert first_marker(contracts, clock, batch)
    else:
        assert expected[1] == ["late"] and len(expected[0]) == 2  # T-1's near-breach and breach

    first = Pipeline(Settings(), contracts, {}, clock=clock)
    for n, message in enumerate(batch):
        first.on_event(TOPIC, 0, n, b"demo-fast", message)
    recorded = WriteOrder()
    first.table = recorded
    for store in [*first.stores.values(), *first.ledgers.values(), *first.marks.values()]:
        store._table = recorded
    first.write(0)
    assert any(key.startswith(b"c0") for key in recorded.order), "the clock is one of the records"
    for cut in range(len(recorded.order) + 1):
        persisted = {key: recorded[key] for key in recorded.order[:cut] if key in recorded}
        alerts, dead = run(Pipeline(Settings(), contracts, persisted, clock=clock))
        # The first run sent its alerts before writing: the restarted one may repeat them, and
        # sends nothing else.
        assert alerts <= expected[0] and dead == expected[1], f"cut after {recorded.order[:cut]}"


def first_marker(contracts, clock, batch) -> bool:
    """Whether T-1 is a marker once the batch is applied (it left the state within it)."""
    pipeline = Pipeline(Settings(), contracts, {}, clock=clock)
    for n, message in enumerate(batch):
        pipeline.on_event(TOPIC, 0, n, b"demo-fast", message)
    return pipeline.engine(TOPIC, 0).tickets[("demo-fast", "T-1")].gone is not None
