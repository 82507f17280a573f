"""Call-centre objectives per queue and interval: service level, abandon rate, speed of answer."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC

import pytest
from helpers import contracts_from, ms

from sla_stream.engine import calls
from sla_stream.engine.alerts import Alert
from sla_stream.engine.calls import CallCentre, Tally
from sla_stream.engine.events import CallEvent, Rejected
from sla_stream.engine.processor import Engine
from sla_stream.engine.time import HOUR_MS, format_ts
from sla_stream.wire.alerts import alert_record

CONTRACT = """
version: 1
id: {id}
timezone: {zone}
calls:
  service_level: {{answer_within: 20s, target: 0.80, interval: 30m, short_abandon: 5s}}
  abandon_rate:  {{max: 0.25, interval: 30m}}
  speed_of_answer: {{max: 30s, interval: 15m}}
"""


@pytest.fixture
def engine(tmp_path) -> Engine:
    return Engine(contracts_from(tmp_path, c=CONTRACT.format(id="c", zone="UTC")))


_ids = itertools.count()


def call(
    kind: str, call_id: str, at: str, queue: str | None = "sales", wait: float | None = None
) -> CallEvent:
    return CallEvent(
        f"e{next(_ids)}",
        f"call.{kind}",
        "c",
        ms(at),
        call_id,
        queue,
        None if wait is None else round(wait * 1000),
    )


def run(engine: Engine, *events: CallEvent, until: str | None = None) -> list[Alert]:
    alerts = []
    for event in events:
        alerts += engine.apply(event).alerts
    if until is not None:
        alerts += engine.advance(ms(until))
    return alerts


def answered(engine: Engine, call_id: str, queued: str, answered_at: str) -> list[Alert]:
    return run(engine, call("queued", call_id, queued), call("answered", call_id, answered_at, queue=None))


def summary(alerts: list[Alert]) -> list[tuple[str, str, str, str]]:
    return [
        (a.kind, a.objective, alert_record(a)["subject"]["interval_start"], alert_record(a)["observed_at"])
        for a in alerts
    ]


def test_an_interval_exactly_on_target_meets_it(engine):
    # 4 of 5 answered within 20 s: 0.80 is the target, so no alert, not even at close.
    alerts = []
    for n, wait in enumerate([5, 10, 20, 20, 21]):
        alerts += answered(engine, f"k{n}", f"2026-11-24T09:0{n}:00Z", f"2026-11-24T09:0{n}:{wait:02d}Z")
    alerts += engine.advance(ms("2026-11-24T10:00:01Z"))
    assert engine.centres["c"].days["sales", ms("2026-11-24T00:00:00Z")].value("service_level") == 0.8
    assert alerts == []


def test_an_interval_below_target_breaches_at_its_end_with_no_later_call(engine):
    answered(engine, "k1", "2026-11-24T09:00:00Z", "2026-11-24T09:00:10Z")
    warned = answered(engine, "k2", "2026-11-24T09:01:00Z", "2026-11-24T09:01:45Z")
    # Warned once, when the second call had waited past 20 s: 1 of 2 is heading below 0.8.
    assert summary(warned) == [
        ("near_breach", "service_level", "2026-11-24T09:00:00Z", "2026-11-24T09:01:20Z")
    ]
    assert engine.advance(ms("2026-11-24T09:30:00Z")) == []  # the end itself has not passed yet
    closed = engine.advance(ms("2026-11-24T09:30:00.001Z"))
    breach = [a for a in closed if a.objective == "service_level"]
    assert summary(breach) == [("breach", "service_level", "2026-11-24T09:00:00Z", "2026-11-24T09:30:00Z")]
    record = alert_record(breach[0])
    assert record["details"] == {
        "interval_seconds": 1800,
        "target": 0.8,
        "value": 0.5,
        "answered": 2,
        "abandoned": 0,
        "answered_within": 1,
        "short_abandoned": 0,
    }
    assert record["deadline"] == "2026-11-24T09:30:00Z" and record["target_seconds"] == 1800


def test_a_later_interval_that_meets_the_target_recovers(engine):
    alerts = answered(engine, "k1", "2026-11-24T09:00:00Z", "2026-11-24T09:00:45Z")
    alerts += answered(engine, "k2", "2026-11-24T09:40:00Z", "2026-11-24T09:40:05Z")
    alerts += engine.advance(ms("2026-11-24T11:00:00Z"))
    level = [
        (a.kind, alert_record(a)["subject"]["interval_start"])
        for a in alerts
        if a.objective == "service_level" and a.kind != "near_breach"
    ]
    # The 09:00 interval breached (at 09:30); 09:30 met it; 10:00-10:30 had no calls and are not judged.
    assert level == [("breach", "2026-11-24T09:00:00Z"), ("recovered", "2026-11-24T09:30:00Z")]


def test_short_abandons_count_neither_way(engine):
    run(
        engine,
        call("queued", "k1", "2026-11-24T09:00:00Z"),
        call("abandoned", "k1", "2026-11-24T09:00:05Z", queue=None),  # 5 s: short
        call("queued", "k2", "2026-11-24T09:00:00Z"),
        call("answered", "k2", "2026-11-24T09:00:10Z", queue=None),
    )
    centre = engine.centres["c"]
    tally = centre.intervals["sales", 1_800_000, ms("2026-11-24T09:00:00Z")].tally
    assert (tally.abandoned, tally.short, tally.value("service_level"), tally.value("abandon_rate")) == (
        1,
        1,
        1.0,
        0.0,
    )
    # A longer abandon counts against both.
    alerts = run(
        engine,
        call("queued", "k3", "2026-11-24T09:01:00Z"),
        call("abandoned", "k3", "2026-11-24T09:01:06Z", queue=None),
    )
    assert {a.objective for a in alerts} == {"service_level", "abandon_rate"}
    assert tally.value("service_level") == 0.5 and tally.value("abandon_rate") == 0.5


def test_a_call_with_no_queued_event_uses_wait_seconds_and_its_queue(engine):
    run(engine, call("answered", "k1", "2026-11-24T09:10:00Z", queue="support", wait=25))
    tally = engine.centres["c"].intervals["support", 1_800_000, ms("2026-11-24T09:00:00Z")].tally
    assert (tally.answered, tally.within, tally.wait_ms) == (1, 0, 25_000)
    with pytest.raises(
        Rejected, match=r"no call\.queued was seen for call 'k2' and the event has no wait_seconds"
    ):
        engine.apply(call("answered", "k2", "2026-11-24T09:10:00Z"))
    with pytest.raises(Rejected, match="names no queue"):
        engine.apply(call("abandoned", "k3", "2026-11-24T09:10:00Z", queue=None, wait=3))


def test_a_call_is_booked_to_the_interval_it_was_answered_in(engine):
    answered(engine, "k1", "2026-11-24T09:29:50Z", "2026-11-24T09:30:05Z")
    intervals = engine.centres["c"].intervals
    assert ("sales", 1_800_000, ms("2026-11-24T09:30:00Z")) in intervals
    assert ("sales", 1_800_000, ms("2026-11-24T09:00:00Z")) not in intervals


def test_a_call_still_waiting_past_answer_within_counts_as_missed_live(engine):
    answered(engine, "k1", "2026-11-24T09:00:00Z", "2026-11-24T09:00:10Z")
    run(engine, call("queued", "k2", "2026-11-24T09:01:00Z"))
    # Nothing else happens; when the wait passes 20 s the interval is heading to 1 of 2.
    assert engine.advance(ms("2026-11-24T09:01:20Z")) == []
    alerts = engine.advance(ms("2026-11-24T09:01:20.001Z"))
    assert summary(alerts) == [
        ("near_breach", "service_level", "2026-11-24T09:00:00Z", "2026-11-24T09:01:20Z")
    ]
    assert alerts[0].details["waiting_missed"] == 1 and alerts[0].details["value"] == 0.5
    # Warned once per interval: answering it late raises no second service-level warning
    # (the 60 s wait does put the average speed of answer over its 30 s).
    later = run(engine, call("answered", "k2", "2026-11-24T09:02:00Z", queue=None))
    assert [a.objective for a in later] == ["speed_of_answer"]


def test_abandon_rate_and_speed_of_answer(engine):
    alerts = run(
        engine,
        call("queued", "k1", "2026-11-24T09:00:00Z"),
        call("queued", "k2", "2026-11-24T09:00:00Z"),
        call("answered", "k2", "2026-11-24T09:00:10Z", queue=None),
        call("answered", "k1", "2026-11-24T09:01:00Z", queue=None),
        call("queued", "k3", "2026-11-24T09:02:00Z"),
        call("abandoned", "k3", "2026-11-24T09:02:10Z", queue=None),
        until="2026-11-24T09:15:00.001Z",
    )
    # k1 waited 60 s: past 20 s the service level heads for 1 of 2 and the average wait
    # reaches 35 s; k3's abandon makes it 1 of 3 abandoned. Speed of answer has 15-minute
    # intervals: it closes at 09:15 at 35 s, over its 30 s maximum.
    assert [(a.kind, a.objective, a.details["value"]) for a in alerts] == [
        ("near_breach", "service_level", 0.5),
        ("near_breach", "speed_of_answer", 35.0),
        ("near_breach", "abandon_rate", 0.333333),
        ("breach", "speed_of_answer", 35.0),
    ]
    assert alerts[-1].details["target"] == 30


def test_intervals_align_to_the_contracts_local_midnight(tmp_path):
    engine = Engine(contracts_from(tmp_path, c=CONTRACT.format(id="c", zone="Asia/Kolkata")))
    # 09:10 UTC is 14:40 in Kolkata (+05:30): the local 14:30 interval starts at 09:00 UTC.
    alerts = answered(engine, "k1", "2026-11-24T09:10:00Z", "2026-11-24T09:10:30Z")
    assert [alert_record(a)["subject"]["interval_start"] for a in alerts] == ["2026-11-24T14:30:00+05:30"]


def test_a_repeated_event_is_a_duplicate_and_counts_once(engine):
    queued = call("queued", "k1", "2026-11-24T09:00:00Z")
    reply = call("answered", "k1", "2026-11-24T09:00:05Z", queue=None)
    assert engine.apply(queued).outcome == "ok"
    assert engine.apply(reply).outcome == "ok"
    assert engine.apply(reply).outcome == "duplicate"
    assert engine.centres["c"].intervals["sales", 1_800_000, ms("2026-11-24T09:00:00Z")].tally.answered == 1


def test_daily_and_monthly_roll_ups_weight_by_calls(engine):
    # 1 of 1 in time in one interval, 1 of 3 in another: the day is 2 of 4, not the mean 0.67.
    answered(engine, "a", "2026-11-24T09:00:00Z", "2026-11-24T09:00:05Z")
    for n in range(3):
        answered(engine, f"b{n}", "2026-11-24T10:00:00Z", f"2026-11-24T10:00:{5 + 20 * n:02d}Z")
    centre = engine.centres["c"]
    day = centre.days["sales", ms("2026-11-24T00:00:00Z")]
    month = Tally(*engine.ledgers["c"].periods["2026-11"]["calls"])
    assert day.value("service_level") == month.value("service_level") == 0.5


def test_state_round_trips(engine):
    answered(engine, "k1", "2026-11-24T09:00:00Z", "2026-11-24T09:00:45Z")
    run(engine, call("queued", "k2", "2026-11-24T09:01:00Z"))
    centre = engine.centres["c"]
    assert CallCentre.from_state(centre.to_state()) == centre


def test_a_centre_loaded_from_its_state_goes_on_as_the_one_that_wrote_it(tmp_path):
    contracts = contracts_from(tmp_path, c=CONTRACT.format(id="c", zone="UTC"))
    before = Engine(contracts)
    for n in range(4):
        answered(before, f"k{n}", f"2026-11-24T09:00:0{n}Z", f"2026-11-24T09:00:1{n}Z")
    # When the state is written k4 is past its 20 s (4 of 5 in time: on target), k5 not yet.
    run(before, call("queued", "k4", "2026-11-24T09:01:00Z"), call("queued", "k5", "2026-11-24T09:01:30Z"))
    assert before.advance(ms("2026-11-24T09:01:40Z")) == []
    state = json.loads(json.dumps(before.centres["c"].to_state()))
    after = Engine(contracts, clock=before.clock, centres={"c": CallCentre.from_state(state)})
    rest = [
        call("queued", "k6", "2026-11-24T09:02:00Z"),
        call("answered", "k4", "2026-11-24T09:03:00Z", queue=None),
        call("abandoned", "k6", "2026-11-24T09:04:00Z", queue=None),
    ]
    went_on = [alert_record(a) for a in run(before, *rest, until="2026-11-24T10:00:00.001Z")]
    loaded = [alert_record(a) for a in run(after, *rest, until="2026-11-24T10:00:00.001Z")]
    assert loaded == went_on
    # k5 passing its 20 s at 09:01:50 is warned of, with both waiting calls missed: 4 of 6.
    first = loaded[0]
    assert (first["observed_at"], first["details"]["value"], first["details"]["waiting_missed"]) == (
        "2026-11-24T09:01:50Z",
        0.666667,
        2,
    )


def test_a_waiting_call_counts_as_missed_until_it_ends_or_is_queued_again(engine):
    run(engine, call("queued", "k1", "2026-11-24T09:00:00Z"), call("queued", "k2", "2026-11-24T09:00:05Z"))
    engine.advance(ms("2026-11-24T09:00:30Z"))
    centre = engine.centres["c"]
    assert calls.missed(centre, "sales") == 2
    run(engine, call("answered", "k1", "2026-11-24T09:00:40Z", queue=None))
    assert calls.missed(centre, "sales") == 1
    # Queued again (transferred back into a queue): its wait starts over, not missed until it passes 20 s.
    run(engine, call("queued", "k2", "2026-11-24T09:00:50Z", queue="support"))
    assert (calls.missed(centre, "sales"), calls.missed(centre, "support")) == (0, 0)
    engine.advance(ms("2026-11-24T09:01:10.001Z"))
    assert (calls.missed(centre, "sales"), calls.missed(centre, "support")) == (0, 1)


def test_intervals_and_days_start_at_local_midnight_across_offset_changes(tmp_path):
    zones = {"c": "Europe/Berlin", "s": "America/Santiago"}
    contracts = contracts_from(
        tmp_path, **{id: CONTRACT.format(id=id, zone=zone) for id, zone in zones.items()}
    )
    berlin, santiago = Engine(contracts), Engine(contracts)
    # 25 October 2026 has 25 hours in Berlin: the clocks go back from 03:00 to 02:00.
    alerts = []
    for at in ["2026-10-25T00:10:00+02:00", "2026-10-25T23:40:00+01:00", "2026-10-26T00:10:00+01:00"]:
        alerts += run(berlin, call("abandoned", f"b{at}", at, wait=30))
    starts = [
        alert_record(a)["subject"]["interval_start"]
        for a in alerts
        if a.objective == "abandon_rate" and a.kind == "near_breach"
    ]
    assert starts == ["2026-10-25T00:00:00+02:00", "2026-10-25T23:30:00+01:00", "2026-10-26T00:00:00+01:00"]
    assert sorted(day for _, day in berlin.centres["c"].days) == [
        ms("2026-10-25T00:00:00+02:00"),
        ms("2026-10-26T00:00:00+01:00"),
    ]
    # On 6 September 2026 Santiago's clocks go from midnight to 01:00: that day starts at 01:00.
    abandoned = CallEvent("s1", "call.abandoned", "s", ms("2026-09-06T01:10:00-03:00"), "x", "sales", 30_000)
    alerts = santiago.apply(abandoned).alerts
    assert {alert_record(a)["subject"]["interval_start"] for a in alerts} == {"2026-09-06T01:00:00-03:00"}
    assert list(santiago.centres["s"].days) == [("sales", ms("2026-09-06T01:00:00-03:00"))]


def test_old_intervals_event_ids_and_lost_calls_are_forgotten(tmp_path):
    engine = Engine(contracts_from(tmp_path, c=CONTRACT.format(id="c", zone="UTC")), allowed_lateness=HOUR_MS)
    run(engine, call("queued", "lost", "2026-11-24T09:00:00Z"))
    start = ms("2026-11-24T09:05:00Z")
    for n in range(3 * 48):  # a call every 30 minutes for three days
        at = format_ts(start + n * 30 * 60_000, UTC)
        run(engine, call("abandoned", f"k{n}", at, wait=30))
    run(engine, call("queued", "recent", "2026-11-27T08:00:00Z"))
    engine.advance(ms("2026-11-27T09:00:00.001Z"))
    centre = engine.centres["c"]
    # The last interval closed at 09:00 on the 27th: closed intervals that ended a day before
    # that are gone, and event ids older than the allowed lateness; so is a call left waiting
    # two days, not one queued an hour ago.
    assert min(start + length for _, length, start in centre.intervals) == ms("2026-11-26T09:00:00Z")
    assert min(centre.seen.values()) == ms("2026-11-27T08:00:00Z")
    assert list(centre.waiting) == ["recent"]
    assert sorted(day for _, day in centre.days) == [ms(f"2026-11-{d}T00:00:00Z") for d in (25, 26, 27)]


def test_event_ids_are_forgotten_by_their_time_whatever_order_they_came_in(tmp_path):
    # Calls every 20 s, each arriving up to 40 minutes out of order (the allowed lateness is an
    # hour, so none is late), and the centre reloaded from its state half-way: once the last
    # interval closes, the ids kept are exactly those of events within the lateness of its end.
    contracts = contracts_from(tmp_path, c=CONTRACT.format(id="c", zone="UTC"))
    engine = Engine(contracts, allowed_lateness=HOUR_MS)
    rng = random.Random(11)
    start = ms("2026-11-24T09:00:00Z")
    times = {}
    for n in range(600):
        at = start + n * 20_000 - rng.randrange(0, 40 * 60_000)
        event = call("abandoned", f"k{n}", format_ts(max(at, start), UTC), wait=30)
        times[event.event_id] = event.at
        assert engine.apply(event).outcome == "ok"
        if n == 300:
            state = json.loads(json.dumps(engine.centres["c"].to_state()))
            engine = Engine(
                contracts,
                clock=engine.clock,
                allowed_lateness=HOUR_MS,
                centres={"c": CallCentre.from_state(state)},
            )
    end = (max(times.values()) // (30 * 60_000) + 1) * 30 * 60_000  # the last interval's end
    engine.advance(end + 1)
    assert engine.centres["c"].seen == {eid: at for eid, at in times.items() if at >= end - HOUR_MS}
    assert len(engine.centres["c"].seen) < len(times)
