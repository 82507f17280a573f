"""Business-calendar arithmetic: open hours, lunch, weekends, holidays, time zones, exclusions."""

from __future__ import annotations

from datetime import date, time
from zoneinfo import ZoneInfo

import holidays
from helpers import Events, contracts_from, ms
from hypothesis import given, settings
from hypothesis import strategies as st

from sla_stream.engine.calendar import AlwaysOpen, Business, Calendar, Exclusions, Holidays
from sla_stream.engine.processor import Engine
from sla_stream.wire.alerts import alert_record

JAKARTA = ZoneInfo("Asia/Jakarta")
OFFICE = (((time(8), time(12)), (time(13), time(17))),) * 5 + ((), ())


def office(**kwargs) -> Business:
    return Business(zone=JAKARTA, weekly=OFFICE, **kwargs)


def test_open_time_skips_lunch_and_the_night():
    cal = office()
    # Tue 11:00 -> Tue 14:00 is 2h open (lunch 12-13 closed).
    assert cal.between(ms("2026-11-24T11:00:00+07:00"), ms("2026-11-24T14:00:00+07:00")) == 2 * 3_600_000
    # Tue 16:00 + 2h open = Wed 09:00.
    assert cal.reach(ms("2026-11-24T16:00:00+07:00"), 2 * 3_600_000) == ms("2026-11-25T09:00:00+07:00")


def test_a_weekend_is_skipped():
    cal = office()
    assert cal.reach(ms("2026-11-27T16:00:00+07:00"), 2 * 3_600_000) == ms("2026-11-30T09:00:00+07:00")


def test_a_target_used_up_at_closing_time_is_reached_then_and_passed_at_the_next_opening():
    cal = office()
    start = ms("2026-11-24T16:00:00+07:00")
    assert cal.reach(start, 3_600_000) == ms("2026-11-24T17:00:00+07:00")
    assert cal.passes(start, 3_600_000) == ms("2026-11-25T08:00:00+07:00")
    # ... and at lunch: used up at 12:00, passed at 13:00.
    assert cal.passes(ms("2026-11-24T11:00:00+07:00"), 3_600_000) == ms("2026-11-24T13:00:00+07:00")


def test_country_holidays_and_explicit_dates_are_closed():
    cal = office(
        holidays=Holidays("ID", None, frozenset({date(2026, 12, 24)}), holidays.country_holidays("ID"))
    )
    # Thu 24 Dec (explicit) and Fri 25 Dec (Christmas, an Indonesian public holiday) are closed.
    assert cal.reach(ms("2026-12-23T16:00:00+07:00"), 2 * 3_600_000) == ms("2026-12-28T09:00:00+07:00")


def test_an_exclusion_window_stops_the_clock():
    window = (ms("2026-11-24T09:00:00+07:00"), ms("2026-11-24T10:00:00+07:00"))
    cal = office(exclusions=Exclusions.of([window]))
    assert cal.between(ms("2026-11-24T08:00:00+07:00"), ms("2026-11-24T11:00:00+07:00")) == 2 * 3_600_000
    always = AlwaysOpen(Exclusions.of([window]))
    assert always.reach(ms("2026-11-24T08:30:00+07:00"), 3_600_000) == ms("2026-11-24T10:30:00+07:00")
    assert always.passes(ms("2026-11-24T08:00:00+07:00"), 3_600_000) == ms("2026-11-24T10:00:00+07:00")


def test_daylight_saving_changes_keep_local_opening_hours():
    berlin = Business(zone=ZoneInfo("Europe/Berlin"), weekly=OFFICE)
    # Clocks go back on Sun 25 Oct 2026; Friday 16:00 CEST + 2h open = Monday 09:00 CET.
    assert berlin.reach(ms("2026-10-23T16:00:00+02:00"), 2 * 3_600_000) == ms("2026-10-26T09:00:00+01:00")
    # The 24x7 clock counts real elapsed time across the change: 25 hours that Sunday.
    sunday = (ms("2026-10-25T00:00:00+02:00"), ms("2026-10-26T00:00:00+01:00"))
    assert AlwaysOpen().between(*sunday) == 25 * 3_600_000


instants = st.integers(min_value=ms("2026-01-01T00:00:00+00:00"), max_value=ms("2027-12-31T00:00:00+00:00"))
amounts = st.integers(min_value=0, max_value=30 * 86_400_000)


