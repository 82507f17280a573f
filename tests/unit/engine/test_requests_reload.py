"""Contracts reloaded while a worker runs: what the engine works out from a contract goes with it,
and every reload is measured by its own terms."""

from __future__ import annotations

import gc
import itertools

from helpers import contracts_from, ms

from sla_stream.engine.events import RequestEvent
from sla_stream.engine.model import Contract, RequestPolicy
from sla_stream.engine.processor import Engine
from sla_stream.engine.requests import Service
from sla_stream.engine.time import MINUTE_MS

PROBE = "reload-probe"
CONTRACT = """
version: 1
id: reload-probe
timezone: UTC
requests:
  availability: {{target: {target}, window: 1h}}
  burn_rate_alerts: none
"""
# Targets no other test uses, so that what this test loaded can be told apart in the heap.
STRICT, LENIENT = 0.99913, 0.51913
START = ms("2026-11-24T08:00:00Z")
_ids = itertools.count()


def batch(at: int, service: str = "checkout") -> RequestEvent:
    """100 requests, 90 good: below the strict target, above the lenient one."""
    return RequestEvent(f"reload-{next(_ids)}", "request.batch", PROBE, at, service, 100, 90, None)


def alive() -> tuple[int, int]:
    """The probe's contracts and request policies still reachable after a collection."""
    gc.collect()
    objects = gc.get_objects()
    contracts = sum(1 for o in objects if type(o) is Contract and o.id == PROBE)
    policies = sum(
        1
        for o in objects
        if type(o) is RequestPolicy
        and "availability" in o.objectives
        and o.objectives["availability"].target in (STRICT, LENIENT)
    )
    return contracts, policies


def test_reloaded_contracts_are_let_go_and_each_reload_is_measured_by_its_own_target(tmp_path):
    # The store outlives the engines, as the worker's changelog table outlives a reload.
    services: dict[tuple[str, str], Service] = {}
    measured = []
    for reload in range(12):
        target = STRICT if reload % 2 == 0 else LENIENT
        engine = Engine(contracts_from(tmp_path, probe=CONTRACT.format(target=target)), services=services)
        at = START + 2 * reload * MINUTE_MS
        alerts = engine.apply(batch(at + 10_000)).alerts + engine.advance(at + MINUTE_MS + 1)
        measured += [(reload, a.kind, a.details["target"]) for a in alerts]
        del engine, alerts
    # Each reload's first boundary judges 90% good by the target just loaded: below the strict
    # one it breaches, above the lenient one it recovers.
    assert measured == [
        (reload, "breach" if reload % 2 == 0 else "recovered", STRICT if reload % 2 == 0 else LENIENT)
        for reload in range(12)
    ]
    # Only the contract the service was last measured against is still held (by the service).
    assert alive() == (1, 1)
    services.clear()
    assert alive() == (0, 0)


def test_services_of_one_contract_share_what_is_worked_out_from_it(tmp_path):
    engine = Engine(contracts_from(tmp_path, probe=CONTRACT.format(target=STRICT)))
    for service in ("checkout", "search", "basket"):
        engine.apply(batch(START, service))
    engine.advance(START + MINUTE_MS + 1)
    held = [service.terms for service in engine.services.values()]
    assert len(held) == 3 and held[0] is not None and all(terms is held[0] for terms in held)
