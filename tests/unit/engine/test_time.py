"""Durations and timestamps as contracts and alerts write them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from helpers import ms

from sla_stream.engine.time import format_ts, parse_duration, seconds


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("45s", 45_000),
        ("30m", 1_800_000),
        ("4h", 14_400_000),
        ("3d", 259_200_000),
        ("1h30m", 5_400_000),
        ("250ms", 250),
    ],
)
def test_durations_are_read_in_their_units(text, millis):
    assert parse_duration(text) == millis


@pytest.mark.parametrize("text", ["", "5", "m5", "5x", "30 minutes", "-5s", "1.5h"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_timestamps_are_rendered_in_the_contract_zone_with_milliseconds_only_when_present():
    zone = ZoneInfo("Asia/Jakarta")
    assert format_ts(ms("2026-11-24T02:30:00Z"), zone) == "2026-11-24T09:30:00+07:00"
    assert format_ts(ms("2026-11-24T02:30:00.250Z"), zone) == "2026-11-24T09:30:00.250+07:00"
    assert seconds(1_800_000) == 1800 and seconds(1500) == 1.5
