"""Every outcome counted once, whatever the path: a worker stopped anywhere in its writes.

Under at-least-once nothing ties a partition's changelog records together: a stop keeps a prefix
of them (one producer keeps their order); the restarted worker applies its input again from the
positions that prefix holds, and gets its ticks again from their last commit. Whatever the
prefix, and whatever order the events came in, the alerts and the month's statement must be
those of a worker that never stopped: nothing lost, nothing counted twice, a repeat the same
record, and nothing the first worker would not have sent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson
import pytest
from helpers import REPO, ms

from sla_stream.contracts import load_dir
from sla_stream.engine.time import format_ts
from sla_stream.runtime.pipeline import Pipeline, tick_record
from sla_stream.settings import Settings

TICKETS, CALLS, TICKS = "sla.tickets", "sla.calls", "sla.ticks"
CONTRACTS = load_dir(REPO / "examples" / "contracts")  # demo-fast: 20 s to a P1 first response
START = ms("2026-11-30T23:45:00Z")  # a quarter of an hour before demo-fast's month ends (GMT)
UTC = ZoneInfo("UTC")
CLOSE = ms("2026-12-01T00:06:00Z")  # November closed: one allowed lateness (5 minutes) after


# Marks of a tick made when Kafka held nothing on the other input topics.
NOTHING = dict.fromkeys(Settings().source_topics, 0)


def clock() -> int:
    return ms("2026-12-01T00:10:00Z")


class Changelog(dict):
    """A table that keeps every write in order, as its changelog partition receives them."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.log.append((key, value))
        super().__setitem__(key, value)

    def pop(self, key: bytes, *default: bytes | None) -> bytes | None:
        self.log.append((key, None))
        return super().pop(key, *default)

    def __delitem__(self, key: bytes) -> None:
        self.log.append((key, None))
        super().__delitem__(key)

    def prefix(self, length: int) -> dict[bytes, bytes]:
        """The table a restarted worker reads back when only the first ``length`` records got there."""
        state: dict[bytes, bytes] = {}
        for key, value in self.log[:length]:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        return state


@dataclass(frozen=True)
class Message:
    """One message at ``offset`` of ``topic``: a ticket or call event, or a tick."""

    topic: str
    offset: int
    value: bytes


