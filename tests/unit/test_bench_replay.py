"""The replay benchmark (`make bench-replay`): its mixes are what they say and the same for a seed,
and its report says which target is met and by how much. Its numbers are not checked here:
benchmarks are not timed tests."""

from __future__ import annotations

import collections
import json
import sys

import orjson
import pytest
from helpers import REPO

from sla_stream.contracts import load_dir
from sla_stream.contracts.build import default_burn_rates
from sla_stream.engine.calendar import AlwaysOpen
from sla_stream.engine.model import CALENDAR_MONTH
from sla_stream.replay import ReplayStats, read_lines, replay

sys.path.insert(0, str(REPO / "bench"))

import mixes
import replay_mixes
import reporting

# The event types each mix is made of (at least nine in ten of its events).
SOURCE = {
    "tickets": "ticket.",
    "calls": "call.",
    "requests": "request",
    "items": "shipment.",
}


@pytest.mark.parametrize("name", mixes.MIXES)
def test_each_mix_is_the_same_bytes_for_a_seed_and_replays_without_a_rejection(name, tmp_path):
    first = mixes.write(name, tmp_path / "a", 2_000, seed=3)
    again = mixes.write(name, tmp_path / "b", 2_000, seed=3)
    other = mixes.write(name, tmp_path / "c", 2_000, seed=4)
    assert first.events.read_bytes() == again.events.read_bytes()
    assert first.events.read_bytes() != other.events.read_bytes()
    assert sorted(p.name for p in first.contracts.iterdir()) == sorted(
        p.name for p in again.contracts.iterdir()
    )
    stats = ReplayStats()
    list(replay(load_dir(first.contracts), read_lines([first.events]), stats=stats))
    assert (first.count, stats.events, stats.rejected) == (2_000, 2_000, 0)


@pytest.mark.parametrize("name", sorted(SOURCE))
def test_each_source_mix_is_dominated_by_its_source(name, tmp_path):
    mix = mixes.write(name, tmp_path, 2_000)
    types = [orjson.loads(line)["type"] for line in mix.events.read_bytes().splitlines()]
    assert sum(t.startswith(SOURCE[name]) for t in types) >= 0.9 * len(types)


def test_the_tickets_mix_has_next_reply_cycles_on_business_calendars_with_holidays_and_late_replies(
    tmp_path,
):
    mix = mixes.write("tickets", tmp_path, 5_000)
    contracts = load_dir(mix.contracts)
    business = [
        c
        for c in contracts.values()
        if c.tickets and not isinstance(c.tickets.objectives["next_reply"].calendar, AlwaysOpen)
    ]
    assert len(business) >= 0.7 * len(contracts)
    assert len({c.zone for c in business}) >= 4
    countries = {c.tickets.objectives["next_reply"].calendar.holidays.country for c in business if c.tickets}
    assert None not in countries and len(countries) >= 4  # each country's public holidays are kept
    types = collections.Counter(orjson.loads(line)["type"] for line in mix.events.read_bytes().splitlines())
    assert types["ticket.customer_replied"] >= 0.5 * types["ticket.created"]
    alerts = collections.Counter((a.kind, a.objective) for a in replay(contracts, read_lines([mix.events])))
    assert alerts[("breach", "next_reply")] > 0 and alerts[("breach", "first_response")] > 0


def test_the_requests_mix_keeps_the_default_burn_rate_rules_and_some_calendar_month_windows(tmp_path):
    mix = mixes.write("requests", tmp_path, 2_000)
    contracts = load_dir(mix.contracts)
    policies = [c.requests for c in contracts.values()]
    assert all(p is not None and p.burn_rates == default_burn_rates() for p in policies)
    assert any(o.window == CALENDAR_MONTH for p in policies if p for o in p.objectives.values())
    types = collections.Counter(orjson.loads(line)["type"] for line in mix.events.read_bytes().splitlines())
    assert types["request.batch"] >= 0.8 * sum(types.values())


def test_the_floor_parses_every_event_line_of_the_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"contract_id": "a", "occurred_at": "x"}\n\n{"contract_id": "b", "occurred_at": "y"}\n'
    )
    assert replay_mixes.floor(path)["events"] == 2


def test_targets_say_whether_each_is_met_and_by_how_much():  # with --before none
    results = {
        "mixes": [
            {"name": "mix", "events": 100_000, "replay_events_per_second": 125_000, "replay_vs_floor": 0.45},
            {"name": "tickets", "events": 100_000, "replay_events_per_second": 9e4, "replay_vs_floor": 0.15},
        ],
        "memory": {"bytes_per_open_ticket": 900},
    }
    results["mixes"][0]["peak_rss_mib"] = replay_mixes.BEFORE_PEAK_RSS_MIB["mix"]
    results["mixes"][1]["peak_rss_mib"] = 2 * replay_mixes.BEFORE_PEAK_RSS_MIB["tickets"]
    targets = {t["name"]: t for t in replay_mixes.judge(results)}
    rate = targets["replay_events_per_second"]
    assert (rate["met"], rate["target"], rate["ratio_to_target"]) == (False, 250_000, 0.5)
    assert targets["replay_vs_floor:mix"]["met"] is True
    tickets = targets["replay_vs_floor:tickets"]
    assert (tickets["met"], tickets["ratio_to_target"]) == (False, 0.5)
    assert targets["peak_rss_mib:mix"]["met"] is True  # as much as before
    assert targets["peak_rss_mib:tickets"]["met"] is False  # twice as much
    assert targets["bytes_per_open_ticket"]["met"] is True  # under 1 KiB
    before = targets["bytes_per_open_ticket_before"]
    assert (before["met"], before["target"]) == (False, 875)  # above 858 bytes, 2% allowed
    missed = "\n".join(reporting.misses(list(targets.values())))
    assert "125,000 is 0.500 of 250,000 (2.0× short)" in missed
    assert "900 is 1.029 of 875 (25 over)" in missed


