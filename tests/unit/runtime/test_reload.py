"""Contracts reloaded while the worker runs: broken files keep the last good contracts; good ones
are taken between batches, open tickets keeping the targets they started with."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from helpers import ONE_TARGET, ms
from prometheus_client import generate_latest

from sla_stream.contracts import load_dir
from sla_stream.metrics.collector import registry_for
from sla_stream.runtime.pipeline import Pipeline, tick_record
from sla_stream.runtime.reload import ContractSource, ContractWatcher
from sla_stream.settings import Settings

FAST = ONE_TARGET

# A tick made when Kafka held nothing on any input topic.
NOTHING = dict.fromkeys(Settings().source_topics, 0)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(FAST.format(id="a", target="20s"))
    return tmp_path


def test_a_broken_contract_file_keeps_the_contracts_in_use_and_says_what_is_wrong(directory, caplog):
    source = ContractSource(directory, load_dir(directory))
    assert not source.changed()
    (directory / "a.yaml").write_text(FAST.format(id="a", target="soon"))
    assert source.changed()
    with caplog.at_level(logging.ERROR, "sla_stream.contracts"):
        assert source.reload() is False
    assert source.take() is None and set(source.contracts) == {"a"}
    assert source.reloads == {"ok": 0, "error": 1}
    assert source.error is not None and source.error.startswith(f"{directory / 'a.yaml'}: tickets")
    assert any("'soon'" in r.getMessage() and "a.yaml" in r.getMessage() for r in caplog.records)
    assert not source.changed()  # tried once; not again until the files change

    (directory / "a.yaml").write_text(FAST.format(id="a", target="1h"))
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    assert source.changed() and source.reload() is True
    assert source.error is None and source.reloads == {"ok": 1, "error": 1}
    taken = source.take()
    assert taken is not None and set(taken) == {"a", "b"} and source.contracts is taken
    assert source.take() is None


def test_reloading_files_that_say_the_same_changes_nothing(directory):
    source = ContractSource(directory, load_dir(directory))
    (directory / "a.yaml").write_text("# a comment\n" + FAST.format(id="a", target="20s"))
    assert source.changed() and source.reload() is True
    assert source.take() is None


def test_the_reload_metrics_say_how_many_contracts_are_in_use_and_whether_the_files_load(directory):
    source = ContractSource(directory, load_dir(directory))
    pipeline = Pipeline(Settings(), source.contracts, {}, clock=lambda: 0)
    registry = registry_for(pipeline, source)
    (directory / "a.yaml").write_text("id: [")
    source.reload()
    assert registry.get_sample_value("sla_contract_reload_failing") == 1
    assert registry.get_sample_value("sla_contract_reloads_total", {"outcome": "error"}) == 1
    assert registry.get_sample_value("sla_contracts") == 1
    (directory / "a.yaml").write_text(FAST.format(id="a", target="20s"))
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    source.reload()
    source.take()
    assert registry.get_sample_value("sla_contract_reload_failing") == 0
    assert registry.get_sample_value("sla_contracts") == 2
    assert b"sla_contract_reloads_total" in generate_latest(registry)


def test_contracts_taken_between_batches_apply_to_new_events_and_open_tickets_keep_their_targets(directory):
    source = ContractSource(directory, load_dir(directory))
    now = [ms("2026-11-24T10:00:00Z")]
    pipeline = Pipeline(Settings(), source.contracts, {}, clock=lambda: now[0])

    def created(contract: str, ticket: str, at: str) -> list[tuple[str, str]]:
        body = {
            "event_id": f"{contract}-{ticket}",
            "type": "ticket.created",
            "contract_id": contract,
            "occurred_at": at,
            "ticket_id": ticket,
            "priority": "P1",
        }
        out = pipeline.on_event("sla.tickets", 0, next(offsets), contract.encode(), orjson.dumps(body))
        return [(o.topic, orjson.loads(o.value).get("reason", "")) for o in out]

    offsets = iter(range(100))
    assert created("a", "OLD", "2026-11-24T09:59:00Z") == []
    assert created("b", "T", "2026-11-24T09:59:01Z") == [("sla.deadletter", "unknown_contract")]
    pipeline.write(0)

    (directory / "a.yaml").write_text(FAST.format(id="a", target="1h"))
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    source.reload()
    pipeline.use_contracts(source.take() or {})
    assert created("b", "T", "2026-11-24T09:59:02Z") == []
    assert created("a", "NEW", "2026-11-24T09:59:03Z") == []
    now[0] = ms("2026-11-24T10:05:00Z")
    fired = pipeline.on_tick(0, tick_record(ms("2026-11-24T10:05:00Z"), NOTHING))
    breached = {
        (a["contract_id"], a["subject"]["id"], a["target_seconds"])
        for a in (orjson.loads(o.value) for o in fired)
        if a.get("kind") == "breach"
    }
    # OLD started under 20 s and keeps it; NEW has a's new hour; b's ticket breaches at 20 s.
    assert breached == {("a", "OLD", 20), ("b", "T", 20)}


def test_tickets_of_a_contract_removed_by_a_reload_do_not_stop_their_partition(directory):
    source = ContractSource(directory, load_dir(directory))
    now = [ms("2026-11-24T10:00:00Z")]
    pipeline = Pipeline(Settings(), source.contracts, {}, clock=lambda: now[0])
    body = {
        "event_id": "e1",
        "type": "ticket.created",
        "contract_id": "a",
        "occurred_at": "2026-11-24T09:59:59Z",
        "ticket_id": "T",
        "priority": "P1",
    }
    pipeline.on_event("sla.tickets", 0, 0, b"a", orjson.dumps(body))
    pipeline.write(0)
    (directory / "a.yaml").rename(directory / "b.yaml")
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    source.reload()
    pipeline.use_contracts(source.take() or {})
    now[0] = ms("2026-11-24T10:05:00Z")
    fired = pipeline.on_tick(0, tick_record(ms("2026-11-24T10:05:00Z"), NOTHING))
    assert [o.topic for o in fired if o.topic == "sla.deadletter"] == []
    assert 0 in pipeline.ticked


def test_the_watcher_reloads_when_the_files_change_and_on_sighup(directory):
    async def run() -> None:
        polled = ContractSource(directory, load_dir(directory))
        watcher = ContractWatcher(polled, interval=0.05)
        await watcher.start()
        try:
            (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
            await _until(lambda: polled.reloads["ok"] == 1)
        finally:
            await watcher.stop()

        hup = ContractSource(directory, load_dir(directory))
        watcher = ContractWatcher(hup, interval=0)  # never polls
        await watcher.start()
        try:
            (directory / "c.yaml").write_text(FAST.format(id="c", target="20s"))
            await asyncio.sleep(0.2)
            assert hup.reloads == {"ok": 0, "error": 0}
            os.kill(os.getpid(), signal.SIGHUP)
            await _until(lambda: hup.reloads["ok"] == 1)
            assert set(hup.take() or {}) == {"a", "b", "c"}
        finally:
            await watcher.stop()

    asyncio.run(run())


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within 2 s")


def test_a_directory_named_like_a_contract_file_does_not_hide_changes(directory):
    (directory / "old.yaml").mkdir()
    source = ContractSource(directory, load_dir(directory))
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    assert source.changed()


def test_an_edit_made_while_the_worker_read_its_contracts_is_reloaded(directory):
    from sla_stream.runtime.reload import fingerprint

    loaded = fingerprint(directory)
    contracts = load_dir(directory)
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))  # meanwhile
    source = ContractSource(directory, contracts, loaded)
    assert source.changed() and source.reload() and set(source.take() or {}) == {"a", "b"}


def test_a_ticket_whose_priority_a_reload_removed_starts_no_next_reply_clock(tmp_path):
    two = (
        "version: 1\nid: a\ntickets:\n  priorities: [P1, P2]\n  near_breach: []\n  objectives:\n"
        "    first_response: {targets: {P1: 20s, P2: 20s}}\n    next_reply: {targets: {P1: 20s, P2: 20s}}\n"
    )
    (tmp_path / "a.yaml").write_text(two)
    source = ContractSource(tmp_path, load_dir(tmp_path))
    now = [ms("2026-11-24T10:00:00Z")]
    pipeline = Pipeline(Settings(), source.contracts, {}, clock=lambda: now[0])

    def send(offset: int, kind: str, at: str, **fields: str) -> list[str]:
        body = {
            "event_id": f"e{offset}",
            "type": kind,
            "contract_id": "a",
            "occurred_at": at,
            "ticket_id": "T",
        }
        out = pipeline.on_event("sla.tickets", 0, offset, b"a", orjson.dumps({**body, **fields}))
        return [o.topic for o in out]

    assert send(0, "ticket.created", "2026-11-24T09:59:00Z", priority="P2") == []
    assert send(1, "ticket.agent_replied", "2026-11-24T09:59:05Z") == []
    pipeline.write(0)
    (tmp_path / "a.yaml").write_text(two.replace("P1, P2", "P1").replace(", P2: 20s", ""))
    source.reload()
    pipeline.use_contracts(source.take() or {})
    assert send(2, "ticket.customer_replied", "2026-11-24T09:59:10Z") == []
    now[0] = ms("2026-11-24T10:05:00Z")
    fired = pipeline.on_tick(0, tick_record(ms("2026-11-24T10:05:00Z"), NOTHING))
    assert [orjson.loads(o.value)["objective"] for o in fired if o.topic == "sla.alerts"] == []


def test_the_contracts_a_topic_holds_are_written_as_files_and_only_changes_count(tmp_path):
    from sla_stream.runtime.contract_topic import materialize

    target = tmp_path / "from-topic"
    a, b = FAST.format(id="a", target="20s").encode(), FAST.format(id="b", target="1h").encode()
    assert materialize({"a": a, "b": b}, target) is True
    assert set(load_dir(target)) == {"a", "b"}
    assert materialize({"a": a, "b": b}, target) is False  # the same again: nothing to reload
    assert materialize({"a": a}, target) is True  # b's tombstone
    assert sorted(p.name for p in target.iterdir()) == ["a.yaml"]


def test_the_worker_reports_which_version_of_each_contract_it_uses(directory):
    from sla_stream.runtime.reload import digests

    (directory / "child.yaml").write_text("version: 1\nid: child\nextends: a\n")
    source = ContractSource(directory, load_dir(directory))
    registry = registry_for(Pipeline(Settings(), source.contracts, {}, clock=lambda: 0), source)
    before = dict(source.digests)
    assert set(before) == {"a", "child"}
    assert (
        registry.get_sample_value(
            "sla_contract_info", {"contract": "a", "digest": before["a"], "version": "initial"}
        )
        == 1
    )
    # The base changes: so do both versions, and the reported ones once the reload is taken.
    (directory / "a.yaml").write_text(FAST.format(id="a", target="1h"))
    source.reload()
    assert source.digests == before
    source.take()
    after = digests(directory)
    assert source.digests == after and after["a"] != before["a"] and after["child"] != before["child"]
    assert (
        registry.get_sample_value(
            "sla_contract_info", {"contract": "child", "digest": after["child"], "version": "initial"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "sla_contract_info", {"contract": "a", "digest": before["a"], "version": "initial"}
        )
        is None
    )


def test_the_version_reported_is_the_one_in_force_at_the_scrape(directory):
    (directory / "a.yaml").write_text(
        FAST.format(id="a", target="20s")
        + "versions:\n  - {name: renewal, effective_from: 2027-01-01T00:00:00Z}\n"
    )
    source = ContractSource(directory, load_dir(directory))
    now = [ms("2026-12-31T23:59:59.999Z")]
    registry = registry_for(Pipeline(Settings(), source.contracts, {}, clock=lambda: now[0]), source)
    labels = {"contract": "a", "digest": source.digests["a"]}
    assert registry.get_sample_value("sla_contract_info", {**labels, "version": "initial"}) == 1
    now[0] = ms("2027-01-01T00:00:00Z")
    assert registry.get_sample_value("sla_contract_info", {**labels, "version": "renewal"}) == 1
    assert registry.get_sample_value("sla_contract_info", {**labels, "version": "initial"}) is None


def test_loading_contracts_logs_the_version_in_force_of_each_versioned_one(directory, caplog):
    from sla_stream.runtime.reload import log_versions

    (directory / "b.yaml").write_text(
        FAST.format(id="b", target="20s")
        + "versions:\n  - {name: renewal, effective_from: 2027-01-01T00:00:00Z}\n"
    )
    with caplog.at_level(logging.INFO, logger="sla_stream.contracts"):
        log_versions(load_dir(directory), ms("2026-12-01T00:00:00Z"))
    assert caplog.messages == [
        "contract b: version initial in force (2 versions); next change: renewal at 2027-01-01T00:00:00Z"
    ]


def _created(pipeline: Pipeline, offset: int, contract: str, ticket: str, at: str) -> None:
    body = {
        "event_id": f"e{offset}",
        "type": "ticket.created",
        "contract_id": contract,
        "occurred_at": at,
        "ticket_id": ticket,
        "priority": "P1",
    }
    assert pipeline.on_event("sla.tickets", 0, offset, contract.encode(), orjson.dumps(body)) == []


def _breached(pipeline: Pipeline, at: str) -> set[tuple[str, str]]:
    fired = pipeline.on_tick(0, tick_record(ms(at), NOTHING))
    alerts = (orjson.loads(o.value) for o in fired if o.topic == "sla.alerts")
    return {(a["contract_id"], a["subject"]["id"]) for a in alerts if a["kind"] == "breach"}


def test_a_reload_that_adds_or_removes_contracts_reads_no_state_back_and_one_that_changes_one_does(
    directory,
):
    now = [ms("2026-11-24T10:00:00Z")]
    pipeline = Pipeline(Settings(), load_dir(directory), {}, clock=lambda: now[0])
    _created(pipeline, 0, "a", "T-1", "2026-11-24T09:59:00Z")
    pipeline.write(0)
    engine = pipeline.engine("sla.tickets", 0)

    # Added: b is looked up when used; a's ticket stays scheduled in the same engine.
    pipeline.use_contracts({**load_dir(directory), "b": load_dir_one(directory, "b", "20s")})
    assert pipeline.engine("sla.tickets", 0) is engine
    _created(pipeline, 1, "b", "T-2", "2026-11-24T09:59:10Z")
    assert _breached(pipeline, "2026-11-24T09:59:40Z") == {("a", "T-1"), ("b", "T-2")}
    pipeline.write(0)

    # a changed: its tickets are read back, against the contract as it is now.
    (directory / "a.yaml").write_text(FAST.format(id="a", target="1h"))
    pipeline.use_contracts({**load_dir(directory), "b": load_dir_one(directory, "b", "20s")})
    assert pipeline.engine("sla.tickets", 0) is not engine


def test_a_contract_back_after_a_reload_removed_it_has_its_open_tickets_deadlines_again(directory):
    now = [ms("2026-11-24T10:00:00Z")]
    contracts = load_dir(directory)
    pipeline = Pipeline(Settings(), contracts, {}, clock=lambda: now[0])
    _created(pipeline, 0, "a", "T-1", "2026-11-24T09:59:00Z")  # breaches at 09:59:20
    pipeline.write(0)
    pipeline.use_contracts({})  # a removed: the ticket stays, nothing of it fires
    assert _breached(pipeline, "2026-11-24T09:59:30Z") == set()
    pipeline.use_contracts(contracts)  # and back
    assert _breached(pipeline, "2026-11-24T09:59:40Z") == {("a", "T-1")}


def test_state_read_back_a_slice_at_a_time_decides_as_state_read_at_once(tmp_path):
    # The worker reads a large state back between turns of the event loop (``preparing``).
    (tmp_path / "a.yaml").write_text(FAST.format(id="a", target="20s"))
    now = [ms("2026-11-24T10:00:00Z")]
    first = Pipeline(Settings(), load_dir(tmp_path), {}, clock=lambda: now[0])
    for n in range(3000):
        _created(first, n, "a", f"T-{n}", "2026-11-24T09:59:00Z")
    first.write(0)
    at_once = Pipeline(Settings(), load_dir(tmp_path), dict(first.table), clock=lambda: now[0])
    sliced = Pipeline(Settings(), load_dir(tmp_path), dict(first.table), clock=lambda: now[0])
    slices = sum(1 for _ in sliced.preparing(0, slice_seconds=0))
    assert slices >= 3000 // 256
    assert len(_breached(sliced, "2026-11-24T09:59:40Z")) == 3000
    assert _breached(sliced, "2026-11-24T09:59:40Z") == set()
    assert len(_breached(at_once, "2026-11-24T09:59:40Z")) == 3000


def load_dir_one(directory: Path, contract: str, target: str):
    """One more contract, from a file of its own beside ``directory``."""
    other = directory.parent / f"only-{contract}"
    other.mkdir(exist_ok=True)
    (other / f"{contract}.yaml").write_text(FAST.format(id=contract, target=target))
    return load_dir(other)[contract]


def test_a_contract_missing_when_the_worker_started_has_its_tickets_deadlines_once_it_comes(directory):
    # b's ticket is stored; the worker restarts without b's file (or b was taken off the contracts
    # topic), then b comes back: its open ticket breaches, as for a worker started with b.
    (directory / "b.yaml").write_text(FAST.format(id="b", target="20s"))
    both = load_dir(directory)
    now = [ms("2026-11-24T10:00:00Z")]
    first = Pipeline(Settings(), both, {}, clock=lambda: now[0])
    _created(first, 0, "b", "T-1", "2026-11-24T09:59:00Z")  # breaches at 09:59:20
    first.write(0)
    second = Pipeline(Settings(), {"a": both["a"]}, first.table, clock=lambda: now[0])
    assert _breached(second, "2026-11-24T09:59:10Z") == set()
    second.write(0)
    second.use_contracts(both)
    assert _breached(second, "2026-11-24T09:59:40Z") == {("b", "T-1")}
