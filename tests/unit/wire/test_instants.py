"""``occurred_at`` as epoch ms: the same instant, or the same reason, whatever the decoder read
before it (a minute it has accepted once is read from a table after that)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sla_stream.engine.events import Rejected
from sla_stream.wire import events
from sla_stream.wire.events import instant_ms

WHERE = "$.occurred_at"

GOOD = [
    "2026-11-24T09:00:00Z",
    "2026-11-24T09:00:00z",
    "2026-11-24t09:00:00+07:00",
    "2026-11-24T09:00:59-00:00",
    "2026-11-24T09:00:01.5+05:30",
    "2026-11-24T09:00:01.25-03:30",
    "2026-11-24T09:00:01.125+14:00",
    "2026-11-24T09:00:01.1239Z",
    "2026-11-24T09:00:01.999999999-23:59",
    "2026-11-24T09:00:01.000000001+23:59",
    "2028-02-29T23:59:59.999Z",
    "2000-01-01T00:00:00Z",
    "2000-01-01T05:00:00+05:00",
    "2000-01-02T00:00:00+23:59",
    "2199-12-31T23:59:59.999Z",
    "2199-12-30T23:59:00-23:59",
]

BAD = [
    "2026-11-24T09:00:60Z",
    "2026-11-24T09:00:00+0700",
    "2026-11-24T09:00:00+24:00",
    "2026-11-24T09:00:00",
    "2026-11-24T09:00:00.Z",
    "2026-11-24T09:00:00,5Z",
    "2026-11-24T09:00:00.1234567890Z",
    "2026-11-24T09:00:0١Z",
    "2026-11-24T09:00:00.1２Z",
    "2026-11-24T09:00:00+07:0١",
    "2026-11-24T09:00:00 Z",
    "2026-11-24T09:00:00ZZ",
    "2026-11-24T09:00:00+07:00Z",
    "2026-11-24T09:00:00Z+07:00",
    "2026-11-24T09:00",
    "2026-11-24T09:00Z",
    "2026-02-29T09:00:00Z",
    "1999-12-31T23:59:59.999Z",
    "2000-01-01T00:30:00+01:00",
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:59:59-00:01",
]


def reference_ms(text: str) -> int:
    """Epoch ms as the standard library reads the timestamp, floored to the millisecond."""
    moment = datetime.fromisoformat(text.upper())
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def verdict(text: str) -> int | str:
    try:
        return instant_ms(text, WHERE)
    except Rejected as rejected:
        return f"{rejected.reason}: {rejected.detail}"


@pytest.fixture
def forgetful(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder that has accepted no minute yet."""
    monkeypatch.setattr(events, "_MINUTES", {})


@pytest.mark.parametrize("text", GOOD)
def test_a_timestamp_gives_the_same_instant_the_first_time_and_once_its_minute_is_known(
    text: str, forgetful: None
) -> None:
    first = verdict(text)
    assert first == reference_ms(text)
    assert verdict(text) == first
    # The same minute with another second, fraction and zone is read from the table too.
    assert verdict(text[:16] + ":30.5z") == reference_ms(text[:16] + ":30.5z")
    assert verdict(text) == first


@pytest.mark.parametrize("text", BAD)
def test_a_bad_timestamp_is_rejected_for_the_same_reason_once_its_minute_is_known(
    text: str, forgetful: None
) -> None:
    first = verdict(text)
    assert isinstance(first, str) and first.startswith("invalid: ") and f"at `{WHERE}`" in first
    for known in (text[:16] + ":00Z", text[:10] + "T09:00:00Z", "2026-11-24T09:00:00Z"):
        verdict(known)
    assert verdict(text) == first


def test_every_minute_of_an_odd_day_is_read_the_same_way(forgetful: None) -> None:
    start = datetime(2026, 3, 29, 0, 0, 59, 987_000, tzinfo=UTC)
    stamps = [(start + timedelta(minutes=n)).isoformat(timespec="milliseconds") for n in range(1440)]
    first = [verdict(s) for s in stamps]
    assert first == [reference_ms(s) for s in stamps]
    assert [verdict(s) for s in stamps] == first


def test_the_minutes_kept_are_bounded_whatever_the_dates(forgetful: None) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for n in range(events._MINUTES_KEPT + 100):
        stamp = (start + timedelta(minutes=7 * n)).isoformat().replace("+00:00", "Z")
        assert verdict(stamp) == reference_ms(stamp)
        assert len(events._MINUTES) <= events._MINUTES_KEPT