@settings(max_examples=300, deadline=None)
@given(start=instants, amount=amounts)
def test_elapsed_time_to_the_deadline_is_the_target(start, amount):
    cal = office(
        exclusions=Exclusions.of([(ms("2026-11-24T09:00:00+07:00"), ms("2026-11-26T10:00:00+07:00"))])
    )
    deadline = cal.reach(start, amount)
    assert cal.between(start, deadline) == amount
    passed = cal.passes(start, amount)
    assert passed >= deadline and cal.between(start, passed) == amount
    assert cal.between(start, passed + 1) == amount + 1  # the clock runs right after it is passed


@settings(max_examples=200, deadline=None)
@given(a=instants, b=instants, c=instants)
def test_open_time_adds_up_over_consecutive_spans(a, b, c):
    a, b, c = sorted((a, b, c))
    cal = office()
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)


# One calendar for every example below, so that what it works out per date is reused, and
# extended backwards and forwards, as in a long run.
BERLIN = Business(
    zone=ZoneInfo("Europe/Berlin"),
    weekly=(*OFFICE[:4], ((time(0), time.max),), ((time(22), time.max),), ((time(0), time(2)),)),
    holidays=Holidays("DE", None, frozenset({date(2026, 12, 24)}), holidays.country_holidays("DE")),
    exclusions=Exclusions.of(
        [
            (ms("2026-10-25T01:30:00+02:00"), ms("2026-10-25T02:30:00+01:00")),
            (ms("2027-03-03T11:00:00+01:00"), ms("2027-03-05T09:30:00+01:00")),
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(start=instants, end=instants, amount=amounts)
def test_open_time_by_date_gives_what_walking_every_open_interval_gives(start, end, amount):
    # Calendar's own methods walk the open intervals one by one from the start.
    assert BERLIN.between(start, end) == Calendar.between(BERLIN, start, end)
    assert BERLIN.reach(start, amount) == Calendar.reach(BERLIN, start, amount)
    assert BERLIN.passes(start, amount) == Calendar.passes(BERLIN, start, amount)


BUSINESS = """
version: 1
id: acme
timezone: Asia/Jakarta
calendars:
  business:
    weekly: {mon-fri: ["08:00-12:00", "13:00-17:00"]}
tickets:
  priorities: [P1]
  near_breach: []
  objectives:
    first_response: {calendar: business, targets: {P1: 2h}}
"""


def test_a_target_used_up_exactly_at_17_00_breaches_at_08_00_the_next_working_day(tmp_path):
    events = Events("acme")
    engine = Engine(contracts_from(tmp_path, acme=BUSINESS))
    engine.apply(events.created("T-1", "P1", "2026-11-27T15:00:00+07:00"))  # a Friday
    assert engine.advance(ms("2026-11-30T08:00:00+07:00")) == []
    (breach,) = engine.advance(ms("2026-11-30T08:00:00.001+07:00"))
    record = alert_record(breach)
    assert record["deadline"] == "2026-11-27T17:00:00+07:00"
    assert record["observed_at"] == "2026-11-30T08:00:00+07:00"


def test_a_reply_before_the_next_opening_meets_a_target_used_up_at_closing_time(tmp_path):
    events = Events("acme")
    engine = Engine(contracts_from(tmp_path, acme=BUSINESS))
    engine.apply(events.created("T-1", "P1", "2026-11-27T15:00:00+07:00"))
    assert engine.apply(events.agent("T-1", "2026-11-28T10:00:00+07:00")).alerts == []
    assert engine.advance(ms("2026-12-31T00:00:00+07:00")) == []


def test_opening_hours_in_the_hour_clocks_skip_count_only_real_time():
    # Berlin, Sun 29 Mar 2026: 02:00 CET becomes 03:00 CEST. Open 01:00-02:30 is one real hour.
    sunday_only = ((),) * 6 + (((time(1), time(2, 30)),),)
    berlin = Business(zone=ZoneInfo("Europe/Berlin"), weekly=sunday_only)
    assert berlin.day_intervals(date(2026, 3, 29)) == (
        (ms("2026-03-29T01:00:00+01:00"), ms("2026-03-29T03:00:00+02:00")),
    )
    # ... and hours repeated when clocks go back start at their first occurrence.
    assert berlin.day_intervals(date(2026, 10, 25)) == (
        (ms("2026-10-25T01:00:00+02:00"), ms("2026-10-25T02:30:00+02:00")),
    )