def test_peak_memory_targets_compare_with_the_before_commit_measured_in_the_same_run():
    results = {
        "before": {"commit": "abc1234"},
        "mixes": [
            {"name": "mix", "events": 10_000, "peak_rss_mib": 50.0, "before_peak_rss_mib": 50.0},
            {"name": "calls", "events": 10_000, "peak_rss_mib": 60.0, "before_peak_rss_mib": 50.0},
        ],
        "memory": {"bytes_per_open_ticket": 800},
    }
    for mix in results["mixes"]:
        mix |= {"replay_events_per_second": 1, "replay_vs_floor": 0.1}
    targets = {t["name"]: t for t in replay_mixes.judge(results)}
    same = targets["peak_rss_mib:mix"]
    assert (same["met"], same["target"]) == (True, 51.0)  # 50 MiB and 2% allowed, not mix's fixed figure
    assert "abc1234's 50.0 in this run" in same["what"]
    assert (targets["peak_rss_mib:calls"]["met"], targets["peak_rss_mib:calls"]["target"]) == (False, 51.0)


def test_without_the_before_commit_the_fixed_figures_apply_only_to_100000_events():
    results = {
        "mixes": [{"name": "mix", "events": 10_000, "peak_rss_mib": 1.0}],
        "memory": {"bytes_per_open_ticket": 800},
    }
    results["mixes"][0] |= {"replay_events_per_second": 1, "replay_vs_floor": 0.1}
    assert not [t for t in replay_mixes.judge(results) if t["name"].startswith("peak_rss_mib")]


def _summary(name, **extra):
    return {
        "name": name,
        "events": 10_000,
        "alerts": 1_234,
        "floor_events_per_second": 400_000,
        "replay_events_per_second": 8_000,
        "replay_vs_floor": 0.02,
        "peak_rss_mib": 70.5,
        "replay_vs_floor_runs": [0.0201, 0.0199],
        **extra,
    }


def test_the_table_shows_the_before_commit_rate_memory_and_now_over_before_where_it_was_replayed():
    before = {"before_events_per_second": 4_000, "before_peak_rss_mib": 80.0, "replay_vs_before": 2.0}
    table = replay_mixes.per_source_table(
        {"before": {"commit": "abc1234"}, "mixes": [_summary("mix", **before)]}
    )
    assert table[0] == (
        "| mix | events | alerts | floor events/s | replay events/s | replay ÷ floor | peak RSS"
        " | abc1234 events/s | abc1234 peak RSS | now ÷ abc1234 | runs |"
    )
    assert table[1].count("|") == table[0].count("|")
    assert table[2] == (
        "| `mix` | 10,000 | 1,234 | 400,000 | 8,000 | 0.020 | 70.5 MiB"
        " | 4,000 | 80.0 MiB | 2.000 | 0.020, 0.020 |"
    )
    alone = replay_mixes.per_source_table({"mixes": [_summary("mix")]})  # --before none, or bench/run.py
    assert alone[0].endswith("| peak RSS | runs |") and alone[2].endswith("| 70.5 MiB | 0.020, 0.020 |")


def test_the_replay_part_measures_and_reports_every_mix_it_is_asked_for(tmp_path):
    before = tmp_path / "before"
    commit = replay_mixes.archive(replay_mixes.BEFORE_COMMIT, before)
    results = replay_mixes.measure(
        ["calls"],
        500,
        repeats=2,
        seed=1,
        code=REPO,
        open_tickets=200,
        profile_events=0,
        before=(before, commit),
    )
    assert [m["name"] for m in results["mixes"]] == ["calls"]
    for mix in results["mixes"]:
        assert mix["events"] == 500 and mix["floor_events_per_second"] > 0
        assert mix["replay_events_per_second"] > 0 and mix["peak_rss_mib"] > 0
        assert len(mix["replay_vs_floor_runs"]) == 2
        assert len(mix["runs"]["before"]) == 2 and len(mix["replay_vs_before_runs"]) == 2
        assert mix["before_events_per_second"] > 0 and mix["before_peak_rss_mib"] > 0
        assert mix["before_alerts"] == mix["alerts"]  # the same replay, of the code before
        assert mix["profile"]["top"].startswith("ncalls")
        assert any(f["file"].startswith("sla_stream/") for f in mix["profile"]["by_file"])
    report = replay_mixes.write_report(results, tmp_path)
    text = report.read_text()
    assert "| `calls` | 500 |" in text and "## Targets" in text and "### `calls`" in text
    assert f"| now ÷ {commit} |" in text and f"{commit}'s sla_stream (a git archive of it)" in text
    assert "peak_rss_mib:calls" in {t["name"] for t in results["targets"]}
    assert json.loads((tmp_path / "replay.json").read_text())["targets"] == results["targets"]


def test_replay_peak_memory_is_the_replay_process_own_not_the_bench_process(tmp_path):
    mix = mixes.write("calls", tmp_path, 300)
    ballast = b"x" * (200 * 2**20)  # the bench process grown big before it starts replay
    measured = replay_mixes.replay_once(mix, REPO)
    del ballast
    assert measured["events"] == 300
    assert 0 < measured["peak_rss_mib"] < 150