def traffic(seed: int) -> list[list[Message]]:
    """Four tickets and five calls over the last quarter hour of November, in batches, their
    events arriving out of order (some late within the allowed lateness, deciding a ticket again;
    some later than that, dead letters; a call answered before it was queued), with ticks between
    them that breach what falls due."""
    rng = random.Random(seed)
    events: list[tuple[int, str, dict[str, object]]] = []
    for n in range(4):
        ticket = f"T-{n}"
        at = START + rng.randrange(0, 300_000)

        def add(delay: int, kind: str, ticket: str = ticket, **fields: str) -> None:
            nonlocal at
            at += delay
            events.append((at, TICKETS, {"type": kind, "ticket_id": ticket, **fields}))

        add(0, "ticket.created", priority=rng.choice(["P1", "P2"]))
        add(rng.randrange(5_000, 45_000), "ticket.agent_replied")  # first response met or breached
        if rng.random() < 0.5:
            add(rng.randrange(5_000, 60_000), "ticket.status_changed", status="pending")
            add(rng.randrange(30_000, 90_000), "ticket.status_changed", status="open")
        add(rng.randrange(20_000, 200_000), "ticket.status_changed", status="solved")
        if rng.random() < 0.5:  # reopened: a new cycle of its clocks
            add(rng.randrange(5_000, 30_000), "ticket.status_changed", status="open")
            add(rng.randrange(10_000, 120_000), "ticket.status_changed", status="solved")
        if rng.random() < 0.7:  # closed: it leaves the state one lateness later
            add(rng.randrange(5_000, 60_000), "ticket.status_changed", status="closed")
    for n in range(5):  # 20 s to answer; some answers carry their wait, some do not
        queued = START + rng.randrange(0, 600_000)
        wait = rng.randrange(3_000, 40_000)
        call = {"call_id": f"C-{n}", "queue": "support"}
        events.append((queued, CALLS, {"type": "call.queued", **call}))
        ended = {"type": rng.choice(["call.answered", "call.answered", "call.abandoned"]), **call}
        if rng.random() < 0.5:
            ended["wait_seconds"] = wait / 1000
        events.append((queued + wait, CALLS, ended))
    events.sort(key=lambda e: e[0])
    for _ in range(len(events) // 2):  # arrival order: some events overtaken by later ones
        i = rng.randrange(len(events) - 1)
        j = min(len(events) - 1, i + rng.randrange(1, 6))
        events.insert(j, events.pop(i))
    if rng.random() < 0.5:  # one event long after its time: later than the allowed lateness
        events.append(events.pop(rng.randrange(len(events) // 2)))

    messages: list[Message] = []
    offsets = {TICKETS: 0, CALLS: 0, TICKS: 0}
    newest = START
    for n, (at, topic, fields) in enumerate(events):
        body = {"event_id": f"e{n}", "contract_id": "demo-fast", "occurred_at": format_ts(at, UTC), **fields}
        messages.append(Message(topic, offsets[topic], orjson.dumps(body)))
        offsets[topic] += 1
        newest = max(newest, at)
        if rng.random() < 0.3 or n == len(events) - 1:  # the wall clock past the newest event
            wall = CLOSE if n == len(events) - 1 else newest + rng.randrange(0, 30_000)
            marks = {**NOTHING, TICKETS: offsets[TICKETS], CALLS: offsets[CALLS]}
            messages.append(Message(TICKS, offsets[TICKS], tick_record(wall, marks)))
            offsets[TICKS] += 1
    batches, rest = [], messages
    while rest:
        size = rng.randrange(1, 6)
        batches.append(rest[:size])
        rest = rest[size:]
    return batches


def records(outputs: list) -> Iterator[tuple[str, str, dict]]:
    """``(topic, id, record)`` of each alert and statement among ``outputs``."""
    for output in outputs:
        record = orjson.loads(output.value)
        if output.topic == "sla.alerts":
            record.pop("emitted_at")
            yield output.topic, record["alert_id"], record
        elif output.topic == "sla.penalties":
            yield output.topic, record["statement_id"], record


def run(pipeline: Pipeline, batches: list[list[Message]], sent: dict) -> None:
    """Process ``batches``, writing after each as the worker does, into ``sent``: what went out,
    by id (a repeat must be the same record)."""
    for batch in batches:
        outputs: list = []
        for message in batch:
            if message.topic == TICKS:
                outputs += pipeline.on_tick(0, message.value, message.offset)
            else:
                outputs += pipeline.on_event(message.topic, 0, message.offset, b"demo-fast", message.value)
        for topic, key, record in records(outputs):
            assert sent.setdefault((topic, key), record) == record, f"{key} sent again, changed"
        pipeline.write(0)


# Seeds past 40 are among those that found a ticket, or a call centre, stored past its position
# taking deadlines from the messages processed again before it (without ``Ticket.below``'s hold).
@pytest.mark.parametrize("seed", [*range(40), 64, 99, 141, 215])
def test_a_stop_anywhere_in_the_writes_counts_every_outcome_once(seed):
    batches = traffic(seed)
    expected: dict = {}
    run(Pipeline(Settings(), CONTRACTS, {}, clock=clock), batches, expected)
    assert any(topic == "sla.penalties" for topic, _ in expected)
    assert any(r.get("kind") == "breach" for r in expected.values()), "a breach to count"

    changelog = Changelog()
    first = Pipeline(Settings(), CONTRACTS, changelog, clock=clock)
    ends = []  # how many changelog records each batch's write had left behind
    first_sent: list[dict] = []  # what had gone out by the end of each batch
    sent: dict = {}
    for batch in batches:
        run(first, [batch], sent)
        ends.append(len(changelog.log))
        first_sent.append(dict(sent))
    for cut in range(len(changelog.log) + 1):
        # The stop came while the batch that wrote record ``cut`` was being written: its outputs
        # (and those of every batch before) had gone out.
        stopped_in = next(i for i, end in enumerate(ends) if end >= cut)
        restarted = Pipeline(Settings(), CONTRACTS, changelog.prefix(cut), clock=clock)
        # The worker applies no input below the state's positions (its outputs went out), and
        # everything from there; the ticks come again from the last commit, a few batches back.
        position = {topic: restarted.position(topic, 0) or 0 for topic in (TICKETS, CALLS)}
        again = [[m for m in batch if m.topic == TICKS or m.offset >= position[m.topic]] for batch in batches]
        redelivered = [i for i, batch in enumerate(again) if any(m.topic != TICKS for m in batch)]
        from_batch = min([max(0, stopped_in - 2), *redelivered[:1]])
        sent = dict(first_sent[stopped_in])
        run(restarted, again[from_batch:], sent)
        assert sent == expected, f"seed {seed}: stopped after changelog record {cut}, positions {position}"


A_20S = load_dir(REPO / "examples" / "contracts")["demo-fast"]  # P1: 20 s to a first response


def _created(offset: int, ticket: str, at: str) -> bytes:
    fields = {"type": "ticket.created", "ticket_id": ticket, "priority": "P1"}
    return orjson.dumps({"event_id": f"c{offset}", "contract_id": "demo-fast", "occurred_at": at, **fields})


def _breached(pipeline: Pipeline, at: str, offset: int) -> list[str]:
    fired = pipeline.on_tick(0, tick_record(ms(at), NOTHING), offset)
    alerts = [orjson.loads(o.value) for o in fired if o.topic == "sla.alerts"]
    return sorted(a["subject"]["id"] for a in alerts if a["kind"] == "breach")


def _cut_after(ticket: str, changelog: Changelog, start: int) -> dict[bytes, bytes]:
    """The table a stop leaves that cut the write begun at record ``start`` just after ``ticket``."""
    found = next(i for i in range(start, len(changelog.log)) if changelog.log[i][0].endswith(ticket.encode()))
    return changelog.prefix(found + 1)


@pytest.mark.parametrize("cache", [4096, 1])
@pytest.mark.parametrize("last", ["an event", "a message that is not one"])
def test_a_ticket_stored_past_the_position_breaches_once_the_batch_is_processed_again(cache, last):
    # T-2 is stored past the position, and held until the batch is processed again: however many
    # tickets are read back after it (it may leave the cache of decoded tickets), and whatever
    # the batch's last message (a dead letter never reaches the engine), it breaches after.
    settings, now = Settings(ticket_cache=cache), lambda: ms("2026-11-24T10:00:00Z")
    batch = [_created(1, "T-2", "2026-11-24T09:59:00Z")]
    batch.append(_created(2, "T-3", "2026-11-24T09:59:00Z") if last == "an event" else b"not json")
    changelog = Changelog()
    first = Pipeline(settings, {"demo-fast": A_20S}, changelog, clock=now)
    first.on_event(TICKETS, 0, 0, b"demo-fast", _created(0, "T-1", "2026-11-24T09:59:00Z"))
    first.write(0)
    start = len(changelog.log)
    for offset, message in enumerate(batch, 1):
        first.on_event(TICKETS, 0, offset, b"demo-fast", message)
    first.write(0)
    expected = _breached(first, "2026-11-24T09:59:40Z", 0)
    assert "T-2" in expected

    restarted = Pipeline(settings, {"demo-fast": A_20S}, _cut_after("T-2", changelog, start), clock=now)
    assert restarted.position(TICKETS, 0) == 1
    for offset, message in enumerate(batch, 1):
        restarted.on_event(TICKETS, 0, offset, b"demo-fast", message)
    assert _breached(restarted, "2026-11-24T09:59:40Z", 0) == expected


def test_ticks_from_a_ticks_topic_made_again_are_taken_not_skipped():
    # The state says ticks up to offset 500 were handled; the topic was deleted and made again,
    # so its offsets start over: a newer tick at offset 0 moves the clock (an old one would not).
    now = lambda: ms("2026-11-24T10:00:00Z")  # noqa: E731
    first = Pipeline(Settings(), {"demo-fast": A_20S}, {}, clock=now)
    first.on_event(TICKETS, 0, 0, b"demo-fast", _created(0, "T-1", "2026-11-24T09:59:00Z"))
    assert _breached(first, "2026-11-24T09:59:05Z", 500) == []
    first.write(0)
    again = Pipeline(Settings(), {"demo-fast": A_20S}, dict(first.table), clock=now)
    assert _breached(again, "2026-11-24T09:59:01Z", 499) == []  # handled before: skipped
    assert 0 not in again.ticked
    assert _breached(again, "2026-11-24T09:59:40Z", 0) == ["T-1"]
    assert 0 in again.ticked
